"""Warm start of a search: its first population chosen from a larger random pool by a zero-cost proxy."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.operators.survival.rank_and_crowding import RankAndCrowding

from segnas.proxies import resolved_options
from segnas.search.archive import Archive
from segnas.search.evaluator import Evaluator
from segnas.search.problem import SearchProblem
from segnas.search.scoring import proxy_objective

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


def warm_start(problem: SearchProblem, n: int) -> tuple[list[Any], dict[str, Any]]:
    """``n`` genotypes of ``search.warm_start_pool`` random ones within the budgets, chosen by the zero-cost
    proxy ``search.warm_start_proxy`` (options ``search.warm_start_options``) on the ``search.warm_start_batch``
    batch (scores archived in ``warm_start.jsonl``, so a resumed run does not score them again):
    ``search.warm_start_select=top`` keeps the ``n`` best proxy scores, ``pareto`` NSGA-II's rank-and-crowding
    survival over (proxy up, cost down), which keeps the first population spread over the cost range.
    ``problem`` comes from ``build_problem``."""
    setup = problem.assembly
    goal, run, space = setup.goal, setup.run, problem.space
    pool_size, proxy, cost = int(goal.warm_start_pool), str(goal.warm_start_proxy), goal.cost_metric
    if pool_size < n:
        raise ValueError(f"search.warm_start_pool ({pool_size}) must be at least the population ({n})")
    options = dict(goal.warm_start_options or {})
    score = proxy_objective(proxy, options, "avt", goal.warm_start_batch, run, space, setup.network,
                            setup.costs.objectives, goal.fixed_budgets())
    archive = Archive(run.out / "warm_start.jsonl", key=space.key,
                      context={**setup.context, "proxy": proxy, "pool": pool_size,
                               "proxy_batch": dict(goal.warm_start_batch),
                               "proxy_options": resolved_options(proxy, options)}, writable=run.ranks.is_main)
    evaluator = Evaluator({"proxy": score}, archive, run.ranks)
    rng = np.random.default_rng([run.seed, 17])
    accept = functools.partial(problem.accepts, initial=True, generation=0, search="warm_start")  # P_0's candidates
    pool = space.draw_unique(rng, pool_size, accept=accept, max_tries=50 * pool_size)
    scores = np.array([m["proxy"] for m in evaluator.evaluate_all(pool)], dtype=float)
    costs = [m[cost] for m in problem.evaluator.evaluate_all(pool, [cost], generation=0, search="warm_start")] \
        if goal.warm_start_select == "pareto" else [0.0] * len(pool)
    order = select_initial(scores, costs, n, goal.warm_start_select, rng)
    info = {"method": "proxy", "proxy": proxy, "select": goal.warm_start_select, "pool": len(pool),
            "picked": len(order), "picked_mean_proxy": float(np.nanmean(scores[order])),
            "pool_mean_proxy": float(np.nanmean(scores)), "n_computed_this_run": evaluator.n_computed}
    return [pool[i] for i in order], info
