"""Build the TransNAS-Bench-101 segmentsemantic CSV (``benchmark.csv=``) from NASLib's public files.

``python -m segnas.spaces.transnas.build_csv --zen DIR_ZIP_OR_TAR... --zc-micro F --zc-macro F --archs-micro F
--archs-macro F --out CSV`` joins

* NASLib's zen benchmark files (folders, zip or tar archives holding
  ``benchmark--transbench101_{micro,macro}--segmentsemantic--<k>.json``: lists of ``{"idx", "arch", "zen":
  {"score", "time"}, "val_accuracy"}``, the final-epoch pixel accuracy), one row per architecture;
* the early zero-cost JSONs ``zc_transbench101_{micro,macro}.json`` (``{task: {arch_tuple: {"idx", "arch",
  "val_accuracy", <proxy>: {"score", "time"}}}}``, the best-epoch accuracy; a subset), joined by architecture;
* the arch lists ``archs_transbench101_{micro,macro}.json`` (NASLib index -> op-index tuple), which name the
  architecture of a zen entry's ``idx``.

Micro tuples ``(a,b,c,d,e,f)`` become ``64-41414-a_bc_def``, macro tuples ``64-<nonzero codes>-basic``. Values
are written as NASLib stores them (its -1e8 sentinel for a NaN/inf score included); an architecture outside the
early subset has empty early columns. Any file may be plain or ``.xz``-compressed.
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import lzma
import re
import tarfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

TASK = "segmentsemantic"
PROXIES = (
    "flops",
    "params",
    "grasp",
    "fisher",
    "grad_norm",
    "l2_norm",
    "plain",
    "nwot",
    "epe_nas",
    "jacov",
    "snip",
)
COLUMNS = ("space", "tnb_arch_str", "naslib_zen_idx", "valid_acc_final_epoch", "zen", "valid_acc_best_epoch_early",
           *PROXIES)  # fmt: skip
_ZEN_NAME = re.compile(r"benchmark--transbench101_(micro|macro)--segmentsemantic--\d+\.json$")


def arch_string(space: str, ops: Sequence[int] | str) -> str:
    """The TNB architecture string of a NASLib op-index tuple (or its string form ``'(2, 3, ...)'``)."""
    codes = tuple(ast.literal_eval(ops)) if isinstance(ops, str) else tuple(ops)
    if space == "micro":
        if len(codes) != 6:
            raise ValueError(f"micro arch {ops!r}: expected 6 op codes")
        a, b, c, d, e, f = codes
        return f"64-41414-{a}_{b}{c}_{d}{e}{f}"
    if space == "macro":
        return f"64-{''.join(str(c) for c in codes if c)}-basic"
    raise ValueError(f"unknown TransNAS-Bench-101 space {space!r}")


def _read_text(path: Path) -> str:
    """A file's text, decompressed when it ends in ``.xz``."""
    return lzma.decompress(path.read_bytes()).decode() if path.suffix == ".xz" else path.read_text()


def _zen_files(source: Path) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """``(space, entries)`` of every segmentsemantic zen file in a folder, zip or tar archive."""
    if source.is_dir():
        members = {str(p): p.read_bytes() for p in source.rglob("*.json") if _ZEN_NAME.search(p.name)}
    elif zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            members = {n: archive.read(n) for n in archive.namelist() if _ZEN_NAME.search(n)}
    else:
        with tarfile.open(source) as archive:
            members = {m.name: archive.extractfile(m).read() for m in archive.getmembers()
                       if m.isfile() and _ZEN_NAME.search(m.name)}  # fmt: skip
    for name in sorted(members):
        yield _ZEN_NAME.search(name)[1], json.loads(members[name])


def _early_rows(space: str, path: Path) -> dict[str, list[Any]]:
    """Architecture string -> the early columns (best-epoch accuracy, then :data:`PROXIES`) of one space."""
    early = json.loads(_read_text(path))[TASK]
    return {arch_string(space, key): [entry["val_accuracy"], *(entry[p]["score"] if p in entry else "" for p in PROXIES)]
            for key, entry in early.items()}  # fmt: skip


def build_rows(zen: Sequence[Path], zc: dict[str, Path], archs: dict[str, Path]) -> list[list[Any]]:
    """The CSV rows (:data:`COLUMNS`), micro then macro, each by NASLib index."""
    index = {space: json.loads(_read_text(path)) for space, path in archs.items()}
    early = {space: _early_rows(space, path) for space, path in zc.items()}
    rows: dict[tuple[int, int], list[Any]] = {}
    for space, entries in (item for source in zen for item in _zen_files(source)):
        for entry in entries:
            idx = int(entry["idx"])
            if str(idx) not in index[space]:
                raise ValueError(f"{space} zen entry idx {idx} is not in the arch list {archs[space]}")
            arch = arch_string(space, index[space][str(idx)])
            late = [space, arch, idx, entry["val_accuracy"], entry["zen"]["score"]]
            rows[(space == "macro", idx)] = late + early[space].get(arch, [""] * (1 + len(PROXIES)))
    if not rows:
        raise ValueError(
            f"{[str(z) for z in zen]}: no benchmark--transbench101_{{micro,macro}}--{TASK}--<k>.json files"
        )
    return [rows[key] for key in sorted(rows)]


def main(argv: Sequence[str] | None = None) -> Path:
    """Parse the command line, build the CSV and return its path."""
    parser = argparse.ArgumentParser(prog="python -m segnas.spaces.transnas.build_csv", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument(
        "--zen",
        type=Path,
        nargs="+",
        required=True,
        help="folders, zip or tar archives holding the zen benchmark files",
    )
    for space in ("micro", "macro"):
        parser.add_argument(
            f"--zc-{space}", type=Path, required=True, help=f"zc_transbench101_{space}.json[.xz]"
        )
        parser.add_argument(
            f"--archs-{space}", type=Path, required=True, help=f"archs_transbench101_{space}.json"
        )
    parser.add_argument("--out", type=Path, required=True, help="the CSV to write")
    args = parser.parse_args(argv)
    rows = build_rows(args.zen, {"micro": args.zc_micro, "macro": args.zc_macro},
                      {"micro": args.archs_micro, "macro": args.archs_macro})  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        csv.writer(f).writerows([COLUMNS, *rows])
    print(
        f"{args.out}: {sum(r[0] == 'micro' for r in rows)} micro + {sum(r[0] == 'macro' for r in rows)} macro rows"
    )
    return args.out


if __name__ == "__main__":
    main()
