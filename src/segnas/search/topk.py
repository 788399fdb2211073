"""Greedy top-k evolution (SasWOT's search, Algorithm 1) over any space, for one goal.

Each generation breeds ``children`` offspring from the ``top_k`` best of the pool (the space's crossover
with probability ``p_crossover``, then its mutation); an offspring already seen or violating a constraint
is redrawn (``max_tries``), else replaced by a random sample; ``random_per_generation`` fresh random
samples keep diversity. The pool then keeps its ``population`` best, or, with ``clear_pool`` (the paper's
Algorithm 1 literally), only the ``top_k`` parents and the new offspring, filled up with random samples
when short. After ``patience`` generations without a new best the pool is reset to the best and random
samples. A genotype over a budget is recorded but never scored; a NaN score is an invalid individual,
never a parent. The budget is ``n_evals`` scored genotypes and/or ``generations``. A generation's new
candidates are chosen first and then scored as one batch (shared out over the ranks of a distributed job).
Randomness comes only from the seeded generator and evaluations go through the archive, so re-running on
the same archive replays the search exactly: that is how it resumes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from tqdm.auto import tqdm

from segnas.search.algorithms import GenerationCallback, SearchResult
from segnas.search.problem import Evaluated, SearchProblem


@dataclass
class TopKResult:
    """Every evaluation in order, one history row per generation and the number of resets."""

    evaluated: list[Evaluated] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)
    resets: int = 0


class _Pool:
    """Book-keeping of one run: what was seen, what was scored, the current pool."""

    def __init__(self, problem: SearchProblem, label: str, n_evals: int | None, progress: bool) -> None:
        self.problem, self.label, self.n_evals, self.progress = problem, label, n_evals, progress
        self.goal = problem.goals[0]
        self.seen: set[str] = set()
        self.members: dict[str, Evaluated] = {}
        self.result = TopKResult()
        self.best: Evaluated | None = None

    def room(self, planned: int = 0) -> float:
        """How many more genotypes may be scored (beyond ``planned`` ones not scored yet)."""
        if self.n_evals is None:
            return math.inf
        return self.n_evals - len(self.result.evaluated) - planned

    def loss(self, e: Evaluated) -> float:
        return self.goal.loss(e.metrics[self.goal.metric])

    def admit(self, genotype: Any, generation: int) -> bool:
        """True for a genotype never seen before that the problem accepts (marked seen either way; at generation
        0 as a member of the initial population)."""
        key = self.problem.key(genotype)
        if key in self.seen:
            return False
        self.seen.add(key)
        return self.problem.accepts(genotype, initial=generation == 0, generation=generation, search=self.label)

    def score(self, genotypes: Sequence[Any], generation: int) -> list[Evaluated]:
        """Score admitted genotypes as one batch; the valid ones join the pool."""
        scored = self.problem.evaluate_many(genotypes, generation, self.label, self.progress)
        for e in scored:
            self.result.evaluated.append(e)
            if math.isfinite(self.loss(e)):
                self.members[self.problem.key(e.genotype)] = e
                if self.best is None or self.loss(e) < self.loss(self.best):
                    self.best = e
        return scored

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
    pool = _Pool(problem, label, n_evals, progress)

    def random_genotype(generation: int) -> Any | None:
        drawn = space.draw_unique(rng, 1, lambda g: pool.admit(g, generation), max_tries, exclude=pool.seen,
                                  encoded=True)
        return drawn[0][1] if drawn else None

    def fill(generation: int) -> None:
        """Score random genotypes until the pool holds ``population`` valid members (or tries run out)."""
        for _ in range(max_tries):
            wanted = int(min(population - len(pool.members), pool.room()))
            if wanted <= 0:
                return
            batch = [g for g in (random_genotype(generation) for _ in range(wanted)) if g is not None]
            if not batch:
                return
            pool.score(batch, generation)

    def offspring(parents: list[Evaluated], generation: int) -> list[Any]:
        """This generation's new genotypes: children of the parents (a random one where none is new),
        then ``random_per_generation`` random ones, within the remaining budget."""
        vectors = [space.encode(e.genotype) for e in parents]
        out: list[Any] = []
        for _ in range(children):
            if pool.room(len(out)) <= 0:
                return out
            child = None
            for _ in range(max_tries):
                x = vectors[int(rng.integers(len(vectors)))]
                if len(vectors) > 1 and rng.random() < p_crossover:
                    x = space.crossover(x, vectors[int(rng.integers(len(vectors)))], rng)[0]
                genotype = space.decode(space.mutate(x, rng, p_mutate))
                if problem.key(genotype) not in pool.seen and not space.violations(genotype):
                    child = genotype if pool.admit(genotype, generation) else None
                    break
            child = child if child is not None else random_genotype(generation)
            if child is not None:
                out.append(child)
        for _ in range(random_per_generation):
            fresh = random_genotype(generation) if pool.room(len(out)) > 0 else None
            if fresh is not None:
                out.append(fresh)
        return out

    first = [g for g in initial if pool.admit(g, 0)][: int(min(len(initial), pool.room()))]
    if first:
        pool.score(first, 0)
    fill(0)
    if pool.best is None:
        raise RuntimeError(f"{label}: no valid genotype within the budgets was found; raise the budget")
    if on_generation is not None:
        on_generation(label, 0, list(pool.result.evaluated))
    stagnant, best_loss = 0, pool.loss(pool.best)
    generation = 0
    max_seen = 50 * n_evals if n_evals else math.inf  # most candidates over budget: give up eventually
    bar = tqdm(total=n_evals or generations, desc=label, disable=not progress, unit="arch" if n_evals else "gen")
    while pool.room() > 0 and (generations is None or generation < generations) and len(pool.seen) < max_seen:
        generation += 1
        before = len(pool.seen)
        parents = pool.ranked()[:top_k]
        new = [e for e in pool.score(offspring(parents, generation), generation) if math.isfinite(pool.loss(e))]
        if clear_pool:
            pool.keep([*parents, *new])
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


class TopK:
    """Greedy top-k evolution (:func:`run_topk`) of the problem's first goal; ``num_evals`` scored genotypes."""

    name: ClassVar[str] = "topk"
    multi_objective: ClassVar[bool] = False

    def __init__(self, num_evals: int = 96, population: int = 16, top_k: int = 4, children: int | None = None,
                 p_crossover: float = 0.5, mutation_prob: float = 0.1, patience: int | None = None,
                 clear_pool: bool = False, random_per_generation: int = 0, seed: int = 0,
                 progress: bool = True) -> None:
        self.num_evals, self.population, self.top_k = int(num_evals), int(population), int(top_k)
        self.children = None if children is None else int(children)
        self.p_crossover, self.mutation_prob = float(p_crossover), float(mutation_prob)
        self.patience = None if patience is None else int(patience)
        self.clear_pool, self.random_per_generation = bool(clear_pool), int(random_per_generation)
        self.seed, self.progress = int(seed), bool(progress)

    @property
    def batch_size(self) -> int:
        return self.population

    def run(self, problem: SearchProblem, initial: Sequence[Any] = (),
            on_generation: GenerationCallback | None = None) -> SearchResult:
        """Every evaluation, with the per-generation ``history`` and the number of ``resets``."""
        result = run_topk(problem, n_evals=self.num_evals, population=self.population, top_k=self.top_k,
                          children=self.children, p_crossover=self.p_crossover, p_mutate=self.mutation_prob,
                          patience=self.patience, clear_pool=self.clear_pool,
                          random_per_generation=self.random_per_generation, initial=initial, seed=self.seed,
                          progress=self.progress, on_generation=on_generation)
        return SearchResult(result.evaluated, {"history": result.history, "resets": result.resets})
