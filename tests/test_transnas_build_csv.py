"""``python -m segnas.spaces.transnas.build_csv``: the TransNAS CSV from fixture files in NASLib's formats."""

from __future__ import annotations

import ast
import csv
import io
import json
import lzma
import tarfile
import zipfile
from pathlib import Path

import pytest

from segnas.spaces.transnas.build_csv import COLUMNS, PROXIES, arch_string, main

from conftest import SHARED_DATA

TNB = SHARED_DATA / "transnas"


def _write_inputs(
    tmp: Path, zen: dict[str, list[dict]], early: dict[str, dict], archs: dict[str, dict]
) -> list[str]:
    """NASLib-format files under ``tmp`` (micro zen file in a tar.xz, macro in a zip as NASLib ships it; micro zc
    JSON xz-compressed); the CLI arguments."""
    data = {s: json.dumps(entries).encode() for s, entries in zen.items()}
    name = "zen/benchmark--transbench101_{}--segmentsemantic--0.json"
    with tarfile.open(tmp / "micro.tar.xz", "w:xz") as tar:
        info = tarfile.TarInfo(name.format("micro"))
        info.size = len(data["micro"])
        tar.addfile(info, io.BytesIO(data["micro"]))
    with zipfile.ZipFile(tmp / "macro.zip", "w") as archive:
        archive.writestr(name.format("macro"), data["macro"])
    args = ["--zen", str(tmp / "micro.tar.xz"), str(tmp / "macro.zip"), "--out", str(tmp / "out" / "tnb.csv")]
    for space in ("micro", "macro"):
        zc = json.dumps({"class_object": {}, "segmentsemantic": early[space]})
        path = tmp / f"zc_{space}.json{'.xz' if space == 'micro' else ''}"
        path.write_bytes(lzma.compress(zc.encode()) if space == "micro" else zc.encode())
        (tmp / f"archs_{space}.json").write_text(json.dumps(archs[space]))
        args += [f"--zc-{space}", str(path), f"--archs-{space}", str(tmp / f"archs_{space}.json")]
    return args


def _proxies(value: float) -> dict[str, dict[str, float]]:
    return {p: {"score": value, "time": 0.1} for p in PROXIES}


def test_arch_strings() -> None:
    assert arch_string("micro", "(3, 3, 3, 3, 1, 0)") == "64-41414-3_33_310"
    assert arch_string("macro", (1, 2, 3, 3, 0, 0)) == arch_string("macro", "(1, 2, 3, 3)") == "64-1233-basic"
    with pytest.raises(ValueError, match="6 op codes"):
        arch_string("micro", (1, 2))


def test_builds_rows_from_fixture_files(tmp_path: Path) -> None:
    archs = {"micro": {"0": "(2, 3, 2, 3, 2, 3)", "1": "(0, 0, 0, 0, 0, 0)"}, "macro": {"0": "(4, 1, 2, 3)"}}
    zen = {
        "micro": [{"idx": 1, "arch": "x", "zen": {"score": -1e8, "time": 0.1}, "val_accuracy": 90.5},
                  {"idx": 0, "arch": "x", "zen": {"score": 12.5, "time": 0.1}, "val_accuracy": 93.25}],
        "macro": [{"idx": 0, "arch": "x", "zen": {"score": 7.0, "time": 0.1}, "val_accuracy": 94.0}],
    }  # fmt: skip
    early = {"micro": {"(2, 3, 2, 3, 2, 3)": {"idx": 9, "val_accuracy": 93.5, **_proxies(-1e8)}},
             "macro": {"(4, 1, 2, 3, 0, 0)": {"idx": 9, "val_accuracy": 94.5, **_proxies(2.0)}}}  # fmt: skip
    out = main(_write_inputs(tmp_path, zen, early, archs))
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert tuple(rows[0]) == COLUMNS
    assert rows[1] == [
        "micro",
        "64-41414-2_32_323",
        "0",
        "93.25",
        "12.5",
        "93.5",
        *["-100000000.0"] * len(PROXIES),
    ]
    assert rows[2] == ["micro", "64-41414-0_00_000", "1", "90.5", "-100000000.0", *[""] * (1 + len(PROXIES))]
    assert rows[3] == ["macro", "64-4123-basic", "0", "94.0", "7.0", "94.5", *["2.0"] * len(PROXIES)]


@pytest.mark.skipif(not (TNB / "tnb101_segmentsemantic_dev.csv").exists(), reason=f"{TNB} not present")
def test_rows_agree_with_the_dev_csv(tmp_path: Path) -> None:
    """Real values of a few dev-CSV architectures in NASLib's formats rebuild their dev-CSV lines exactly."""
    text = (TNB / "tnb101_segmentsemantic_dev.csv").read_text()
    dev = list(csv.DictReader(io.StringIO(text)))
    picks = [next(r for r in dev if r["space"] == s and (r["grasp"] != "") == e and (r["zen"] == "-100000000.0") == z)
             for s, e, z in [("micro", True, False), ("micro", False, False), ("micro", True, True),
                             ("macro", True, False), ("macro", False, False)]]  # fmt: skip
    archs = {
        s: json.loads((TNB / f"naslib_archs_transbench101_{s}.json").read_text()) for s in ("micro", "macro")
    }
    zen: dict[str, list[dict]] = {"micro": [], "macro": []}
    early: dict[str, dict] = {"micro": {}, "macro": {}}
    for r in picks:
        ops = ast.literal_eval(archs[r["space"]][r["naslib_zen_idx"]])
        zen[r["space"]].append({"idx": int(r["naslib_zen_idx"]), "arch": str(ops), "val_accuracy":
                                float(r["valid_acc_final_epoch"]), "zen": {"score": float(r["zen"]), "time": 0.1}})  # fmt: skip
        if r["grasp"]:
            key = str(tuple(ops) + (0,) * (6 - len(ops)))  # the early JSON pads macro tuples to 6
            early[r["space"]][key] = {"idx": 0, "arch": key, "val_accuracy": float(r["valid_acc_best_epoch_early"]),
                                      **{p: {"score": float(r[p]), "time": 0.1} for p in PROXIES}}  # fmt: skip
    out = main(_write_inputs(tmp_path, zen, early, archs))
    built = {line.split(",")[1]: line for line in out.read_text().splitlines()[1:]}
    lines = {line.split(",")[1]: line for line in text.splitlines()}
    assert out.read_text().splitlines()[0] == text.splitlines()[0]
    assert built == {r["tnb_arch_str"]: lines[r["tnb_arch_str"]] for r in picks}
