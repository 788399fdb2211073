"""A search from start to results: warm start, the algorithm, the random baseline at the same number of
distinct architectures, the front, hypervolumes and every output file of the run folder."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segnas.callbacks.history import write_rows_csv
from segnas.search import report
from segnas.search.algorithms import GenerationCallback, RandomSearch, SearchAlgorithm, unique
from segnas.search.costs import agreement
from segnas.search.goal import HVReference, RelativeLatencyBudget, hv_reference
from segnas.search.pareto import hypervolume
from segnas.search.plot import plot_search
from segnas.search.problem import Evaluated, SearchProblem
from segnas.search.warm_start import warm_start

log = logging.getLogger(__name__)


@dataclass
class SearchOutcome:
    """The distinct evaluations of the search and of its random baseline, the algorithm's extras, the warm
    start's summary and the search's wall time."""

    evaluated: list[Evaluated]
    baseline: list[Evaluated] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    warm: dict[str, Any] | None = None
    seconds: float = 0.0
    n_computed_search: int = 0


def run_search(problem: SearchProblem, algorithm: SearchAlgorithm,
               on_generation: GenerationCallback | None = None) -> SearchOutcome:
    """Warm start (``search.warm_start``), run ``algorithm``, then random search over as many distinct
    architectures (``search.random_baseline``, seed + 1000); fails when nothing valid was evaluated."""
    goal = problem.assembly.goal
    start = time.perf_counter()
    initial, warm = warm_start(problem, algorithm.batch_size) if goal.warm_start else ([], None)
    result = algorithm.run(problem, initial, on_generation)
    seconds, n_computed = time.perf_counter() - start, problem.evaluator.n_computed
    distinct = unique(problem, result.evaluated)
    score = problem.goals[0].metric
    if not distinct:
        raise RuntimeError("no architecture was evaluated: every candidate violated a constraint or a budget "
                           f"({dict(problem.budgets) or 'none'}); raise the budget")
    if not any(math.isfinite(e.metrics[score]) for e in distinct):
        raise RuntimeError(f"every one of the {len(distinct)} evaluated architectures has an invalid (non-finite) "
                           f"{score}: a diverged supernet or a proxy that does not apply; see "
                           f"{problem.evaluator.archive.path}")
    baseline: list[Evaluated] = []
    if goal.random_baseline and algorithm.name != "random":
        random = RandomSearch(len(distinct), batch=algorithm.batch_size, seed=algorithm.seed + 1000,
                              progress=algorithm.progress)
        baseline = unique(problem, random.run(problem, on_generation=on_generation).evaluated)
    return SearchOutcome(distinct, baseline, result.extra, warm, seconds, n_computed)


def search_hv_reference(problem: SearchProblem) -> HVReference:
    """The problem's hypervolume reference (``search.hv_ref_cost``, see :func:`segnas.search.goal.hv_reference`);
    every rank of a job calls it in step (a latency table prices on rank 0)."""
    setup = problem.assembly
    return hv_reference(setup.goal, problem.space, setup.costs.objectives[setup.goal.cost_metric])


def write_outputs(out: Path, problem: SearchProblem, algorithm: SearchAlgorithm, outcome: SearchOutcome,
                  table: str, top_n: int, retrain: str | None, check_archs: int = 0,
                  reference: HVReference | None = None) -> dict[str, Any]:
    """``pareto.csv``, ``genotypes/{arch,rank,random}_NN.yaml``, the evaluations table, ``best_so_far.csv`` (the
    running best score per evaluation) and ``pareto.png``; returns the results (hypervolumes with their
    reference, front, top picks, best score, summaries, counts, with a benchmark table the ground truth of the
    top picks and, with a latency table and ``check_archs``, its agreement with measured latency on that many
    networks). ``reference``: the hypervolume reference (:func:`search_hv_reference`; None: computed here)."""
    setup, goal = problem.assembly, problem.assembly.goal
    score, cost = setup.score_metric, goal.cost_metric
    distinct, baseline = outcome.evaluated, outcome.baseline
    front = report.front_of(distinct, score, cost, goal.min_miou)
    measured_on = {"score_network": setup.network, "cost_network": setup.cost_network,
                   "cost_input": setup.cost_input, "num_classes": setup.num_classes}
    front_rows = report.write_front(out, front, retrain, measured_on)
    write_rows_csv(out / table, report.rows(distinct + baseline))
    top = report.write_genotypes(out, report.ranked(distinct, score)[:top_n], "rank", retrain, measured_on)
    png = plot_search(distinct, cost, out / "pareto.png", baseline, score=score, min_score=goal.min_miou,
                      title=f"{problem.space.name} {algorithm.name} search")
    everything = distinct + baseline
    reference = reference or search_hv_reference(problem)
    ref_cost = reference.resolve([e.metrics[cost] for e in everything])
    score_range = (0.0, 100.0) if score == "miou" else _score_range(everything, score)
    results: dict[str, Any] = {
        "space": problem.space.name,
        "score": setup.score.name,
        "score_metric": score,
        "algorithm": algorithm.name,
        "objective": goal.objective,
        "cost_metric": cost,
        "budgets": {m: b.describe() if isinstance(b, RelativeLatencyBudget) else b
                    for m, b in problem.budgets.items()},
        "n_evaluated": len(distinct),
        "hypervolume": _hypervolume(front, score, cost, ref_cost, score_range),
        "hv_reference": {score: score_range[0], cost: ref_cost, "score_range": list(score_range),
                         "source": reference.source},
        "pareto": front_rows,
        "top": top,
        "summary": report.summary(distinct, score, cost),
        "search_seconds": outcome.seconds,
        "seconds_per_evaluation": outcome.seconds / outcome.n_computed_search if outcome.n_computed_search
        else None,
        **outcome.extra,
        **setup.score.report(),
        "pareto_png": str(png) if png else None,
    }
    results["best_score"] = results["summary"]["best_score"]
    write_rows_csv(out / "best_so_far.csv", report.best_so_far(distinct, score))
    if setup.ground_truth is not None:  # reported, never used by the search
        keys = [problem.key(e.genotype) for e in report.ranked(distinct, score)]
        results["ground_truth"] = setup.ground_truth.picks(keys, top_n)
    if outcome.warm is not None:
        results["warm_start"] = outcome.warm
    random_picks = report.write_genotypes(out, baseline[:top_n], "random", retrain, measured_on)  # none: stale gone
    if baseline:
        random_front = report.front_of(baseline, score, cost, goal.min_miou)
        results["n_evaluated_random"] = len(baseline)
        results["hypervolume_random"] = _hypervolume(random_front, score, cost, ref_cost, score_range)
        results["summary_random"] = report.summary(baseline, score, cost)
        results["beats_random"] = bool(results["hypervolume"] > results["hypervolume_random"])
        results["best_score_beats_random"] = bool(results["summary"]["best_score"]
                                                  > results["summary_random"]["best_score"])
        results["random_picks"] = random_picks
    if setup.costs.table is not None:
        results["latency_table"] = setup.costs.describe()
        if check_archs > 0:
            genotypes = check_genotypes(distinct, front, check_archs, setup.run.seed)
            results["lut_agreement"] = agreement(setup.costs.table, setup.costs.measured, genotypes)
    return results


def check_genotypes(evaluated: list[Evaluated], front: list[Evaluated], n: int, seed: int) -> list[Any]:
    """The front (at most ``n`` of it) plus random other evaluated genotypes, ``n`` in all (fewer when fewer
    were evaluated): the lookup-table agreement check."""
    chosen = [e.genotype for e in front[:n]]
    others = [e.genotype for e in evaluated if e not in front]
    k = min(n - len(chosen), len(others))
    picks = np.random.default_rng(seed).choice(len(others), size=k, replace=False)
    return chosen + [others[i] for i in sorted(picks)]


def _score_range(evaluated: list[Evaluated], score: str) -> tuple[float, float]:
    values = [e.metrics[score] for e in evaluated if math.isfinite(e.metrics[score])]
    if not values or max(values) == min(values):
        return (0.0, 1.0)
    return (min(values), max(values))


def _hypervolume(front: list[Evaluated], score: str, cost: str, ref_cost: float,
                 score_range: tuple[float, float]) -> float:  # fmt: skip
    return hypervolume([e.metrics[score] for e in front], [e.metrics[cost] for e in front], ref_cost, score_range)
