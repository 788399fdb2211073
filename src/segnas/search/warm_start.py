"""Warm start of a search: its first population chosen from a larger random pool by a zero-cost proxy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.operators.survival.rank_and_crowding import RankAndCrowding

SELECTIONS = ("top", "pareto")


def select_initial(
    proxy: Sequence[float], cost: Sequence[float], n: int, select: str, rng: np.random.Generator
) -> list[int]:
    """Indices of the ``n`` pool members to start from: ``top`` the best proxy scores; ``pareto`` NSGA-II's
    rank-and-crowding survival over (proxy up, cost down), which keeps them spread over the cost range.
    A NaN proxy score ranks last."""
    if select not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {select!r}")
    if not 0 < n <= len(proxy) == len(cost):
        raise ValueError(f"need 0 < n <= pool size with one cost per score, got n={n}, {len(proxy)}, {len(cost)}")
    scores = np.asarray(proxy, dtype=float)
    losses = np.where(np.isfinite(scores), -scores, np.inf)
    if select == "top":
        return np.argsort(losses, kind="stable")[:n].tolist()
    F = np.column_stack([losses, np.asarray(cost, dtype=float)])
    F[~np.isfinite(F).all(axis=1)] = np.finfo(float).max  # an invalid score is dominated by every valid one
    pop = Population.new(X=np.arange(len(F))[:, None], F=F)
    survivors = RankAndCrowding().do(Problem(n_var=1, n_obj=2), pop, n_survive=n, random_state=rng)
    return survivors.get("X")[:, 0].astype(int).tolist()
