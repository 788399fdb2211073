"""``stage=search``: one search engine for every space, score and algorithm.

``space=`` x ``score=supernet|proxy|standalone`` x ``search=nsga2|topk|random``, assembled by
:func:`segnas.search.build_problem` and :func:`segnas.search.build_algorithm`; every evaluation goes through
the run folder's ``archive.jsonl`` (a re-run resumes from it). Writes ``archive.jsonl``, ``evaluations.csv``
(or ``stage.table``), ``pareto.csv``, ``pareto.png``, ``genotypes/{arch,rank,random}_NN.yaml`` and returns
hypervolumes and counts (``results.json``).
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig

from segnas.search import build_algorithm, build_problem
from segnas.search.distributed import Ranks, job_ranks
from segnas.search.live import LiveSearch
from segnas.search.runner import run_search, search_hv_reference, write_outputs
from segnas.utils.loggers import build_loggers
from segnas.utils.run import output_dir

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Build the problem from the config, search (+ random baseline), write the outputs, return results."""
    with job_ranks() as ranks:
        return _search(cfg, ranks)


def _search(cfg: DictConfig, ranks: Ranks) -> dict[str, Any]:
    if ranks.world_size > 1 and cfg.score.get("supernet") is not None and not cfg.score.supernet.ckpt:
        raise ValueError("a multi-process search needs score.supernet.ckpt: train the supernet first "
                         "(stage=supernet, with trainer=ddp or trainer=ddp_cpu on several processes)")
    out = output_dir(cfg)
    algorithm = build_algorithm(cfg, ranks)
    problem = build_problem(cfg, out, ranks, single_objective=not algorithm.multi_objective)
    setup = problem.assembly
    score, cost, goal = setup.score_metric, setup.goal.cost_metric, setup.goal
    loggers = (setup.score.loggers() or build_loggers(cfg)) if ranks.is_main else []
    reference = search_hv_reference(problem)
    live = LiveSearch(loggers, score, cost, reference.cost, (0.0, 100.0) if score == "miou" else None,
                      goal.min_miou)
    outcome = run_search(problem, algorithm, live)
    per_rank = ranks.gather(problem.evaluator.n_computed_here)
    if not ranks.is_main:  # rank 0 writes the outputs
        return {"rank": ranks.rank, "world_size": ranks.world_size, "evaluated_per_rank": per_rank}
    retrain = str(cfg.stage.retrain_command) if cfg.stage.get("retrain_command") else None
    results = write_outputs(out, problem, algorithm, outcome, str(cfg.stage.table), int(cfg.stage.top_n), retrain,
                            check_archs=int(cfg.stage.latency.check_archs), reference=reference)
    results.update(world_size=ranks.world_size, evaluated_per_rank=per_rank,
                   n_computed_this_run=problem.evaluator.n_computed)
    live.finish({key: results.get(key) for key in ("hypervolume", "hypervolume_random", "n_evaluated")}
                | {f"best_{score}": results["summary"]["best_score"]}, results["pareto"],
                {"pareto_png": results["pareto_png"]})
    log.info("%d architectures evaluated (%d computed now), hypervolume %.4f%s; best %s %.4g",
             results["n_evaluated"], results["n_computed_this_run"], results["hypervolume"],
             f" (random search: {results['hypervolume_random']:.4f})" if outcome.baseline else "", score,
             results["summary"]["best_score"])
    return results
