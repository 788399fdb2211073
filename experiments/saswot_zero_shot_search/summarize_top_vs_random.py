"""Table of val mIoU of the zero-shot top-3 vs 3 random picks over training seeds (top_vs_random.sh).

Usage: ``python experiments/saswot_zero_shot_search/summarize_top_vs_random.py OUT_DIR`` -> OUT_DIR/top_vs_random.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def main(out: Path) -> str:
    """Write and return the Markdown table (last-epoch and best-epoch mIoU per pick and seed)."""
    search = json.loads((out / "search" / "results.json").read_text())
    lines = [
        "| group | genotype | proxy score | GMACs (256x512) | seed | val mIoU last | val mIoU best |",
        "|---|---|---|---|---|---|---|",
    ]
    means: dict[str, list[float]] = {"top": [], "random": []}
    for group, picks in (("top", search["top"]), ("random", search["random_picks"])):
        for pick in picks:
            name = Path(pick.get("genotype") or pick["path"]).stem  # new and pre-engine results.json
            for run in sorted(out.glob(f"train_{name}_seed*")):
                result = json.loads((run / "results.json").read_text())
                seed = run.name.rsplit("seed", 1)[1]
                means[group].append(result["val/mIoU"])
                lines.append(
                    f"| {group} | {name} | {pick['score']:.3f} | {pick.get('macs_g', pick.get('cost')):.3f} | {seed} "
                    f"| {result['val/mIoU']:.2f} | {result['val/mIoU_best']:.2f} |"
                )
    for group, values in means.items():
        lines.append(
            f"| **{group} mean** | | | | {len(values)} runs | **{np.mean(values):.2f} ± {np.std(values):.2f}** | |"
        )
    text = "\n".join(lines) + "\n"
    (out / "top_vs_random.md").write_text(text)
    return text


if __name__ == "__main__":
    print(main(Path(sys.argv[1])))
