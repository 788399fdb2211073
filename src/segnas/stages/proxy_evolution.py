"""``stage=proxy_evolution``: search a zero-cost proxy expression on TransNAS-Bench-101 (SasWOT §3.3).

The expression space (:class:`~segnas.proxies.expression_space.ExpressionSpace`) + a Kendall score
(:class:`~segnas.proxies.evolution.TrainFitness`: mean over ``stage.spaces`` of Kendall tau on cached
statistics of ``train_archs`` archs per space, exact or sketched) + the ``search=`` group's algorithm
(``search=topk``, keys under ``search.``; ``search=random``: as many random expressions, SasWOT's Figure 4
baseline; the stage's settings of each in ``conf/stage_search/``); with ``fitness: per_space`` one search per space, in ``<space>/``
subfolders. Fitnesses go to ``archive.jsonl`` under a context naming what they depend on (benchmark file,
split, batch, sketch): a killed run re-run in the same folder replays the search from the archive, computing
only what is missing (``n_computed_this_run``); other such settings there are refused. The best candidate
is then chosen on exact statistics and scored on ``heldout_archs`` other archs per space beside
``hand_proxies`` and SasWOT's expression (:mod:`segnas.proxies.evolution`): ``best_proxy.yaml``,
``search_curve.{csv,png}`` and the results dict (``results.json``).
"""

from __future__ import annotations

import copy
import logging
import random
import time
from pathlib import Path
from typing import Any

from hydra.utils import to_absolute_path
from omegaconf import DictConfig, open_dict

from segnas.proxies import evolution as evo
from segnas.proxies import proxies_options
from segnas.proxies.batch import benchmark_batch
from segnas.proxies.benchmark import load
from segnas.proxies.expression_space import ExpressionSpace
from segnas.search import Archive, Evaluated, Evaluator, Goal, SearchProblem, SearchResult, build_algorithm
from segnas.search.live import LiveSearch
from segnas.spaces import transnas
from segnas.utils.config import to_container
from segnas.utils.loggers import build_loggers
from segnas.utils.run import output_dir

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Evolve a proxy expression on training archs and report its held-out Kendall vs hand-designed ones;
    with ``stage.fitness: per_space`` one search per space (as the paper), each in its own subfolder."""
    if str(cfg.stage.fitness) == "mean":
        return _evolve(cfg)
    if str(cfg.stage.fitness) != "per_space":
        raise ValueError(f"stage.fitness must be 'mean' or 'per_space', got {cfg.stage.fitness!r}")
    out, per_space = output_dir(cfg), {}
    for space in cfg.stage.spaces:
        sub = copy.deepcopy(cfg)
        sub.paths.output_dir, sub.stage.spaces = str(out / space), [space]
        per_space[space] = _evolve(sub)
    return {"fitness": "per_space", "spaces": per_space}


def _search(cfg: DictConfig, problem: SearchProblem, initial: list[Any]) -> tuple[SearchResult, LiveSearch]:
    """The ``search=`` algorithm's run (the deprecated ``stage.iterations`` sets ``search.num_evals``), its
    best Kendall per iteration logged to W&B / TensorBoard under the label ``proxy_evolution``."""
    if cfg.stage.get("iterations") is not None:
        cfg, s = copy.deepcopy(cfg), cfg.search
        per_iteration = (s.children or s.population) + s.random_per_generation
        with open_dict(cfg):
            cfg.search.num_evals = s.population + cfg.stage.iterations * per_iteration
        log.warning("stage.iterations is deprecated: set search.num_evals (here %d)", cfg.search.num_evals)
    live = LiveSearch(build_loggers(cfg), "kendall")

    def on_generation(_: str, generation: int, evaluated: list[Evaluated]) -> None:
        live("proxy_evolution", generation, evaluated)  # the stage's dashboard key, whatever the algorithm

    return build_algorithm(cfg).run(problem, initial, on_generation), live


def _problem(
    cfg: DictConfig, out: Path
) -> tuple[evo.BenchmarkArchs, SearchProblem, evo.TrainFitness, dict[str, Any]]:
    """The benchmark split, the search problem (expression space, Kendall fitness through ``archive.jsonl``
    keyed by the fitness context), the fitness and that context."""
    stage, seed, spaces = cfg.stage, int(cfg.seed), list(cfg.stage.spaces)
    csv_path = to_absolute_path(str(cfg.benchmark.csv))
    train, held = evo.split_archs(load(csv_path, str(cfg.benchmark.target)), spaces, int(stage.train_archs),
                                  int(stage.heldout_archs), random.Random(seed))  # fmt: skip
    batch = benchmark_batch(cfg.get("data"), str(stage.inputs), int(stage.batch_size), int(stage.resolution),
                            transnas.NUM_CLASSES, seed)  # fmt: skip
    archs = evo.BenchmarkArchs(train, held, spaces, batch, seed, bool(stage.bn_quirk), bool(stage.progress))
    pool = int(stage.activation_pool)
    sketch = None if stage.sketch_columns is None else int(stage.sketch_columns)
    space = ExpressionSpace(int(stage.chain), str(stage.elem_reduce), str(stage.layer_reduce), pool)
    context = evo.fitness_context(cfg, csv_path, sketch)
    cache = out / "train_statistics.pt" if bool(stage.cache_statistics) else None
    fitness = evo.TrainFitness(
        lambda: evo.cached_statistics(lambda: archs.statistics(pool, sketch), cache, context), train)
    evaluator = Evaluator({"kendall": fitness}, Archive(out / "archive.jsonl", space.key, context=context))
    return archs, SearchProblem(space, evaluator, [Goal("kendall", maximize=True)]), fitness, context


def _evolve(cfg: DictConfig) -> dict[str, Any]:
    """One search whose fitness is the mean over ``cfg.stage.spaces`` of each space's Kendall."""
    stage, out = cfg.stage, output_dir(cfg)
    hand = proxies_options(list(stage.hand_proxies), to_container(stage.proxy_options), "stage.proxy_options")
    archs, problem, fitness, context = _problem(cfg, out)
    sketch = context["sketch_columns"]
    evaluator, saswot_expr = problem.evaluator, evo.saswot_expression(problem.space)
    t1 = time.perf_counter()
    result, live = _search(cfg, problem, [saswot_expr] if bool(stage.seed_with_saswot) else [])
    t2 = time.perf_counter()
    ranked = evo.ranking(result.evaluated)
    log.info("search best %s: train Kendall %.4f (%s)", *ranked[0], sketch or "exact")
    saswot_search = evaluator(saswot_expr, search="saswot_reference")["kendall"]
    fitness.release()  # free the memory before the exact passes
    chosen = evo.select(ranked, saswot_expr, saswot_search, sketch, int(stage.rerank_top), archs)
    t3 = time.perf_counter()
    held = evo.heldout(chosen.best, saswot_expr, hand, archs)
    t4 = time.perf_counter()
    evo.write_outputs(out, chosen, held, evo.search_history(result))
    live.finish(held.summary(chosen.train_kendall), images={"search_curve": out / "search_curve.png"})
    search_seconds = t2 - t1 - fitness.seconds
    return {
        "best_expression": str(chosen.best),
        "kendall_train": chosen.train_kendall,
        "kendall_train_sketch": (evaluator.archive.metrics(problem.key(chosen.best))["kendall"]
                                 if sketch is not None else None),
        "saswot_expression_train": chosen.saswot_train,
        **held.results(archs.spaces),
        "rerank": chosen.rerank,
        "n_computed_this_run": evaluator.n_computed,
        "search": evo.search_summary(result, saswot_search, out / "archive.jsonl"),
        "cost": {"statistics": "exact" if sketch is None else f"column sketch, {sketch} columns, bfloat16",
                 "cache_mb_per_arch": fitness.mb_per_arch, "seconds_train_statistics": fitness.seconds,
                 "seconds_search": search_seconds,
                 "seconds_per_candidate": search_seconds / max(evaluator.n_computed, 1),
                 "seconds_exact_rerank": t3 - t2, "seconds_heldout": t4 - t3},
        "setup": {"csv": to_absolute_path(str(cfg.benchmark.csv)), "target": str(cfg.benchmark.target),
                  "spaces": archs.spaces,
                  "train_archs_per_space": int(stage.train_archs),
                  "heldout_archs_per_space": int(stage.heldout_archs), "sketch_columns": sketch,
                  "batch_shape": list(archs.batch[0].shape), "inputs": str(stage.inputs),
                  "fitness_context": context},
    }  # fmt: skip
