"""Single-objective evolutionary search under a cost budget, and the random-search baseline.

Pure Python over any :class:`~segnas.spaces.base.SearchSpace`: candidates are integer vectors of the
space. Each generation takes the top-K scored genotypes as parents, makes children by crossover of
variable groups (the space's ``variable_groups()``, e.g. cell rows, or single variables) and mutation of
groups, drops children that are invalid or already seen (dedupe), and refills with random samples when no
new valid child is found. Genotypes over the cost budget are recorded but never scored. The budget of
both searches is the number of scored (feasible, unique) architectures.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from segnas.spaces.base import SearchSpace


@dataclass
class Candidate:
    """A genotype with its cost, proxy score (NaN: infeasible or invalid score) and how it was made."""

    genotype: Any
    cost: float
    score: float
    origin: str
    step: int

    @property
    def feasible(self) -> bool:
        return not math.isnan(self.cost)


def _groups(space: SearchSpace) -> list[list[int]]:
    groups = getattr(space, "variable_groups", None)
    return groups() if callable(groups) else [[i] for i in range(space.n_var)]


class _Runner:
    """Book-keeping shared by the evolutionary and random searches."""

    def __init__(
        self,
        space: SearchSpace,
        score: Callable[[Any], float],
        cost: Callable[[Any], float],
        max_cost: float,
        num_evals: int,
    ) -> None:
        self.space, self.score_fn, self.cost_fn = space, score, cost
        self.max_cost, self.num_evals = float(max_cost), int(num_evals)
        self.seen: dict[Any, Candidate] = {}
        self.scored: list[Candidate] = []

    @property
    def done(self) -> bool:
        return len(self.scored) >= self.num_evals

    def offer(self, genotype: Any, origin: str, step: int) -> Candidate | None:
        """Evaluate a new genotype (cost first, then score when within budget); None if already seen."""
        if genotype in self.seen:
            return None
        cost = float(self.cost_fn(genotype))
        within = math.isfinite(cost) and cost <= self.max_cost
        cand = Candidate(genotype, cost if within else math.nan, math.nan, origin, step)
        self.seen[genotype] = cand
        if within:
            cand.score = float(self.score_fn(genotype))
            self.scored.append(cand)
        return cand


def ranked(candidates: list[Candidate]) -> list[Candidate]:
    """Scored candidates with a finite score, best (highest) first; ties keep evaluation order."""
    return sorted((c for c in candidates if math.isfinite(c.score)), key=lambda c: -c.score)


def random_search(
    space: SearchSpace,
    score: Callable[[Any], float],
    cost: Callable[[Any], float],
    max_cost: float,
    num_evals: int,
    rng: np.random.Generator,
    max_draws: int | None = None,
) -> list[Candidate]:
    """Score ``num_evals`` distinct random genotypes within ``max_cost`` (at most ``max_draws`` draws)."""
    run = _Runner(space, score, cost, max_cost, num_evals)
    draws = 0
    limit = max_draws if max_draws is not None else 50 * num_evals
    while not run.done and draws < limit:
        run.offer(space.sample(rng), "random", draws)
        draws += 1
    return run.scored


def crossover(a: np.ndarray, b: np.ndarray, groups: list[list[int]], rng: np.random.Generator) -> np.ndarray:
    """Uniform crossover: every variable group comes from ``a`` or ``b`` with equal probability."""
    child = a.copy()
    for g in groups:
        if rng.random() < 0.5:
            child[g] = b[g]
    return child


def mutate(
    x: np.ndarray,
    groups: list[list[int]],
    bounds: tuple[np.ndarray, np.ndarray],
    p: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Redraw each group uniformly within bounds with probability ``p`` (at least one group changes)."""
    lo, hi = bounds
    child = x.copy()
    chosen = [g for g in groups if rng.random() < p] or [groups[int(rng.integers(len(groups)))]]
    for g in chosen:
        child[g] = rng.integers(lo[g], hi[g] + 1)
    return child


def evolutionary_search(
    space: SearchSpace,
    score: Callable[[Any], float],
    cost: Callable[[Any], float],
    max_cost: float,
    num_evals: int,
    rng: np.random.Generator,
    population: int = 16,
    top_k: int = 4,
    p_mutate: float = 0.2,
    p_crossover: float = 0.5,
    max_tries: int = 50,
) -> list[Candidate]:
    """Evolve for ``num_evals`` scored genotypes within ``max_cost``; returns them in evaluation order.

    The first ``population`` are random; then each generation of ``population`` children descends from
    the current top ``top_k`` by crossover (probability ``p_crossover``) and mutation. Stops early after
    ``50 * num_evals`` distinct genotypes were tried (most of them over budget).
    """
    if top_k < 1 or population < 1:
        raise ValueError(f"population and top_k must be positive, got {population}, {top_k}")
    run = _Runner(space, score, cost, max_cost, num_evals)
    groups, bounds = _groups(space), space.bounds()
    draws = 0
    while len(run.scored) < min(population, num_evals) and draws < 50 * population:
        run.offer(space.sample(rng), "random", 0)
        draws += 1
    step, max_offers = 0, 50 * num_evals
    while not run.done and len(run.seen) < max_offers:
        step += 1
        parents = ranked(run.scored)[:top_k] or run.scored[:top_k]
        if not parents:
            raise RuntimeError("no genotype within the cost budget was found; raise the budget")
        vecs = [space.encode(c.genotype) for c in parents]
        made = 0
        while made < population and not run.done:
            child = None
            for _ in range(max_tries):
                a = vecs[int(rng.integers(len(vecs)))]
                if len(vecs) > 1 and rng.random() < p_crossover:
                    x = crossover(a, vecs[int(rng.integers(len(vecs)))], groups, rng)
                    origin = "crossover"
                else:
                    x, origin = a, "mutation"
                x = mutate(x, groups, bounds, p_mutate, rng)
                g = space.decode(x)
                if g not in run.seen and not space.violations(g):
                    child = run.offer(g, origin, step)
                    break
            if child is None:  # random refill
                for _ in range(max_tries):
                    if run.offer(space.sample(rng), "refill", step) is not None:
                        break
            made += 1
    return run.scored
