"""From a composed config to a search: the one assembly path of every stage, experiment and test that
searches or scores architectures.

:func:`build_problem` instantiates the ``score=`` component (which also decides the space: the supernet's,
or the ``space=`` group's), the costs of the deployed network, the budgets and floors of the ``search=``
group's goal, and the evaluator over the run folder's archive keyed by everything the metrics depend on.
:func:`build_algorithm` instantiates the ``search=`` group's algorithm (:class:`~segnas.search.NSGA2`,
:class:`~segnas.search.TopK`, :class:`~segnas.search.RandomSearch`, or any class with their protocol).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from segnas.lit.fitting import instantiate_unwrapped
from segnas.search.algorithms import SearchAlgorithm
from segnas.search.archive import Archive
from segnas.search.benchmark import BenchmarkTable, ground_truth_table
from segnas.search.costs import CostModels, build_costs, build_stratified_costs, latency_model
from segnas.search.distributed import Ranks
from segnas.search.evaluator import Evaluator
from segnas.search.goal import RelativeLatencyBudget, SearchGoal, split_search_config
from segnas.search.problem import Goal, SearchProblem
from segnas.search.scoring import RunSetup
from segnas.spaces.base import SearchSpace
from segnas.utils.config import device_of, plain, to_container

log = logging.getLogger(__name__)


@dataclass
class Assembly:
    """What :func:`build_problem` made beside the problem, for the stage's outputs: the run, the goal, the
    score component and its metric name, the costs, the networks' options (as scored and as deployed) and the
    benchmark table reported beside the picks (``stage.ground_truth``, or the benchmark score's own table)."""

    run: RunSetup
    goal: SearchGoal
    score: Any
    costs: CostModels
    num_classes: int
    network: dict[str, Any]
    cost_network: dict[str, Any]
    cost_input: list[int]
    context: dict[str, Any]
    ground_truth: BenchmarkTable | None = None

    @property
    def score_metric(self) -> str:
        return str(self.score.metric)


def build_problem(cfg: DictConfig, out: Path, ranks: Ranks | None = None, archive: str = "archive.jsonl",
                  single_objective: bool = False) -> SearchProblem:
    """The search problem of a composed config: space, evaluator (``out/archive`` checked against the
    evaluation context), goals (the score; and the cost unless ``single_objective``), budgets and floors.
    ``problem.assembly`` holds the rest (:class:`Assembly`)."""
    ranks = ranks or Ranks()
    goal, _ = split_search_config(cfg.search)
    score = instantiate_unwrapped(cfg.score, _convert_="all")
    if goal.min_miou is not None and score.metric != "miou":
        raise ValueError(f"search.min_miou applies to mIoU scores, not to score {score.metric!r}")
    run = RunSetup(cfg, out, ranks, device_of(str(cfg.stage.device)))
    space, scored_options = score.space(run)
    truth_settings = cfg.stage.get("ground_truth")
    ground_truth = ground_truth_table(truth_settings, space)
    if ground_truth is not None and truth_settings.get("restrict", False):
        space = space.restrict(ground_truth.values)
    ground_truth = ground_truth or getattr(score, "table", None)  # score=benchmark: its own table
    num_classes = score.num_classes(run)
    network = {**space.build_options(), **scored_options}
    cost_network = {**network, **_cost_overrides(cfg.stage.get("cost_network"), network, space, "stage.cost_network")}
    by_stratum = {name: {**cost_network, **_cost_overrides(node, network, space, f"stage.cost_network_by_stratum.{name}")}
                  for name, node in (cfg.stage.get("cost_network_by_stratum") or {}).items()}
    if by_stratum:  # each stratum (hyctas: branch count) costed as it is deployed
        cost_network = {**cost_network, "by_stratum": by_stratum}
    cost_input = _cost_input(cfg, score)
    latency = to_container(cfg.stage.latency)
    costs = (build_stratified_costs(space, num_classes, by_stratum, cost_input, run.device, latency, ranks)
             if by_stratum else build_costs(space, num_classes, cost_network, cost_input, run.device, latency, ranks))
    budgets: dict[str, Any] = goal.fixed_budgets()
    if goal.max_latency_fraction is not None:
        budgets["latency_ms"] = RelativeLatencyBudget(space, costs.objectives["latency_ms"],
                                                      float(goal.max_latency_fraction), goal.s_max)
    wanted = [goal.cost_metric, *budgets, *cfg.stage.get("extra_metrics", [])]
    unknown = sorted(set(wanted) - set(costs.objectives))
    if unknown:
        raise ValueError(f"stage.extra_metrics: unknown metrics {unknown}; choose from {sorted(costs.objectives)}")
    objectives = {name: fn for name, fn in costs.objectives.items() if name in wanted}
    objectives[score.metric] = score.objective(run, space, network, costs.objectives, goal.fixed_budgets())
    context = evaluation_context(cfg, space, score, run, cost_input, cost_network, costs, objectives)
    evaluator = Evaluator(objectives, Archive(out / archive, key=space.key, context=context,
                                              writable=ranks.is_main), ranks)
    log.info("Archive %s holds %d architectures", evaluator.archive.path, len(evaluator.archive))
    goals = [Goal(score.metric, maximize=True)] + ([] if single_objective else [Goal(goal.cost_metric)])
    floors = {score.metric: float(goal.min_miou)} if goal.min_miou is not None else {}
    assembly = Assembly(run, goal, score, costs, num_classes, network, cost_network, cost_input, context,
                        ground_truth)
    return SearchProblem(space, evaluator, goals, budgets, floors,
                         reject_below_floors=goal.min_miou_mode == "reject",
                         filter_initial=goal.filters_on == "all", assembly=assembly)


def build_algorithm(cfg: DictConfig, ranks: Ranks | None = None) -> SearchAlgorithm:
    """The ``search=`` group's algorithm, seeded with ``cfg.seed``, with progress bars on rank 0 when
    ``stage.progress``."""
    _, node = split_search_config(cfg.search)
    progress = bool(cfg.stage.get("progress", True)) and (ranks or Ranks()).is_main
    return instantiate_unwrapped(node, seed=int(cfg.seed), progress=progress, _convert_="all")


def evaluation_context(cfg: DictConfig, space: SearchSpace, score: Any, run: RunSetup, cost_input: list[int],
                       cost_network: dict[str, Any], costs: CostModels, metrics: Collection[str]) -> dict[str, Any]:
    """What the archived ``metrics`` depend on: a different context never reuses them (the latency table's
    identity only where the latency is one of them)."""
    return {
        "space": {"name": space.name, **{k: v for k, v in vars(space).items()
                                         if isinstance(v, int | float | str | tuple | list | None)}},
        "score": plain(cfg.score),
        **score.context(run),
        "data": to_container(cfg.data) if score.uses_data(cfg.get("data")) else None,
        "cost_input": cost_input,
        "cost_network": cost_network,
        "latency_model": latency_model(space, str(cfg.stage.latency.model)),
        # file (device, input, network) and id of rank 0's table
        "latency_table": costs.table_identity if "latency_ms" in metrics else None,
        "seed": int(cfg.seed),
    }


def _cost_overrides(overrides: DictConfig | None, network: dict[str, Any], space: SearchSpace,
                    key: str) -> dict[str, Any]:
    given = {k: v for k, v in to_container(overrides).items() if v is not None}
    unknown = sorted(set(given) - set(network))
    if unknown:
        raise ValueError(f"{key}: {unknown} are not options of a {space.name} network "
                         f"(it takes {sorted(network)})")
    return given


def _cost_input(cfg: DictConfig, score: Any) -> list[int]:
    """``stage.cost_input``; else one image of the data's crop size, or (no data) the score's default."""
    if cfg.stage.get("cost_input"):
        return [int(v) for v in cfg.stage.cost_input]
    if score.uses_data(cfg.get("data")):
        return [1, 3, *(int(v) for v in cfg.data.crop_size)]
    return score.cost_input()
