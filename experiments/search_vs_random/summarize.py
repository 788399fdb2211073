"""Collect NSGA-II and random-search results into experiments/search_vs_random/summary.json.

``python experiments/search_vs_random/summarize.py synthetic OUT``: the 5-seed synthetic study run by
``synthetic.sh`` (hypervolumes per seed, paired difference and its standard error). Other entries of the
summary (``camvid``, ``camvid_zero_shot``) are kept as they are.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SUMMARY = HERE / "summary.json"


def paired(a: list[float], b: list[float]) -> dict[str, float | int]:
    """Mean paired difference a - b, its standard error and the number of wins of a."""
    diff = np.asarray(a) - np.asarray(b)
    return {"mean_difference": float(diff.mean()), "standard_error": float(diff.std(ddof=1) / np.sqrt(len(diff))),
            "wins": int((diff > 0).sum()), "n": len(diff)}


def synthetic(out: Path) -> dict:
    """The synthetic entry from the run folders ``OUT/seed_<s>``."""
    command = json.loads((HERE / "synthetic_command.json").read_text())["command"]
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


def main(kind: str, out: Path) -> None:
    summary = json.loads(SUMMARY.read_text()) if SUMMARY.is_file() else {}
    if kind != "synthetic":
        raise SystemExit(f"unknown entry {kind!r}: synthetic")
    summary[kind] = synthetic(out)
    SUMMARY.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary[kind], indent=2))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
