"""Table of NSGA-II hypervolume with vs without proxy warm start (paired by seed) from the run folders."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

SEEDS = (0, 1, 2)
VARIANTS = {"plain": "NSGA-II", "warm_top": "+ warm start, top", "warm_pareto": "+ warm start, pareto"}


def main(out: Path) -> None:
    runs = {v: [json.loads((out / f"{v}_seed{s}" / "results.json").read_text()) for s in SEEDS] for v in VARIANTS}
    print("hypervolume (fixed reference: mIoU 0 %, 6.0 ms LUT latency) and best supernet mIoU, per seed\n")
    print("| seed | " + " | ".join(f"HV {label}" for label in VARIANTS.values()) + " | "
          + " | ".join(f"best mIoU {label}" for label in VARIANTS.values()) + " |")
    print("|---" * (1 + 2 * len(VARIANTS)) + "|")
    for i, seed in enumerate(SEEDS):
        hv = " | ".join(f"{runs[v][i]['hypervolume']:.4f}" for v in VARIANTS)
        best = " | ".join(f"{runs[v][i]['summary']['best_score']:.2f}" for v in VARIANTS)
        print(f"| {seed} | {hv} | {best} |")
    print()
    plain = np.array([r["hypervolume"] for r in runs["plain"]])
    for v in VARIANTS:
        hv = np.array([r["hypervolume"] for r in runs[v]])
        line = f"- {VARIANTS[v]}: {hv.mean():.4f} +- {hv.std(ddof=1):.4f} (mean +- std over {len(SEEDS)} seeds)"
        if v != "plain":
            diff = hv - plain
            se = diff.std(ddof=1) / np.sqrt(len(diff))
            evals = {r["n_evaluated"] for r in runs[v]}
            line += (f"; paired difference to plain {diff.mean():+.4f} +- {se:.4f} (standard error), wins "
                     f"{int((diff > 0).sum())} of {len(diff)}; supernet evaluations {sorted(evals)}, "
                     f"proxy pool {runs[v][0]['warm_start']['pool']}")
        print(line)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
