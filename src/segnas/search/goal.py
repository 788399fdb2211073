"""What a search optimises and within which limits, whatever the algorithm: the cost traded off against the
score, budgets, the score floor, the warm start, the random baseline and the hypervolume reference.

These are the keys every ``search=`` config shares (``conf/goal/default.yaml``); the rest of a ``search=``
config is its algorithm's own settings (:func:`split_search_config`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from segnas.proxies import check_options
from segnas.spaces.base import SearchSpace

log = logging.getLogger(__name__)

COSTS = {"latency": "latency_ms", "macs": "macs_g", "params": "params_m"}
BUDGETS = {"max_latency_ms": "latency_ms", "max_macs_g": "macs_g", "max_params_m": "params_m"}
WARM_START_SELECTIONS = ("top", "pareto")
S_MAX_READINGS = ("space", "sorted_set")  # Algorithm 1's S_max: the space's largest network | the sorted set's slowest
FILTERS_ON = ("all", "offspring")  # where Algorithm 1's filters apply: every candidate | offspring only


@dataclass(frozen=True)
class SearchGoal:
    """The problem-level settings of a search (see the module doc); checked on construction."""

    objective: str = "latency"
    max_latency_ms: float | None = None
    max_latency_fraction: float | None = None
    s_max: str = "space"
    max_macs_g: float | None = None
    max_params_m: float | None = None
    min_miou: float | None = None
    min_miou_mode: str = "reject"
    filters_on: str = "all"
    warm_start: str | None = None
    warm_start_pool: int = 48
    warm_start_select: str = "pareto"
    warm_start_proxy: str = "synflow"
    warm_start_options: Mapping[str, Any] | None = None
    warm_start_batch: Mapping[str, Any] = field(default_factory=dict)
    random_baseline: bool = True
    hv_ref_cost: float | str | None = "auto"

    def __post_init__(self) -> None:
        if self.objective not in COSTS:
            raise ValueError(f"search.objective must be one of {sorted(COSTS)}, got {self.objective!r}")
        if self.warm_start not in (None, "proxy"):
            raise ValueError(f"search.warm_start must be null or 'proxy', got {self.warm_start!r}")
        if self.warm_start == "proxy":
            check_options(self.warm_start_proxy, self.warm_start_options, "search.warm_start_options")
        if self.warm_start_select not in WARM_START_SELECTIONS:
            raise ValueError(f"search.warm_start_select must be one of {list(WARM_START_SELECTIONS)}, "
                             f"got {self.warm_start_select!r}")
        if self.max_latency_fraction is not None and self.max_latency_ms is not None:
            raise ValueError("set one latency budget: search.max_latency_ms or search.max_latency_fraction")
        if self.min_miou_mode not in ("reject", "constraint"):
            raise ValueError(f"search.min_miou_mode must be 'reject' or 'constraint', got {self.min_miou_mode!r}")
        if self.s_max not in S_MAX_READINGS:
            raise ValueError(f"search.s_max must be one of {list(S_MAX_READINGS)}, got {self.s_max!r}")
        if self.filters_on not in FILTERS_ON:
            raise ValueError(f"search.filters_on must be one of {list(FILTERS_ON)}, got {self.filters_on!r}")
        if isinstance(self.hv_ref_cost, str) and self.hv_ref_cost != "auto":
            raise ValueError(f"search.hv_ref_cost must be 'auto', a cost > 0 or null, got {self.hv_ref_cost!r}")

    @property
    def cost_metric(self) -> str:
        """The metric name of ``objective`` (e.g. ``latency_ms``)."""
        return COSTS[self.objective]

    def fixed_budgets(self) -> dict[str, float]:
        """``metric -> max`` of the ``max_*`` budgets that are set."""
        return {metric: float(getattr(self, key)) for key, metric in BUDGETS.items()
                if getattr(self, key) is not None}


GOAL_KEYS = tuple(f.name for f in dataclasses.fields(SearchGoal))


@dataclass(frozen=True)
class HVReference:
    """The hypervolume's reference cost (None: the largest cost evaluated in the run, known at its end) and
    where it comes from."""

    cost: float | None
    source: str

    def resolve(self, evaluated_costs: Sequence[float]) -> float:
        """The reference cost, the largest of ``evaluated_costs`` when none is fixed."""
        return float(self.cost) if self.cost is not None else float(max(evaluated_costs))


def hv_reference(goal: SearchGoal, space: SearchSpace, cost: Callable[[Any], float]) -> HVReference:
    """``search.hv_ref_cost``: a number as given; ``auto``, the largest ``cost`` of the space's reference
    networks (:meth:`~segnas.spaces.base.SearchSpace.reference_genotypes`: fixed per space, cost model and
    input, so runs and seeds compare); null, the largest cost evaluated in the run (runs do not compare)."""
    if goal.hv_ref_cost is None:
        return HVReference(None, "the largest cost evaluated in this run")
    if goal.hv_ref_cost != "auto":
        return HVReference(float(goal.hv_ref_cost), "search.hv_ref_cost")
    genotypes, source = space.reference_genotypes()
    reference = HVReference(max(float(cost(g)) for g in genotypes), source)
    log.info("hypervolume reference %s = %.4g: %s", goal.cost_metric, reference.cost, source)
    return reference


def split_search_config(search: DictConfig) -> tuple[SearchGoal, DictConfig]:
    """A ``search=`` config as its :class:`SearchGoal` and its algorithm's node (``_target_`` + own keys)."""
    goal = SearchGoal(**{k: OmegaConf.to_container(search[k], resolve=True) if OmegaConf.is_config(search[k])
                         else search[k] for k in GOAL_KEYS if k in search})
    algorithm = OmegaConf.masked_copy(search, [k for k in search if k not in GOAL_KEYS])
    return goal, algorithm


class RelativeLatencyBudget:
    """Algorithm 1's latency filter: ``genotype -> fraction x Latency(S_max)``, with one of two readings of S_max
    (``reading``, :data:`S_MAX_READINGS`):

    * ``space``: the slowest of the space's largest networks with the genotype's branch count (timed once per
      branch count). Never binds at fraction 1.0: every member of the space is at most that slow.
    * ``sorted_set``: the slowest member of the set the current generation's non-dominated sorting returned
      (Algorithm 1: ``F, S = Non-Dominated-Sorting(R_i)``, ``R_i = P_i ∪ Q_i``), told by the search through
      :meth:`observe` (NSGA-II does, per branch count when it searches per branch count); no limit before
      the first sorting (the initial population) nor outside an NSGA-II run (its random baseline, other
      algorithms). Offspring slower than every member of the generation they are bred from are rejected, so
      the slowest latency a search holds never grows.
    """

    def __init__(self, space: SearchSpace, latency: Callable[[Any], float], fraction: float,
                 reading: str = "space") -> None:
        if reading not in S_MAX_READINGS:
            raise ValueError(f"search.s_max must be one of {list(S_MAX_READINGS)}, got {reading!r}")
        if reading == "space" and not hasattr(space, "largest"):
            raise ValueError(f"search.max_latency_fraction with search.s_max=space needs a space with largest "
                             f"networks (hyctas), not {space.name!r}; search.s_max=sorted_set needs none")
        self.space, self.latency, self.fraction, self.reading = space, latency, fraction, reading
        self.s_max_ms: dict[int, float] = {}
        self.sorted_ms: float | None = None  # the current sorted set's slowest (reading sorted_set)
        self.sorted_history: list[float] = []

    def __call__(self, genotype: Any) -> float:
        if self.reading == "sorted_set":
            return math.inf if self.sorted_ms is None else self.fraction * self.sorted_ms
        n = genotype.num_branches
        if n not in self.s_max_ms:
            self.s_max_ms[n] = max(self.latency(g) for g in self.space.largest(n))
            log.info("Latency(S_max) of %d-branch networks: %.3f ms", n, self.s_max_ms[n])
        return self.fraction * self.s_max_ms[n]

    def observe(self, latencies: Sequence[float]) -> None:
        """The latencies (ms) of a generation's sorted set; none: a new search starts (no limit yet). Reading
        ``space`` ignores them."""
        if self.reading != "sorted_set":
            return
        finite = [float(v) for v in latencies if math.isfinite(v)]
        self.sorted_ms = max(finite) if finite else None
        if finite:
            self.sorted_history.append(self.sorted_ms)

    def describe(self) -> dict[str, Any]:
        """The fraction, the reading and the S_max latencies (ms): per branch count (``space``), or the sorted
        set's slowest at every generation of the run (``sorted_set``)."""
        if self.reading == "space":
            return {"fraction": self.fraction, "s_max": self.reading, "s_max_latency_ms": dict(self.s_max_ms)}
        return {"fraction": self.fraction, "s_max": self.reading, "sorted_set_s_max_ms": list(self.sorted_history)}
