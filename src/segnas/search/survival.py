"""NSGA-II survival with the crowding distance weighted by objective weights (HyCTAS Algorithm 1: "pick n
individual architectures by ranks and the crowding distance weighted by w"), and a survival that tells the
search problem the set it sorts (Algorithm 1's ``S``, for its ``S_max`` read as the set's slowest member)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
from pymoo.core.survival import Survival
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


class SortedSetSurvival(Survival):
    """``survival`` after telling the search problem the set it is given (``R_i = P_i ∪ Q_i``, which
    non-dominated sorting orders: Algorithm 1's ``S``) through
    :meth:`~segnas.search.problem.SearchProblem.sorted_set`; the survivors are ``survival``'s."""

    def __init__(self, survival: Survival) -> None:
        super().__init__(filter_infeasible=survival.filter_infeasible)
        self.survival = survival

    def do(self, problem: Any, pop: Any, *args: Any, **kwargs: Any) -> Any:
        search = problem.search
        search.sorted_set([search.space.decode(x) for x in pop.get("X")])
        return self.survival.do(problem, pop, *args, **kwargs)
