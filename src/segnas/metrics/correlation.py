"""Rank and linear correlations between two score lists."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats


def rank_correlations(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    """Kendall tau-b, Spearman rho and Pearson r between ``x`` and ``y`` (NaN pairs dropped).

    Returns NaN for a coefficient that is undefined (fewer than two pairs or a constant input).
    """
    a = np.asarray(x, dtype=float)
    b = np.asarray(y, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"x and y have different lengths: {a.shape} vs {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return {"kendall": float("nan"), "spearman": float("nan"), "pearson": float("nan")}
    return {
        "kendall": float(stats.kendalltau(a, b, variant="b").statistic),
        "spearman": float(stats.spearmanr(a, b).statistic),
        "pearson": float(stats.pearsonr(a, b).statistic),
    }
