"""Pareto fronts and hypervolume of (mIoU up, cost down) points."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting


def pareto_indices(miou: Sequence[float], cost: Sequence[float]) -> list[int]:
    """Indices of the non-dominated points (higher mIoU, lower cost), ordered by cost; NaN points skipped."""
    F = np.column_stack([-np.asarray(miou, dtype=float), np.asarray(cost, dtype=float)])
    finite = np.flatnonzero(np.isfinite(F).all(axis=1))
    if finite.size == 0:
        return []
    front = finite[NonDominatedSorting().do(F[finite], only_non_dominated_front=True)]
    return sorted(front.tolist(), key=lambda i: (F[i, 1], F[i, 0], i))


def hypervolume(
    miou: Sequence[float], cost: Sequence[float], ref_cost: float, score_range: tuple[float, float] = (0.0, 100.0)
) -> float:
    """Area dominated by the points in the normalised plane ``((top - score) / (top - bottom), cost / ref_cost)``
    up to the reference point ``(1, 1)`` (score ``bottom``, cost ``ref_cost``), where ``score_range`` is
    ``(bottom, top)`` (mIoU: 0 to 100 %): 0 = nothing, 1 = a perfect free network."""
    if ref_cost <= 0:
        raise ValueError(f"ref_cost must be positive, got {ref_cost}")
    bottom, top = score_range
    if not top > bottom:
        raise ValueError(f"score_range must be (bottom, top) with top > bottom, got {score_range}")
    F = np.column_stack(
        [(top - np.asarray(miou, dtype=float)) / (top - bottom), np.asarray(cost, dtype=float) / ref_cost]
    )
    F = F[np.isfinite(F).all(axis=1)]
    if len(F) == 0:
        return 0.0
    return float(HV(ref_point=np.ones(2))(F))
