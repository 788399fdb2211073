"""pymoo operators as thin adapters over any :class:`~segnas.spaces.base.SearchSpace`.

The space owns the genetic vocabulary (sampling, crossover, mutation, violations, canonical key); these
classes only hand pymoo's arrays to it. They reach the space and the acceptance test through the pymoo
problem (:class:`segnas.search.algorithms.PymooProblem`: ``problem.search`` is the
:class:`~segnas.search.problem.SearchProblem`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
from pymoo.core.crossover import Crossover
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.mutation import Mutation
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair
from pymoo.core.sampling import Sampling

from segnas.spaces.base import SearchSpace

MAX_DRAWS = 10_000


class SpaceSampling(Sampling):
    """Unique encodings drawn with the space's :meth:`sample_encoding` (from its :meth:`uniform` prior with
    ``uniform``) that the problem accepts; the ``initial`` genotypes (e.g. a proxy-ranked warm start) come
    first. ``first_population``: the draws are a search's initial population (accepted as such:
    :meth:`~segnas.search.problem.SearchProblem.accepts` with ``initial=True``)."""

    def __init__(self, initial: Sequence[Any] = (), uniform: bool = False, first_population: bool = False) -> None:
        super().__init__()
        self.initial, self.uniform, self.first_population = list(initial), uniform, first_population

    def _do(self, problem: Problem, n_samples: int, *args, random_state: np.random.Generator, **kwargs):
        search = problem.search
        rows, seen = [], set()
        accept = functools.partial(search.accepts, initial=self.first_population, **problem.info())
        for genotype in self.initial[:n_samples]:
            key = search.key(genotype)
            if key not in seen and accept(genotype):
                seen.add(key)
                rows.append(search.space.encode(genotype))
        prior = search.space.uniform() if self.uniform else search.space
        drawn = prior.draw_unique(random_state, n_samples - len(rows), accept, MAX_DRAWS, exclude=seen, encoded=True)
        rows += [x for x, _ in drawn]
        if len(rows) < n_samples:
            raise RuntimeError(f"could only draw {len(rows)} of {n_samples} unique accepted genotypes")
        return np.array(rows, dtype=np.int64)


class SpaceCrossover(Crossover):
    """The space's crossover: two parents give two offspring."""

    def __init__(self, prob: float = 0.9) -> None:
        super().__init__(n_parents=2, n_offsprings=2, prob=prob)

    def _do(self, problem: Problem, X: np.ndarray, *args, random_state: np.random.Generator, **kwargs):
        space: SearchSpace = problem.search.space
        out = X.copy()
        for m in range(X.shape[1]):
            out[0, m], out[1, m] = space.crossover(X[0, m], X[1, m], random_state)
        return out


class SpaceMutation(Mutation):
    """The space's mutation with per-gene probability ``prob_var``."""

    def __init__(self, prob_var: float = 0.02) -> None:
        super().__init__(prob=1.0, prob_var=prob_var)

    def _do(self, problem: Problem, X: np.ndarray, *args, random_state: np.random.Generator, **kwargs):
        space: SearchSpace = problem.search.space
        p = float(self.get_prob_var(problem))
        return np.array([space.mutate(x, random_state, p) for x in X], dtype=np.int64)


class RejectInvalid(Repair):
    """Drops offspring the problem does not accept (constraint violations, over a budget); pymoo's mating
    then draws replacements, as Algorithm 1 does."""

    def do(self, problem: Problem, pop: Population, **kwargs) -> Population:
        if len(pop) == 0:
            return pop
        search = problem.search
        keep = [search.accepts(search.space.decode(x), **problem.info()) for x in pop.get("X")]
        return pop[np.array(keep, dtype=bool)]


class GenotypeDuplicates(DuplicateElimination):
    """Duplicates are individuals with the same canonical key (so variables the decoding ignores do not
    count) or, with ``history``, one evaluated before (so every offspring is a new architecture)."""

    def __init__(self, space: SearchSpace, history: set[str] | None = None) -> None:
        super().__init__()
        self.space = space
        self.history = history if history is not None else set()

    def _keys(self, pop: Population) -> list[str]:
        return [self.space.key(self.space.decode(x)) for x in pop.get("X")]

    def _do(self, pop: Population, other: Population | None, is_duplicate: np.ndarray) -> np.ndarray:
        seen = set(self.history) | (set(self._keys(other)) if other is not None else set())
        for i, key in enumerate(self._keys(pop)):
            if key in seen:
                is_duplicate[i] = True
            elif other is None:
                seen.add(key)
        return is_duplicate
