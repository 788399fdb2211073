"""Ground truth of TransNAS-Bench-101 segmentsemantic: architecture strings with their accuracy.

The CSV (``shared/data/transnas/tnb101_segmentsemantic_dev.csv``) has the columns ``space``,
``tnb_arch_str``, the targets ``valid_acc_final_epoch`` (all rows) and ``valid_acc_best_epoch_early``
(a subset), and NASLib's own proxy scores (``flops``, ``params``, ``nwot`` ...; empty where not computed).
The accuracy is pixel accuracy in %, not mIoU.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

REQUIRED_COLUMNS = ("space", "tnb_arch_str", "valid_acc_final_epoch")
DEFAULT_TARGET = "valid_acc_final_epoch"
NASLIB_SENTINEL = -1e8  # NASLib's score for NaN/inf proxies


@dataclass(frozen=True)
class Record:
    """One benchmark architecture: its string, space, target and the CSV's other numeric columns."""

    arch: str
    space: str
    target: float
    reference: dict[str, float] = field(default_factory=dict)


def _number(text: str, where: str) -> float:
    if text == "":
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not a number") from None
    return math.nan if value == NASLIB_SENTINEL else value


def load(path: str | Path, target: str = DEFAULT_TARGET, space: str | None = None) -> list[Record]:
    """Records of the CSV at ``path`` with a finite ``target`` (optionally only one ``space``).

    NASLib's -1e8 sentinel and empty cells become NaN in ``Record.reference``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"TransNAS-Bench-101 CSV {path} not found; pass benchmark.csv=PATH (absolute, or relative to the launch "
            "directory). segnas does not ship it: it is TransNAS-Bench-101's segmentsemantic results as published "
            "by NASLib (github.com/automl/NASLib, naslib/data/zc_transbench101_{micro,macro}.json), one row per "
            f"architecture with the columns {list(REQUIRED_COLUMNS)}; build it from NASLib's public files with "
            "python -m segnas.spaces.transnas.build_csv (see its --help and conf/benchmark/transnas.yaml)"
        )
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        missing = [c for c in (*REQUIRED_COLUMNS, target) if c not in columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; found {columns}")
        numeric = [c for c in columns if c not in ("space", "tnb_arch_str", target)]
        records = []
        for row in reader:
            where = f"{path}, row {reader.line_num}"
            value = _number(row[target], f"{where}, column {target}")
            if (space is not None and row["space"] != space) or not math.isfinite(value):
                continue
            reference = {c: _number(row[c], f"{where}, column {c}") for c in numeric}
            records.append(Record(row["tnb_arch_str"], row["space"], value, reference))
    return records
