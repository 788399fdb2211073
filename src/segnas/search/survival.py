"""NSGA-II survival with the crowding distance weighted by objective weights (HyCTAS Algorithm 1: "pick n
individual architectures by ranks and the crowding distance weighted by w")."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from pymoo.operators.survival.rank_and_crowding import RankAndCrowding
from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance


def weighted_crowding_distance(F: np.ndarray, weights: Sequence[float], **kwargs: object) -> np.ndarray:
    """Crowding distance whose per-objective terms (each normalised by the objective's range, boundary
    points infinite) are averaged with ``weights`` instead of equally; equal weights give NSGA-II's."""
    w = np.asarray(weights, dtype=float)
    if len(w) != F.shape[1] or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"need one non-negative weight per objective (not all 0), got {list(weights)}")
    per_objective = np.column_stack([calc_crowding_distance(F[:, [j]]) for j in range(F.shape[1])])
    with np.errstate(invalid="ignore"):  # 0 * inf for a zero weight on a boundary point
        weighted = per_objective * w
    weighted[:, w == 0] = 0.0
    return weighted.sum(axis=1) / w.sum()


def weighted_rank_and_crowding(weights: Sequence[float]) -> RankAndCrowding:
    """pymoo's rank-and-crowding survival with :func:`weighted_crowding_distance`."""
    weights = [float(x) for x in weights]
    return RankAndCrowding(crowding_func=functools.partial(weighted_crowding_distance, weights=weights))
