"""Our zen vs NASLib's stored zen on macro archs, with TNB's residual-BN quirk on and off.

NASLib computed zen (Gaussian re-init, x ~ N(0, 1), train mode) on TNB's own networks, which carry the
quirk (``BatchNorm2d(planes, affine, track_running_stats)`` -> eps=1, momentum=1), at batch 32, 256x256.
Usage: ``python experiments/saswot_proxy_correlations/bn_quirk_zen_check.py [N_ARCHS]``.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from segnas.proxies import compute
from segnas.proxies.benchmark import load
from segnas.spaces import transnas

CSV = Path(__file__).resolve().parents[3] / "shared/data/transnas/tnb101_segmentsemantic_dev.csv"


def main(n: int) -> None:
    """Print zen (ours, quirk on/off) beside NASLib's for ``n`` random macro archs."""
    records = [r for r in load(CSV, space="macro") if np.isfinite(r.reference["zen"])]
    chosen = random.Random(0).sample(records, n)
    x, y = torch.randn(32, 3, 256, 256), torch.zeros(32, 256, 256, dtype=torch.long)
    rows = []
    for r in chosen:
        ours = [compute(["zen"], transnas.build(r.arch, seed=0, bn_quirk=q), x, y)["zen"] for q in (True, False)]
        rows.append((r.arch, r.reference["zen"], *ours))
        print(f"| {r.arch} | {r.reference['zen']:.2f} | {ours[0]:.2f} | {ours[1]:.2f} |", flush=True)
    ref, on, off = (np.array(c) for c in list(zip(*rows, strict=True))[1:])
    for label, ours in (("quirk on", on), ("quirk off", off)):
        print(
            f"{label}: mean |ours - NASLib| {np.abs(ours - ref).mean():.2f}, "
            f"Spearman {stats.spearmanr(ours, ref).statistic:.3f} (n={n})"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
