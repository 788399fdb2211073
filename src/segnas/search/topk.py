"""Greedy top-k evolution (SasWOT's search, Algorithm 1) over any space, for one goal.

Each generation breeds ``children`` offspring from the ``top_k`` best of the pool (the space's crossover
with probability ``p_crossover``, then its mutation); an offspring already seen or violating a constraint
is redrawn (``max_tries``), else replaced by a random sample; ``random_per_generation`` fresh random
samples keep diversity. The pool then keeps its ``population`` best, or, with ``clear_pool`` (the paper's
Algorithm 1 literally), only the ``top_k`` parents and the new offspring, filled up with random samples
when short. After ``patience`` generations without a new best the pool is reset to the best and random
samples. A genotype over a budget is recorded but never scored; a NaN score is an invalid individual,
never a parent. The budget is ``n_evals`` scored genotypes and/or ``generations``. Randomness comes only
from the seeded generator and evaluations go through the archive, so re-running on the same archive
replays the search exactly: that is how it resumes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from segnas.search.algorithms import GenerationCallback
from segnas.search.problem import Evaluated, SearchProblem


@dataclass
class TopKResult:
    """Every evaluation in order, one history row per generation and the number of resets."""

    evaluated: list[Evaluated] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)
    resets: int = 0


class _Pool:
    """Book-keeping of one run: what was seen, what was scored, the current pool."""

    def __init__(self, problem: SearchProblem, label: str, n_evals: int | None) -> None:
        self.problem, self.label, self.n_evals = problem, label, n_evals
        self.goal = problem.goals[0]
        self.seen: set[str] = set()
        self.members: dict[str, Evaluated] = {}
        self.result = TopKResult()
        self.best: Evaluated | None = None

    @property
    def done(self) -> bool:
        return self.n_evals is not None and len(self.result.evaluated) >= self.n_evals

    def loss(self, e: Evaluated) -> float:
        return self.goal.loss(e.metrics[self.goal.metric])

    def offer(self, genotype: Any, generation: int) -> Evaluated | None:
        """Evaluate a genotype never seen before that the problem accepts (None otherwise)."""
        key = self.problem.key(genotype)
        if key in self.seen or self.done:
            return None
        self.seen.add(key)
        if not self.problem.accepts(genotype, generation=generation, search=self.label):
            return None
        e = self.problem.evaluate(genotype, generation, self.label)
        self.result.evaluated.append(e)
        if math.isfinite(self.loss(e)):
            self.members[key] = e
            if self.best is None or self.loss(e) < self.loss(self.best):
                self.best = e
        return e

    def ranked(self) -> list[Evaluated]:
        """Pool members, best first (ties: evaluation order)."""
        return sorted(self.members.values(), key=self.loss)

    def keep(self, entries: Sequence[Evaluated]) -> None:
        self.members = {self.problem.key(e.genotype): e for e in entries}


def run_topk(
    problem: SearchProblem,
    *,
    n_evals: int | None = None,
    generations: int | None = None,
    population: int = 16,
    top_k: int = 4,
    children: int | None = None,
    p_crossover: float = 0.5,
    p_mutate: float = 0.1,
    patience: int | None = None,
    clear_pool: bool = False,
    random_per_generation: int = 0,
    max_tries: int = 50,
    initial: Sequence[Any] = (),
    seed: int = 0,
    label: str = "topk",
    progress: bool = True,
    on_generation: GenerationCallback | None = None,
) -> TopKResult:
    """Evolve until ``n_evals`` genotypes were scored or ``generations`` generations ran (see module doc).

    ``children`` defaults to ``population``; ``initial`` genotypes enter the first pool before random ones;
    ``on_generation(label, generation, evaluations)`` is called after the first pool (generation 0) and after
    every generation.
    """
    if n_evals is None and generations is None:
        raise ValueError("run_topk needs n_evals or generations")
    for name, value in {"population": population, "top_k": top_k, "max_tries": max_tries,
                        "n_evals": n_evals or 1, "generations": generations or 1}.items():  # fmt: skip
        if int(value) < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    if len(problem.goals) != 1:
        raise ValueError(f"top-k evolution optimises one goal, got {[g.metric for g in problem.goals]}")
    children = population if children is None else int(children)
    rng = np.random.default_rng(seed)
    space = problem.space
    pool = _Pool(problem, label, n_evals)

    def draw_random(generation: int) -> None:
        for _ in range(max_tries):
            if pool.done or pool.offer(space.decode(space.sample_encoding(rng)), generation) is not None:
                return

    def fill(generation: int) -> None:
        for _ in range(max_tries * population):
            if len(pool.members) >= population or pool.done:
                return
            pool.offer(space.decode(space.sample_encoding(rng)), generation)

    for genotype in initial:
        pool.offer(genotype, 0)
    fill(0)
    if pool.best is None:
        raise RuntimeError(f"{label}: no valid genotype within the budgets was found; raise the budget")
    if on_generation is not None:
        on_generation(label, 0, list(pool.result.evaluated))
    stagnant, best_loss = 0, pool.loss(pool.best)
    generation = 0
    bar = tqdm(total=n_evals or generations, desc=label, disable=not progress, unit="arch" if n_evals else "gen")
    max_seen = 50 * n_evals if n_evals else math.inf  # most candidates over budget: give up eventually
    while not pool.done and (generations is None or generation < generations) and len(pool.seen) < max_seen:
        generation += 1
        before = len(pool.seen)
        parents = pool.ranked()[:top_k]
        vectors = [space.encode(e.genotype) for e in parents]
        offspring: list[Evaluated] = []
        for _ in range(children):
            if pool.done:
                break
            child = None
            for _ in range(max_tries):
                x = vectors[int(rng.integers(len(vectors)))]
                if len(vectors) > 1 and rng.random() < p_crossover:
                    x = space.crossover(x, vectors[int(rng.integers(len(vectors)))], rng)[0]
                genotype = space.decode(space.mutate(x, rng, p_mutate))
                if problem.key(genotype) not in pool.seen and not space.violations(genotype):
                    child = pool.offer(genotype, generation)
                    break
            if child is None:
                draw_random(generation)
            elif math.isfinite(pool.loss(child)):
                offspring.append(child)
        for _ in range(random_per_generation):
            draw_random(generation)
        if clear_pool:
            pool.keep([*parents, *offspring])
            fill(generation)
        pool.keep(pool.ranked()[:population])
        improved = pool.loss(pool.best) < best_loss
        best_loss, stagnant = pool.loss(pool.best), 0 if improved else stagnant + 1
        if patience is not None and stagnant >= patience:
            pool.keep([pool.best])
            fill(generation)
            pool.result.resets += 1
            stagnant = 0
        members = [e.metrics[pool.goal.metric] for e in pool.ranked()]
        pool.result.history.append({
            "generation": generation,
            "best": pool.best.metrics[pool.goal.metric],
            "population_best": members[0] if members else math.nan,
            "population_mean": float(np.mean(members)) if members else math.nan,
            "evaluated": len(pool.result.evaluated),
        })
        if on_generation is not None:
            on_generation(label, generation, list(pool.result.evaluated))
        bar.n = len(pool.result.evaluated) if n_evals else generation
        bar.refresh()
        if len(pool.seen) == before:
            break  # nothing new can be drawn: the reachable space is exhausted
    bar.close()
    return pool.result
