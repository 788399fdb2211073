"""pymoo operators on the HyCTAS integer encoding: sampling, gene-wise crossover and mutation, rejection
of infeasible offspring, and duplicate elimination by genotype.

The encoding (``HyCTASSpace.bounds``) is ``[branches-1] + 3 x ([op]*L + [width]*L + [down]*L) +
[fusion]*(L-1)``. The operators act on *genes*, groups of variables that only make sense together:
the branch count, each cell's ``(operator, width)`` pair, each branch slot's downsampling flags, and each
fusion gate. Branch slots beyond the branch count are not decoded but keep their values ("dormant"
branches, filled with a valid branch at sampling), so a mutation of the branch count turns them on.
The operators reach the problem through ``problem.genes``, ``problem.space`` and ``problem.accepts``
(see :class:`segnas.search.problem.SearchProblem`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from pymoo.core.crossover import Crossover
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.mutation import Mutation
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair
from pymoo.core.sampling import Sampling

from segnas.search.archive import genotype_key
from segnas.spaces.hyctas import HyCTASSpace
from segnas.spaces.hyctas.genotype import MAX_BRANCHES

MAX_DRAWS = 10_000


@dataclass(frozen=True)
class Genes:
    """Variable indices of every gene of an encoding."""

    count: int
    cells: tuple[tuple[int, int], ...]
    downs: tuple[tuple[int, ...], ...]
    gates: tuple[int, ...]
    slots: tuple[tuple[int, int], ...]  # [start, stop) of each branch slot

    @property
    def n_genes(self) -> int:
        return 1 + len(self.cells) + len(self.downs) + len(self.gates)


def hyctas_genes(space: HyCTASSpace) -> Genes:
    """The genes of ``space``'s encoding."""
    L = space.layers
    cells, downs, slots = [], [], []
    for k in range(MAX_BRANCHES):
        base = 1 + 3 * L * k
        cells += [(base + i, base + L + i) for i in range(L)]
        downs.append(tuple(range(base + 2 * L, base + 3 * L)))
        slots.append((base, base + 3 * L))
    fusion = 1 + 3 * L * MAX_BRANCHES
    return Genes(0, tuple(cells), tuple(downs), tuple(range(fusion, fusion + L - 1)), tuple(slots))


def restrict_branches(space: HyCTASSpace, num_branches: int) -> HyCTASSpace:
    """A copy of ``space`` whose sampling prior draws only ``num_branches``-branch genotypes."""
    if not 1 <= num_branches <= MAX_BRANCHES:
        raise ValueError(f"num_branches must be in 1..{MAX_BRANCHES}, got {num_branches}")
    restricted = copy.copy(space)
    restricted.branch_prior = tuple(float(i + 1 == num_branches) for i in range(MAX_BRANCHES))
    return restricted


class SpaceSampling(Sampling):
    """Draws unique genotypes from the space's prior that the problem accepts; dormant slots get the
    branches of an independent three-branch sample."""

    def _do(self, problem: Problem, n_samples: int, *args, random_state: np.random.Generator, **kwargs):
        space, genes = problem.space, problem.genes
        filler = restrict_branches(space, MAX_BRANCHES)
        rows, seen = [], set()
        for _ in range(MAX_DRAWS):
            if len(rows) == n_samples:
                break
            genotype = space.sample(random_state)
            key = genotype_key(genotype)
            if key in seen or not problem.accepts(genotype):
                continue
            seen.add(key)
            x = space.encode(genotype)
            dormant = space.encode(filler.sample(random_state))
            for start, stop in genes.slots[genotype.num_branches :]:
                x[start:stop] = dormant[start:stop]
            if genotype.num_branches == 1:
                x[list(genes.gates)] = dormant[list(genes.gates)]
            rows.append(x)
        if len(rows) < n_samples:
            raise RuntimeError(f"could only draw {len(rows)} of {n_samples} unique accepted genotypes")
        return np.array(rows, dtype=np.int64)


class GeneCrossover(Crossover):
    """Uniform crossover of genes: two parents give two complementary offspring."""

    def __init__(self, prob: float = 0.9) -> None:
        super().__init__(n_parents=2, n_offsprings=2, prob=prob)

    def _do(self, problem: Problem, X: np.ndarray, *args, random_state: np.random.Generator, **kwargs):
        genes: Genes = problem.genes
        groups = [(genes.count,), *genes.cells, *genes.downs, *((g,) for g in genes.gates)]
        _, n_matings, _ = X.shape
        out = X.copy()
        for m in range(n_matings):
            for group, swap in zip(groups, random_state.random(len(groups)) < 0.5, strict=True):
                if swap:
                    idx = list(group)
                    out[0, m, idx], out[1, m, idx] = X[1, m, idx], X[0, m, idx]
        return out


class GeneMutation(Mutation):
    """Mutates each gene with probability ``prob_var``: a new branch count, a new ``(operator, width)``
    for a cell, one downsampling moved to another layer or toggled, a flipped fusion gate."""

    def __init__(self, prob_var: float = 0.02) -> None:
        super().__init__(prob=1.0, prob_var=prob_var)

    def _do(self, problem: Problem, X: np.ndarray, *args, random_state: np.random.Generator, **kwargs):
        genes: Genes = problem.genes
        p = float(self.get_prob_var(problem))
        xl, xu = problem.xl.astype(np.int64), problem.xu.astype(np.int64)
        X = X.copy()
        for x in X:
            if xu[genes.count] > xl[genes.count] and random_state.random() < p:
                others = [v for v in range(xl[genes.count], xu[genes.count] + 1) if v != x[genes.count]]
                x[genes.count] = random_state.choice(others)
            for op, width in genes.cells:
                if random_state.random() < p:
                    n_ops, n_widths = xu[op] + 1, xu[width] + 1
                    current = x[op] * n_widths + x[width]
                    new = int(random_state.integers(n_ops * n_widths - 1))
                    new += new >= current
                    x[op], x[width] = divmod(new, n_widths)
            for idx in genes.downs:
                if random_state.random() < p:
                    flags = x[list(idx)]
                    on, off = np.flatnonzero(flags), np.flatnonzero(flags == 0)
                    if len(on) and len(off) and random_state.random() < 0.5:
                        flags[random_state.choice(on)], flags[random_state.choice(off)] = 0, 1
                    else:
                        j = random_state.integers(len(idx))
                        flags[j] = 1 - flags[j]
                    x[list(idx)] = flags
            for gate in genes.gates:
                if random_state.random() < p:
                    x[gate] = 1 - x[gate]
        return X


class RejectInvalid(Repair):
    """Drops offspring the problem does not accept (constraint violations, over the latency limit);
    pymoo's mating then draws replacements, as Algorithm 1 does."""

    def do(self, problem: Problem, pop: Population, **kwargs) -> Population:
        if len(pop) == 0:
            return pop
        keep = [problem.accepts(problem.space.decode(x)) for x in pop.get("X")]
        return pop[np.array(keep, dtype=bool)]


class GenotypeDuplicates(DuplicateElimination):
    """Duplicates are individuals that decode to the same genotype (dormant slots ignored) or, with
    ``history``, to a genotype evaluated before (so every offspring is a new architecture)."""

    def __init__(self, space: HyCTASSpace, history: set[str] | None = None) -> None:
        super().__init__()
        self.space = space
        self.history = history if history is not None else set()

    def _keys(self, pop: Population) -> list[str]:
        return [genotype_key(self.space.decode(x)) for x in pop.get("X")]

    def _do(self, pop: Population, other: Population | None, is_duplicate: np.ndarray) -> np.ndarray:
        seen = set(self.history) | (set(self._keys(other)) if other is not None else set())
        for i, key in enumerate(self._keys(pop)):
            if key in seen:
                is_duplicate[i] = True
            elif other is None:
                seen.add(key)
        return is_duplicate
