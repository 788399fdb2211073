"""Collect NSGA-II and random-search results into experiments/search_vs_random/summary.json.

``python experiments/search_vs_random/summarize.py synthetic OUT``: the 5-seed synthetic study run by
``synthetic.sh`` (hypervolumes per seed, paired difference and its standard error); ``synthetic_<name> OUT
OVERRIDES``: the same study with extra overrides (``KIND=... EXTRA=... synthetic.sh``).
``... camvid OUT`` / ``... camvid_zero_shot OUT``: the CamVid studies of ``camvid.sh`` and
``camvid_zero_shot.sh`` (searched vs random architectures retrained with one recipe: val mIoU, MACs, latency,
genotype paths relative to the repository root and the command that retrains each). Other entries are kept.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SUMMARY = HERE / "summary.json"
CAMVID = ("data=camvid data.root=../shared/data/camvid data.num_workers=0 num_threads=1 seed=0 "
          "trainer.enable_progress_bar=false")
RETRAIN = {
    "camvid": "OMP_NUM_THREADS=1 python -m segnas stage=retrain stage.genotype={genotype} " + CAMVID
              + " data.image_scale=0.25 'data.crop_size=[96,128]' stage.filter_multiplier=4 trainer.max_epochs=12"
                " optim.lr=0.05 stage.latency_duration_s=1 hydra.run.dir={dir}",
    "camvid_zero_shot": "OMP_NUM_THREADS=1 python -m segnas stage=train model=fasterseg model.genotype={genotype} "
                        + CAMVID + " data.image_scale=0.5 trainer=cpu trainer.max_epochs=5 hydra.run.dir={dir}",
}


def paired(a: list[float], b: list[float]) -> dict[str, float | int]:
    """Mean paired difference a - b, its standard error and the number of wins of a."""
    diff = np.asarray(a) - np.asarray(b)
    return {"mean_difference": float(diff.mean()), "standard_error": float(diff.std(ddof=1) / np.sqrt(len(diff))),
            "wins": int((diff > 0).sum()), "n": len(diff)}


def synthetic(out: Path, extra: str = "") -> dict:
    """A synthetic entry from the run folders ``OUT/seed_<s>`` (the recorded command plus ``extra`` overrides)."""
    command = (json.loads((HERE / "synthetic_command.json").read_text())["command"] + " " + extra).strip()
    runs = sorted(out.glob("seed_*/results.json"), key=lambda p: int(p.parent.name.split("_")[1]))
    results = [json.loads(p.read_text()) for p in runs]
    entry = {
        "command": command,
        "seeds": [int(p.parent.name.split("_")[1]) for p in runs],
        "nsga2_hv": [r["hypervolume"] for r in results],
        "random_hv": [r["hypervolume_random"] for r in results],
        "hv_reference": results[0]["hv_reference"] if results else None,
        "n_evaluated": [r["n_evaluated"] for r in results],
        "n_evaluated_random": [r["n_evaluated_random"] for r in results],
    }
    entry["nsga2_minus_random"] = paired(entry["nsga2_hv"], entry["random_hv"])
    return entry


def camvid(kind: str, out: Path) -> dict:
    """Searched vs random architectures of a CamVid study: search metrics, retrained val mIoU and costs."""
    search = json.loads((out / "search" / "results.json").read_text())
    entry: dict = {"retrain_command": RETRAIN[kind], "search_run": str(out / "search"),
                   "hypervolume": search["hypervolume"], "hypervolume_random": search.get("hypervolume_random"),
                   "hv_reference": search["hv_reference"]}
    for group in ("searched", "random"):
        genotypes = sorted((HERE / kind).glob(f"{group}_*.yaml"))
        trained = [json.loads((out / ("retrain" if kind == "camvid" else "train") / g.stem / "results.json")
                              .read_text()) for g in genotypes]
        entry[f"{group}_genotypes"] = [str(g.relative_to(REPO)) for g in genotypes]
        entry[f"{group}_search_metrics"] = [yaml.safe_load(g.read_text())["metrics"] for g in genotypes]
        entry[f"{group}_val_miou"] = [t["val/mIoU"] for t in trained]
        entry[f"{group}_val_miou_best"] = [t["val/mIoU_best"] for t in trained]
        for key in ("macs_g", "fps"):  # stage=retrain measures both; stage=train only the FPS
            if all(key in t for t in trained):
                entry[f"{group}_{key}"] = [t[key] for t in trained]
    entry["searched_minus_random"] = paired(entry["searched_val_miou"], entry["random_val_miou"])
    return entry


def main(kind: str, out: Path, extra: str = "") -> None:
    summary = json.loads(SUMMARY.read_text()) if SUMMARY.is_file() else {}
    if kind.startswith("synthetic"):
        summary[kind] = synthetic(out, extra)
    elif kind in RETRAIN:
        summary[kind] = camvid(kind, out)
    else:
        raise SystemExit(f"unknown entry {kind!r}: synthetic, {', '.join(RETRAIN)}")
    SUMMARY.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary[kind], indent=2))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), " ".join(sys.argv[3:]))
