"""Multi-objective architecture search (paper §3.4, Algorithm 1): NSGA-II through pymoo and random search.

:class:`SearchProblem` only evaluates (through the :class:`~segnas.search.evaluator.Evaluator`, so
through the archive); the NSGA-II algorithm is pymoo's (non-dominated sorting, crowding distance, binary
tournament) assembled from the operators of :mod:`segnas.search.operators`. Algorithm 1's filters:
offspring over ``max_latency_ms`` are rejected before their mIoU is evaluated and replaced (like
``continue`` in the algorithm's loop); ``min_miou`` is a constraint ``min_miou - mIoU <= 0``, so an
architecture under it ranks behind every one above it and only survives when too few are above.
Re-running a search on an archive that already holds its evaluations replays it exactly (the
algorithm's randomness comes from its own seeded generator), which is how a killed search resumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.problem import Problem
from pymoo.optimize import minimize
from tqdm.auto import tqdm

from segnas.search.archive import genotype_key
from segnas.search.evaluator import Evaluator
from segnas.search.operators import (
    GeneCrossover,
    GeneMutation,
    GenotypeDuplicates,
    RejectInvalid,
    SpaceSampling,
    hyctas_genes,
    restrict_branches,
)
from segnas.spaces.hyctas import HyCTASGenotype, HyCTASSpace

MIOU, LATENCY = "miou", "latency_ms"


@dataclass(frozen=True)
class Evaluated:
    """One evaluation made by a search: the genotype, its metrics, the generation and the search's label."""

    genotype: HyCTASGenotype
    metrics: dict[str, float]
    generation: int
    search: str


class SearchProblem(Problem):
    """Minimise ``(-mIoU, cost)`` over the space's integer encoding.

    Args:
        space: the search space.
        evaluator: computes ``miou``, ``cost`` (and any other metric it has) through the archive.
        cost: the metric traded off against mIoU (``latency_ms``, ``macs_g``, ``params_m``).
        max_latency_ms: Algorithm 1's latency filter (needs a ``latency_ms`` objective); None: off.
        min_miou: Algorithm 1's mIoU_min, as a constraint; None: off.
        num_branches: search only genotypes with this many branches (None: all).
        label: name of this search in the archive and the progress bars.
        progress: show one progress bar per generation.
    """

    def __init__(
        self,
        space: HyCTASSpace,
        evaluator: Evaluator,
        cost: str = LATENCY,
        max_latency_ms: float | None = None,
        min_miou: float | None = None,
        num_branches: int | None = None,
        label: str = "nsga2",
        progress: bool = True,
    ) -> None:
        self.space = restrict_branches(space, num_branches) if num_branches else space
        self.genes = hyctas_genes(space)
        self.evaluator, self.cost, self.label, self.progress = evaluator, cost, label, progress
        self.max_latency_ms, self.min_miou = max_latency_ms, min_miou
        xl, xu = space.bounds()
        if num_branches:
            xl[self.genes.count] = xu[self.genes.count] = num_branches - 1
        super().__init__(n_var=len(xl), n_obj=2, n_ieq_constr=int(min_miou is not None), xl=xl, xu=xu, vtype=int)
        self.generation = 0
        self.evaluated: list[Evaluated] = []
        self.seen: set[str] = set()

    def _info(self) -> dict[str, Any]:
        return {"generation": self.generation, "search": self.label}

    def accepts(self, genotype: HyCTASGenotype) -> bool:
        """No constraint violated and, with a latency filter, not slower than ``max_latency_ms``."""
        if self.space.violations(genotype):
            return False
        if self.max_latency_ms is None:
            return True
        return self.evaluator(genotype, [LATENCY], **self._info())[LATENCY] <= self.max_latency_ms

    def _evaluate(self, X: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        rows = []
        desc = f"{self.label} generation {self.generation}"
        for x in tqdm(X, desc=desc, disable=not self.progress, unit="arch", dynamic_ncols=True):
            genotype = self.space.decode(x)
            metrics = self.evaluator(genotype, **self._info())
            self.evaluated.append(Evaluated(genotype, metrics, self.generation, self.label))
            self.seen.add(genotype_key(genotype))
            rows.append(metrics)
        out["F"] = np.array([[-m[MIOU], m[self.cost]] for m in rows], dtype=float)
        if self.min_miou is not None:
            out["G"] = np.array([[self.min_miou - m[MIOU]] for m in rows], dtype=float)
        self.generation += 1


def run_nsga2(
    space: HyCTASSpace,
    evaluator: Evaluator,
    *,
    cost: str = LATENCY,
    population: int = 40,
    generations: int = 20,
    crossover_prob: float = 0.9,
    mutation_prob: float = 0.02,
    per_branch: bool = False,
    max_latency_ms: float | None = None,
    min_miou: float | None = None,
    seed: int = 0,
    progress: bool = True,
) -> list[Evaluated]:
    """NSGA-II for ``generations`` generations of ``population`` (the first is the random initial
    population); with ``per_branch`` one search per branch count (seeds ``seed``, ``seed + 1``, ...),
    their evaluations concatenated. Returns every evaluation in order."""
    evaluated: list[Evaluated] = []
    for i, n in enumerate((1, 2, 3) if per_branch else (None,)):
        problem = SearchProblem(
            space, evaluator, cost, max_latency_ms, min_miou, n, f"nsga2_{n}branch" if n else "nsga2", progress
        )
        algorithm = NSGA2(
            pop_size=population,
            sampling=SpaceSampling(),
            crossover=GeneCrossover(crossover_prob),
            mutation=GeneMutation(mutation_prob),
            repair=RejectInvalid(),
            eliminate_duplicates=GenotypeDuplicates(space, problem.seen),
        )
        minimize(problem, algorithm, ("n_gen", generations), seed=seed + i, copy_algorithm=False, verbose=False)
        evaluated += problem.evaluated
    return evaluated


def run_random(
    space: HyCTASSpace,
    evaluator: Evaluator,
    n_evaluations: int,
    *,
    cost: str = LATENCY,
    batch: int = 40,
    max_latency_ms: float | None = None,
    min_miou: float | None = None,
    seed: int = 0,
    progress: bool = True,
) -> list[Evaluated]:
    """Random search: ``n_evaluations`` unique genotypes from the space's prior (the same filters),
    evaluated in batches of ``batch`` (its "generations")."""
    problem = SearchProblem(space, evaluator, cost, max_latency_ms, min_miou, None, "random", progress)
    X = SpaceSampling().do(problem, n_evaluations, random_state=np.random.default_rng(seed)).get("X")
    for start in range(0, len(X), batch):
        problem.evaluate(X[start : start + batch])
    return problem.evaluated


def unique(evaluated: Sequence[Evaluated]) -> list[Evaluated]:
    """First evaluation of every distinct genotype."""
    seen: dict[str, Evaluated] = {}
    for e in evaluated:
        seen.setdefault(genotype_key(e.genotype), e)
    return list(seen.values())
