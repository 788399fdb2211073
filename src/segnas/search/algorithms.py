"""NSGA-II (pymoo) and random search over any space, for any number of goals (paper §3.4, Algorithm 1).

:class:`PymooProblem` adapts a :class:`~segnas.search.problem.SearchProblem` to pymoo: it only evaluates
(through the evaluator, so through the archive). NSGA-II is pymoo's (non-dominated sorting, crowding
distance, binary tournament) assembled from the space adapters of :mod:`segnas.search.operators`.
Budgets reject offspring before they are scored (pymoo's mating draws replacements, like ``continue`` in
Algorithm 1); floors are pymoo constraints. Re-running a search on an archive that holds its evaluations
replays it exactly (the algorithm's randomness is its own seeded generator): that is how a killed search
resumes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2 as PymooNSGA2
from pymoo.core.problem import Problem
from pymoo.operators.survival.rank_and_crowding import RankAndCrowding
from pymoo.optimize import minimize
from tqdm.auto import tqdm

from segnas.search.operators import (
    GenotypeDuplicates,
    RejectInvalid,
    SpaceCrossover,
    SpaceMutation,
    SpaceSampling,
)
from segnas.search.problem import Evaluated, SearchProblem
from segnas.search.survival import SortedSetSurvival, weighted_rank_and_crowding

# Called after every generation with the search's label, the generation index and every evaluation so far.
GenerationCallback = Callable[[str, int, list[Evaluated]], None]


@dataclass
class SearchResult:
    """Every evaluation of a search in order, and what else the algorithm reports (e.g. top-k's history)."""

    evaluated: list[Evaluated]
    extra: dict[str, Any] = field(default_factory=dict)


class SearchAlgorithm(Protocol):
    """What every search algorithm offers: constructed with its settings, run on a problem.

    ``batch_size`` is how many candidates it scores per generation (a random baseline of the same search
    uses it too); ``multi_objective`` whether it trades the score off against a cost.
    """

    name: ClassVar[str]
    multi_objective: ClassVar[bool]
    batch_size: int

    def run(self, problem: SearchProblem, initial: Sequence[Any] = (),
            on_generation: GenerationCallback | None = None) -> SearchResult: ...


class PymooProblem(Problem):
    """pymoo view of a search problem: minimise the goals' losses over the space's integer encoding.

    Args:
        search: the search problem (space, evaluator, goals, budgets, floors).
        label: name of this search in the archive and the progress bars.
        progress: show one progress bar per generation.
        on_generation: called after each generation (e.g. live dashboards).
    """

    def __init__(
        self, search: SearchProblem, label: str, progress: bool = True, on_generation: GenerationCallback | None = None,
        generations: int | None = None,
    ) -> None:
        self.search, self.label, self.progress, self.on_generation = search, label, progress, on_generation
        self.generations, self.started = generations, time.monotonic()
        xl, xu = search.space.bounds()
        super().__init__(
            n_var=len(xl), n_obj=len(search.goals), n_ieq_constr=0 if search.reject_below_floors else len(search.floors),
            xl=xl, xu=xu, vtype=int,
        )
        self.generation = 0
        self.evaluated: list[Evaluated] = []
        self.seen: set[str] = set()

    def info(self) -> dict[str, Any]:
        """What the archive records beside a metric computed now."""
        return {"generation": self.generation, "search": self.label}

    def progress_label(self) -> str:
        """``<label> generation k of N, ETA h:mm:ss`` (the whole search's ETA, from its generations so far)."""
        label = f"{self.label} generation {self.generation + 1}" + (f" of {self.generations}" if self.generations else "")
        if not (self.generations and self.generation):
            return label
        eta = (time.monotonic() - self.started) / self.generation * (self.generations - self.generation)
        return f"{label}, ETA {tqdm.format_interval(eta)}"

    def _evaluate(self, X: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        genotypes = [self.search.space.decode(x) for x in X]
        evaluated = self.search.evaluate_many(genotypes, self.generation, self.label, self.progress, self.progress_label())
        self.evaluated += evaluated
        self.seen.update(self.search.key(e.genotype) for e in evaluated)
        rows = [e.metrics for e in evaluated]
        out["F"] = np.array([self.search.losses(m) for m in rows], dtype=float)
        if self.n_ieq_constr:
            out["G"] = np.array([self.search.shortfalls(m) for m in rows], dtype=float)
        if self.on_generation is not None:
            self.on_generation(self.label, self.generation, list(self.evaluated))
        self.generation += 1


def run_nsga2(
    problem: SearchProblem,
    *,
    population: int = 40,
    generations: int = 20,
    crossover_prob: float = 0.9,
    mutation_prob: float = 0.02,
    stratified: bool = False,
    initial: Sequence[Any] = (),
    uniform_initial: bool = False,
    objective_weights: Sequence[float] | None = None,
    seed: int = 0,
    label: str = "nsga2",
    progress: bool = True,
    on_generation: GenerationCallback | None = None,
) -> list[Evaluated]:
    """NSGA-II for ``generations`` generations of ``population`` (the first: ``initial`` genotypes, then
    random samples, from the space's uniform prior with ``uniform_initial``). With ``stratified`` one search per sub-space of ``space.strata()`` (HyCTAS: per branch
    count; seeds ``seed``, ``seed + 1``, ...; ``initial`` split among them). ``objective_weights`` (one per
    goal) weight the crowding distance of the survival (None: NSGA-II's equal weights). Every survival first
    tells the problem the set it sorts (:meth:`SearchProblem.sorted_set`: Algorithm 1's ``S``), which starts
    empty for every stratum and is emptied when the search ends. Returns every evaluation."""
    _check_positive(population=population, generations=generations)
    strata = problem.space.strata() if stratified else [("", problem.space)]
    evaluated: list[Evaluated] = []
    for i, (name, space) in enumerate(strata):
        sub = problem.on(space)
        pymoo_problem = PymooProblem(sub, f"{label}_{name}" if name else label, progress, on_generation, generations)
        own = [g for g in initial if not space.violations(g)]
        sub.sorted_set([])
        survival = weighted_rank_and_crowding(objective_weights) if objective_weights else RankAndCrowding()
        algorithm = PymooNSGA2(
            pop_size=population,
            survival=SortedSetSurvival(survival),
            sampling=SpaceSampling(own, uniform_initial, first_population=True),
            crossover=SpaceCrossover(crossover_prob),
            mutation=SpaceMutation(mutation_prob),
            repair=RejectInvalid(),
            eliminate_duplicates=GenotypeDuplicates(space, pymoo_problem.seen),
        )
        minimize(pymoo_problem, algorithm, ("n_gen", generations), seed=seed + i, copy_algorithm=False, verbose=False)
        evaluated += pymoo_problem.evaluated
    problem.sorted_set([])
    return evaluated


def run_random(
    problem: SearchProblem,
    n_evaluations: int,
    *,
    batch: int = 40,
    seed: int = 0,
    label: str = "random",
    progress: bool = True,
    on_generation: GenerationCallback | None = None,
) -> list[Evaluated]:
    """Random search: ``n_evaluations`` unique accepted genotypes from the space's prior, evaluated in
    batches of ``batch`` (its "generations")."""
    _check_positive(n_evaluations=n_evaluations, batch=batch)
    pymoo_problem = PymooProblem(problem, label, progress, on_generation, -(-n_evaluations // batch))
    X = SpaceSampling().do(pymoo_problem, n_evaluations, random_state=np.random.default_rng(seed)).get("X")
    for start in range(0, len(X), batch):
        pymoo_problem.evaluate(X[start : start + batch])
    return pymoo_problem.evaluated


def unique(problem: SearchProblem, evaluated: Sequence[Evaluated]) -> list[Evaluated]:
    """First evaluation of every distinct genotype."""
    seen: dict[str, Evaluated] = {}
    for e in evaluated:
        seen.setdefault(problem.key(e.genotype), e)
    return list(seen.values())


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if int(value) < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")


class NSGA2:
    """NSGA-II (:func:`run_nsga2`) with its settings; ``initial="uniform"`` draws the first population from
    the space's uniform prior (Algorithm 1: "uniformly generate"), ``"prior"`` from its own prior."""

    name: ClassVar[str] = "nsga2"
    multi_objective: ClassVar[bool] = True

    def __init__(self, population: int = 12, generations: int = 8, crossover_prob: float = 0.9,
                 mutation_prob: float = 0.02, per_branch: bool = False, initial: str = "prior",
                 objective_weights: Sequence[float] | None = None, seed: int = 0, progress: bool = True) -> None:
        if initial not in ("prior", "uniform"):
            raise ValueError(f"search.initial must be 'prior' or 'uniform', got {initial!r}")
        if objective_weights is not None and (len(objective_weights) != 2 or min(objective_weights) < 0):
            raise ValueError(f"search.objective_weights must be 2 non-negative weights (score, cost), "
                             f"got {list(objective_weights)}")
        self.population, self.generations = int(population), int(generations)
        self.crossover_prob, self.mutation_prob = float(crossover_prob), float(mutation_prob)
        self.per_branch, self.initial = bool(per_branch), initial
        self.objective_weights = list(objective_weights) if objective_weights else None
        self.seed, self.progress = int(seed), bool(progress)

    @property
    def batch_size(self) -> int:
        return self.population

    def run(self, problem: SearchProblem, initial: Sequence[Any] = (),
            on_generation: GenerationCallback | None = None) -> SearchResult:
        """Every evaluation of the NSGA-II run."""
        return SearchResult(run_nsga2(
            problem, population=self.population, generations=self.generations,
            crossover_prob=self.crossover_prob, mutation_prob=self.mutation_prob, stratified=self.per_branch,
            initial=initial, uniform_initial=self.initial == "uniform", objective_weights=self.objective_weights,
            seed=self.seed, progress=self.progress, on_generation=on_generation))


class RandomSearch:
    """Random search (:func:`run_random`): ``num_evals`` distinct accepted genotypes in batches of ``batch``."""

    name: ClassVar[str] = "random"
    multi_objective: ClassVar[bool] = True

    def __init__(self, num_evals: int = 96, batch: int = 12, seed: int = 0, progress: bool = True) -> None:
        self.num_evals, self.batch, self.seed, self.progress = int(num_evals), int(batch), int(seed), bool(progress)

    @property
    def batch_size(self) -> int:
        return self.batch

    def run(self, problem: SearchProblem, initial: Sequence[Any] = (),
            on_generation: GenerationCallback | None = None) -> SearchResult:
        """Every evaluation of the random search (``initial`` is not used: every draw is random)."""
        return SearchResult(run_random(problem, self.num_evals, batch=self.batch, seed=self.seed,
                                       label="random", progress=self.progress, on_generation=on_generation))
