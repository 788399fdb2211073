"""What a search optimises, independent of the algorithm: a space, goals and budgets over evaluated metrics.

A :class:`SearchProblem` only evaluates (pymoo's habit): its :class:`~segnas.search.evaluator.Evaluator`
computes metrics through the archive. Budgets (``metric <= max``, e.g. latency or MACs; a number, or a
function of the genotype such as a fraction of the largest network's latency) are checked first, from
cheap metrics, and a genotype over budget is never scored (Algorithm 1's latency filter). Floors
(``metric >= min``, e.g. mIoU_min) either reject a genotype after it is scored (Algorithm 1: it is not
added to the population and another is bred) or, with ``reject_below_floors=False``, are constraints
that rank it behind every feasible one. Algorithm 1 filters offspring only: with ``filter_initial=False`` the
genotype-dependent budgets (its latency filter) and the rejecting floors (its mIoU_min) spare a search's
initial population ("uniformly generate the populations").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from segnas.search.evaluator import Evaluator
from segnas.spaces.base import SearchSpace

MAX_REJECTED_FIRST = 500  # candidates rejected before any is accepted: the budgets cannot be met


def _shown(limit: float | Callable[[Any], float]) -> Any:
    """A budget as a number or, when it depends on the genotype, its fraction of S_max."""
    return f"{limit.fraction} x S_max" if hasattr(limit, "fraction") else limit


@dataclass(frozen=True)
class Goal:
    """One objective: a metric of the evaluator, maximised or minimised."""

    metric: str
    maximize: bool = False

    def loss(self, value: float) -> float:
        """The value as a quantity to minimise (NaN, an invalid score, becomes +inf)."""
        if not math.isfinite(value):
            return math.inf
        return -value if self.maximize else value


@dataclass(frozen=True)
class Evaluated:
    """One evaluation made by a search: the genotype, its metrics, the generation and the search's label."""

    genotype: Any
    metrics: dict[str, float]
    generation: int
    search: str


@dataclass
class SearchProblem:
    """A space, the goals to optimise and the budgets/floors every candidate must respect.

    Args:
        space: the search space.
        evaluator: computes every metric named by ``goals``, ``budgets`` and ``floors`` through the archive.
        goals: the objectives (first one: the quality metric of single-objective searches).
        budgets: ``metric -> max`` (a number or ``genotype -> number``); a genotype above is rejected before
            its goals are computed.
        floors: ``metric -> min``; rejected below (``reject_below_floors``) or a constraint
            ``min - value <= 0`` that multi-objective search ranks last.
        reject_below_floors: whether floors reject (Algorithm 1) or constrain.
        filter_initial: whether the genotype-dependent budgets and the rejecting floors also apply to a
            search's initial population (``accepts(initial=True)``); fixed budgets always do.
    """

    space: SearchSpace
    evaluator: Evaluator
    goals: Sequence[Goal]
    budgets: Mapping[str, float | Callable[[Any], float]] = field(default_factory=dict)
    floors: Mapping[str, float] = field(default_factory=dict)
    reject_below_floors: bool = False
    filter_initial: bool = True
    assembly: Any = field(default=None, compare=False)  # what segnas.search.build_problem made beside it
    rejected_first: int = field(default=0, compare=False)  # candidates rejected before the first accepted; -1: none

    def __post_init__(self) -> None:
        if not self.goals:
            raise ValueError("a search problem needs at least one goal")
        names = [g.metric for g in self.goals] + list(self.budgets) + list(self.floors)
        unknown = sorted(set(names) - set(self.evaluator.objectives))
        if unknown:
            raise KeyError(f"metrics {unknown} have no objective; known: {sorted(self.evaluator.objectives)}")

    def on(self, space: SearchSpace) -> SearchProblem:
        """The same problem over another (sub-)space."""
        return SearchProblem(space, self.evaluator, self.goals, self.budgets, self.floors, self.reject_below_floors,
                             self.filter_initial, self.assembly)

    def key(self, genotype: Any) -> str:
        """The space's canonical key of ``genotype``."""
        return self.space.key(genotype)

    def limit(self, metric: str, genotype: Any) -> float:
        """The budget of ``metric`` for ``genotype``."""
        limit = self.budgets[metric]
        return float(limit(genotype) if callable(limit) else limit)

    def accepts(self, genotype: Any, initial: bool = False, **info: Any) -> bool:
        """No constraint violated, every budget metric (computed through the archive) within its max and,
        with ``reject_below_floors``, every floor metric (the score: computed now) at or above its min. For a
        member of a search's ``initial`` population without ``filter_initial``, only the fixed budgets apply.
        Fails when the first :data:`MAX_REJECTED_FIRST` candidates are all rejected (a budget no network of
        the space meets: it would otherwise archive thousands of rejected candidates first)."""
        if self._accepts(genotype, initial, **info):
            self.rejected_first = -1  # one was accepted: the budgets can be met
            return True
        if self.rejected_first >= 0:
            self.rejected_first += 1
            if self.rejected_first >= MAX_REJECTED_FIRST:
                raise RuntimeError(
                    f"none of the first {MAX_REJECTED_FIRST} candidates is within the budgets "
                    f"{ {m: _shown(limit) for m, limit in self.budgets.items()} } or above the floors "
                    f"{dict(self.floors)}: "
                    "raise the budget (search.max_latency_ms, max_latency_fraction, max_macs_g, max_params_m) or "
                    "lower search.min_miou")
        return False

    def _accepts(self, genotype: Any, initial: bool, **info: Any) -> bool:
        """:meth:`accepts` for one candidate."""
        if self.space.violations(genotype):
            return False
        spared = initial and not self.filter_initial
        budgets = [m for m, limit in self.budgets.items() if not (spared and callable(limit))]
        if budgets:
            metrics = self.evaluator(genotype, budgets, **info)
            if any(metrics[m] > self.limit(m, genotype) for m in budgets):
                return False
        if self.reject_below_floors and self.floors and not spared:
            metrics = self.evaluator(genotype, list(self.floors), **info)
            return all(metrics[m] >= low for m, low in self.floors.items())
        return True

    def sorted_set(self, genotypes: Sequence[Any]) -> None:
        """Algorithm 1's ``S``: the members of a generation's non-dominated sorting, told to every budget that
        reads it (one with ``observe``, e.g. :class:`~segnas.search.goal.RelativeLatencyBudget` with
        ``s_max=sorted_set``) as their values of its metric; none: a new search starts."""
        for metric, limit in self.budgets.items():
            if hasattr(limit, "observe"):
                limit.observe([self.evaluator(g, [metric])[metric] for g in genotypes])

    def evaluate_many(
        self, genotypes: Sequence[Any], generation: int, search: str, progress: bool = False, desc: str | None = None
    ) -> list[Evaluated]:
        """All metrics of a batch (shared out over the evaluator's ranks, one round at a time)."""
        size = self.evaluator.ranks.world_size
        rounds = range(0, len(genotypes), size)
        out: list[Evaluated] = []
        for start in tqdm(rounds, desc=desc or f"{search} generation {generation}", disable=not progress, unit="round",
                          dynamic_ncols=True):
            chunk = genotypes[start : start + size]
            metrics = self.evaluator.evaluate_all(chunk, generation=generation, search=search)
            out += [Evaluated(g, m, generation, search) for g, m in zip(chunk, metrics, strict=True)]
        return out

    def losses(self, metrics: Mapping[str, float]) -> list[float]:
        """The goals' values as quantities to minimise."""
        return [g.loss(metrics[g.metric]) for g in self.goals]

    def shortfalls(self, metrics: Mapping[str, float]) -> list[float]:
        """``min - value`` of every floor used as a constraint (feasible when <= 0)."""
        return [] if self.reject_below_floors else [limit - metrics[m] for m, limit in self.floors.items()]
