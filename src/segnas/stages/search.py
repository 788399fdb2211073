"""``stage=search``: one search engine for every space, score and algorithm.

``space=hyctas|fasterseg`` x ``score=supernet|proxy|standalone`` x ``search=nsga2|topk|random``:
the score (supernet mIoU after BN recalibration, a zero-cost proxy, or mIoU after a short training) and
the costs (latency by lookup table or measurement, MACs, params) are objectives evaluated through the
append-only ``archive.jsonl`` (a re-run in the same folder resumes from it); budgets (``search.max_*``)
reject candidates before they are scored. NSGA-II trades the score off against ``search.objective``;
top-k evolution maximises the score alone. ``search.warm_start=proxy`` seeds the first population with
the best of a proxy-ranked random pool. Writes ``archive.jsonl``, ``evaluations.csv`` (or
``stage.table``), ``pareto.csv``, ``pareto.png``, ``genotypes/{arch,rank,random}_NN.yaml`` (each with
its metrics and retrain command) and returns hypervolumes and counts (``results.json``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from omegaconf import DictConfig

from segnas.callbacks.history import write_rows_csv
from segnas.models import build_network
from segnas.proxies import calibrate_cached
from segnas.proxies.saswot import NORMALIZATIONS
from segnas.search import report
from segnas.search.algorithms import GenerationCallback, run_nsga2, run_random, unique
from segnas.search.archive import Archive
from segnas.search.distributed import Ranks, init_ranks
from segnas.search.evaluator import Evaluator, Objective
from segnas.search.live import LiveSearch
from segnas.search.objectives import ActivationMemory, Builder, Macs, MeasuredLatency, Params, ProxyScore
from segnas.search.pareto import hypervolume
from segnas.search.plot import plot_search
from segnas.search.problem import Evaluated, Goal, SearchProblem
from segnas.search.topk import run_topk
from segnas.search.warm_start import select_initial
from segnas.spaces import get_space
from segnas.spaces.base import SearchSpace
from segnas.spaces.hyctas.latency_table import LatencyTable, agreement, calibration_genotypes
from segnas.stages.common import (
    build_datamodule,
    checkpoint_paths,
    device_of,
    prepare_supernet,
    proxy_options,
    scoring_batch,
    standalone_miou,
    supernet_miou,
    to_container,
    weights_sha1,
)
from segnas.utils.loggers import build_loggers
from segnas.utils.run import output_dir

log = logging.getLogger(__name__)

COSTS = {"latency": "latency_ms", "macs": "macs_g", "params": "params_m"}
BUDGETS = {"max_latency_ms": "latency_ms", "max_macs_g": "macs_g", "max_params_m": "params_m"}
ALGORITHMS = ("nsga2", "topk", "random")
SCORES = {"supernet": "miou", "standalone": "miou", "proxy": "score"}


class Wiring:
    """Everything a search needs, built from the config: data, space, score, costs, archive context."""

    def __init__(self, cfg: DictConfig, out: Path, ranks: Ranks) -> None:
        self.cfg, self.out, self.ranks = cfg, out, ranks
        self.kind = str(cfg.score.kind)
        self.device = device_of(cfg.stage.device)
        self.trainer: L.Trainer | None = None
        self.datamodule = build_datamodule(cfg) if self.kind != "proxy" or proxy_inputs(cfg) == "data" else None
        if self.kind == "supernet":
            module, self.trainer = prepare_supernet(cfg, self.datamodule, out)
            self.space: SearchSpace = module.space
            self.output_stride = int(module.hparams.output_stride)
            self.score: Objective = supernet_miou(cfg, module, self.datamodule, self.device)
            self.supernet_sha1 = weights_sha1(module.supernet)
        else:
            self.space = get_space(str(cfg.space.name), **{k: v for k, v in to_container(cfg.space).items()
                                                            if k != "name"})
            self.output_stride = 8
        self.num_classes = self._num_classes()
        self.network_options = {**self.space.build_options(),
                                **({"output_stride": self.output_stride} if self.space.name == "hyctas" else {})}
        self.build: Builder = functools.partial(build_network, num_classes=self.num_classes, **self.network_options)
        overrides = {k: v for k, v in to_container(cfg.stage.cost_network).items() if v is not None}
        unknown = sorted(set(overrides) - set(self.network_options))
        if unknown:
            raise ValueError(f"stage.cost_network: {unknown} are not options of a {self.space.name} network "
                             f"(it takes {sorted(self.network_options)})")
        self.cost_options = {**self.network_options, **overrides}
        self.cost_build: Builder = functools.partial(build_network, num_classes=self.num_classes, **self.cost_options)
        self.cost_input = self._cost_input()
        if self.kind == "proxy":
            self.score = self.proxy_score(str(cfg.score.proxy), cfg.score.get("options"))
        elif self.kind == "standalone":
            self.score = standalone_miou(cfg, self.datamodule, out / "standalone", self.space.key,
                                         int(cfg.score.epochs), **self.network_options)

    def _num_classes(self) -> int:
        if self.datamodule is not None:
            return int(self.datamodule.metadata()["num_classes"])
        return int(self.cfg.stage.proxy_batch.num_classes)

    def _cost_input(self) -> list[int]:
        if self.cfg.stage.cost_input:
            return [int(v) for v in self.cfg.stage.cost_input]
        if self.datamodule is None:
            raise ValueError("stage.cost_input is needed when no data is used (score=proxy with random inputs)")
        return [1, 3, *(int(v) for v in self.datamodule.crop_size)]

    def proxy_score(self, proxy: str, options: DictConfig | None) -> ProxyScore:
        """A zero-cost proxy on the ``stage.proxy_batch`` batch; saswot is calibrated (``score.normalize``: avt
        min/max or rank) on random archs within the search's fixed budgets (``search.max_{macs_g,params_m,
        latency_ms}``)."""
        pb = self.cfg.stage.proxy_batch
        seed = int(self.cfg.seed)
        inputs, targets, _ = scoring_batch(self.cfg.get("data"), proxy_inputs(self.cfg), int(pb.batch_size),
                                           tuple(int(v) for v in pb.resolution), self.num_classes, seed)
        kwargs = proxy_options(proxy, options, "score.options")
        if proxy == "saswot":
            normalize = str(self.cfg.score.get("normalize", "avt"))
            if normalize not in NORMALIZATIONS:
                raise ValueError(f"score.normalize must be one of {list(NORMALIZATIONS)}, got {normalize!r}")
            search = self.cfg.search
            budgets = fixed_budgets(search)
            costs = self.costs[0] if budgets else {}
            sample_rng = np.random.default_rng(seed + 1)

            def sample_model(rng: Any) -> Any:
                import torch

                for _ in range(1000):
                    genotype = self.space.sample(sample_rng)
                    if all(costs[m](genotype) <= b for m, b in budgets.items()):
                        torch.manual_seed(rng.randrange(2**31))
                        return self.build(genotype)
                raise ValueError(f"saswot calibration: no architecture within the budgets {budgets} in 1000 draws")

            within = f"|budgets={json.dumps(budgets, sort_keys=True)}@{self.cost_input}" if budgets else ""
            kwargs["ranges"] = calibrate_cached(
                sample_model, int(pb.saswot_calibration_archs), inputs, targets,
                space=f"search-{self.space.name}{within}", cache=self.out / "saswot_avt.json", seed=seed, **kwargs,
            )
            kwargs["normalize"] = normalize
        return ProxyScore(proxy, self.build, inputs, targets, kwargs, seed)

    @functools.cached_property
    def costs(self) -> tuple[dict[str, Objective], LatencyTable | None, MeasuredLatency]:
        """Latency (``stage.latency.model``: lut | measured), MACs and params of the network that will be
        deployed (the space's options with ``stage.cost_network`` overrides, e.g. the retrain F and OS; MACs
        and params from the analytic cost model, :mod:`segnas.metrics.cost_model`), and the space's
        training-memory estimate where it has one."""
        lat = self.cfg.stage.latency
        measured = MeasuredLatency(self.cost_build, self.cost_input, self.device, warmup=int(lat.warmup),
                                   duration_s=float(lat.duration_s))
        table = None
        self.latency_table_name: str | None = None
        if lat.model == "lut":
            if self.space.name != "hyctas":
                raise ValueError(f"stage.latency.model=lut models the hyctas space only, not {self.space.name!r}; "
                                 "use stage.latency.model=measured")
            lut_dir = Path(lat.lut_dir) / ("" if self.ranks.is_main else f"rank{self.ranks.rank}")
            table = LatencyTable(lut_dir, self.cost_input, self.cost_options["filter_multiplier"],
                                 self.num_classes, self.cost_options["output_stride"], self.device,
                                 calibration=calibration_genotypes(self.space, int(lat.calibration_archs)),
                                 calibration_warmup=int(lat.warmup), calibration_s=float(lat.duration_s))
            self.latency_table_name = table.path.name  # hashes device, torch, input, network, calibration
        costs: dict[str, Objective] = {
            "latency_ms": table if table is not None else measured,
            "macs_g": Macs(self.cost_build, self.cost_input),
            "params_m": Params(self.cost_build, self.cost_input),
        }
        if hasattr(self.space, "memory_mb"):
            costs["memory_mb"] = ActivationMemory(self.space.memory_mb)
        return costs, table, measured

    def context(self) -> dict[str, Any]:
        """What the archived metrics depend on: a different context never reuses them."""
        cfg = self.cfg
        scoring = {"supernet": lambda: {"evaluation": to_container(cfg.stage.evaluation),
                                        "supernet_weights_sha1": self.supernet_sha1},
                   "proxy": lambda: {"proxy_batch": to_container(cfg.stage.proxy_batch)},
                   "standalone": lambda: {"optim": to_container(cfg.optim)}}[self.kind]()
        return {
            "space": {"name": self.space.name, **{k: v for k, v in vars(self.space).items()
                                                  if isinstance(v, int | float | str | tuple | list | None)}},
            "score": to_container(cfg.score),
            **scoring,
            "data": to_container(cfg.data) if self.datamodule is not None else None,
            "cost_input": self.cost_input,
            "cost_network": self.cost_options,
            "latency_model": str(cfg.stage.latency.model),
            "latency_table": self.latency_table_name,
            "seed": int(cfg.seed),
        }


def fixed_budgets(search: DictConfig) -> dict[str, float]:
    """``metric -> max`` of the ``search.max_*`` budgets that are set."""
    return {metric: float(search[key]) for key, metric in BUDGETS.items() if search.get(key) is not None}


def proxy_inputs(cfg: DictConfig) -> str:
    """``stage.proxy_batch.inputs`` resolved: ``auto`` is ``data`` (a training batch) for a dataset on disk and
    ``random`` for the built-in synthetic scenes (no files: the default command); otherwise as given."""
    inputs = str(cfg.stage.proxy_batch.inputs)
    if inputs != "auto":
        return inputs
    data = cfg.get("data")
    return "random" if data is None or str(data.get("_target_", "")).endswith("SyntheticDataModule") else "data"


def validate(cfg: DictConfig) -> None:
    """Names and budgets of the search config, checked before any work starts."""
    search = cfg.search
    if search.algorithm not in ALGORITHMS:
        raise ValueError(f"search.algorithm must be one of {list(ALGORITHMS)}, got {search.algorithm!r}")
    if search.objective not in COSTS:
        raise ValueError(f"search.objective must be one of {sorted(COSTS)}, got {search.objective!r}")
    if cfg.score.kind not in SCORES:
        raise ValueError(f"score.kind must be one of {sorted(SCORES)}, got {cfg.score.kind!r}")
    if search.warm_start not in (None, "proxy"):
        raise ValueError(f"search.warm_start must be null or 'proxy', got {search.warm_start!r}")
    if search.initial not in ("prior", "uniform"):
        raise ValueError(f"search.initial must be 'prior' or 'uniform', got {search.initial!r}")
    if search.max_latency_fraction is not None and search.max_latency_ms is not None:
        raise ValueError("set one latency budget: search.max_latency_ms or search.max_latency_fraction")
    if search.min_miou_mode not in ("reject", "constraint"):
        raise ValueError(f"search.min_miou_mode must be 'reject' or 'constraint', got {search.min_miou_mode!r}")
    if search.objective_weights is not None and (len(search.objective_weights) != 2
                                                 or min(search.objective_weights) < 0):
        raise ValueError(f"search.objective_weights must be 2 non-negative weights (score, cost), "
                         f"got {list(search.objective_weights)}")
    if search.min_miou is not None and cfg.score.kind == "proxy":
        raise ValueError("search.min_miou applies to mIoU scores, not to score=proxy")


def warm_start(wiring: Wiring, problem: SearchProblem, n: int, cost: str) -> tuple[list[Any], dict[str, Any]]:
    """``n`` genotypes of ``search.warm_start_pool`` random ones within the budgets, chosen by a zero-cost proxy
    (scores archived in ``warm_start.jsonl``, so a resumed run does not score them again):
    ``search.warm_start_select=top`` keeps the ``n`` best proxy scores, ``pareto`` NSGA-II's rank-and-crowding
    survival over (proxy up, ``cost`` down), which keeps the first population spread over the cost range."""
    search = wiring.cfg.search
    pool_size, select = int(search.warm_start_pool), str(search.warm_start_select)
    if pool_size < n:
        raise ValueError(f"search.warm_start_pool ({pool_size}) must be at least the population ({n})")
    proxy = str(search.warm_start_proxy)
    archive = Archive(wiring.out / "warm_start.jsonl", key=wiring.space.key,
                      context={**wiring.context(), "proxy": proxy, "pool": pool_size}, writable=wiring.ranks.is_main)
    evaluator = Evaluator({"proxy": wiring.proxy_score(proxy, None)}, archive, wiring.ranks)
    rng = np.random.default_rng([int(wiring.cfg.seed), 17])
    pool: dict[str, Any] = {}
    for _ in range(50 * pool_size):
        if len(pool) == pool_size:
            break
        genotype = wiring.space.sample(rng)
        key = wiring.space.key(genotype)
        if key not in pool and problem.accepts(genotype, generation=0, search="warm_start"):
            pool[key] = genotype
    genotypes = list(pool.values())
    scores = np.array([m["proxy"] for m in evaluator.evaluate_all(genotypes)], dtype=float)
    costs = [m[cost] for m in problem.evaluator.evaluate_all(genotypes, [cost], generation=0, search="warm_start")] \
        if select == "pareto" else [0.0] * len(genotypes)
    order = select_initial(scores, costs, n, select, rng)
    chosen = [genotypes[i] for i in order]
    info = {"method": "proxy", "proxy": proxy, "select": select, "pool": len(pool), "picked": len(chosen),
            "picked_mean_proxy": float(np.nanmean(scores[order])), "pool_mean_proxy": float(np.nanmean(scores)),
            "n_computed_this_run": evaluator.n_computed}
    return chosen, info


class RelativeLatencyBudget:
    """Algorithm 1's latency filter: ``genotype -> fraction x Latency(S_max)``, S_max the slowest of the
    space's largest networks with the genotype's branch count (timed once per branch count)."""

    def __init__(self, space: SearchSpace, latency: Objective, fraction: float) -> None:
        if not hasattr(space, "largest"):
            raise ValueError(f"search.max_latency_fraction needs a space with largest networks (hyctas), "
                             f"not {space.name!r}")
        self.space, self.latency, self.fraction = space, latency, fraction
        self.s_max_ms: dict[int, float] = {}

    def __call__(self, genotype: Any) -> float:
        n = genotype.num_branches
        if n not in self.s_max_ms:
            self.s_max_ms[n] = max(self.latency(g) for g in self.space.largest(n))
            log.info("Latency(S_max) of %d-branch networks: %.3f ms", n, self.s_max_ms[n])
        return self.fraction * self.s_max_ms[n]

    def describe(self) -> dict[str, Any]:
        """The fraction and the S_max latencies (ms) per branch count."""
        return {"fraction": self.fraction, "s_max_latency_ms": dict(self.s_max_ms)}


def search_with(wiring: Wiring, problem: SearchProblem, initial: list[Any],
                on_generation: GenerationCallback | None = None) -> tuple[list[Evaluated], dict]:
    """Run ``search.algorithm`` (``on_generation``: see the algorithms); returns its evaluations and, for
    top-k, its per-generation history."""
    search, seed = wiring.cfg.search, int(wiring.cfg.seed)
    progress = bool(wiring.cfg.stage.progress) and wiring.ranks.is_main
    if search.algorithm == "nsga2":
        return run_nsga2(problem, population=int(search.population), generations=int(search.generations),
                         crossover_prob=float(search.crossover_prob), mutation_prob=float(search.mutation_prob),
                         stratified=bool(search.per_branch), initial=initial, seed=seed, progress=progress,
                         uniform_initial=search.initial == "uniform",
                         on_generation=on_generation,
                         objective_weights=list(search.objective_weights) if search.objective_weights else None), {}
    if search.algorithm == "topk":
        result = run_topk(problem, n_evals=int(search.num_evals), population=int(search.population),
                          top_k=int(search.top_k), children=search.children, p_crossover=float(search.p_crossover),
                          p_mutate=float(search.mutation_prob), patience=search.patience,
                          clear_pool=bool(search.clear_pool), random_per_generation=int(search.random_per_generation),
                          initial=initial, seed=seed, progress=progress, on_generation=on_generation)
        return result.evaluated, {"history": result.history, "resets": result.resets}
    budget = int(search.population) * int(search.generations)
    return run_random(problem, budget, batch=int(search.population), seed=seed, progress=progress,
                      on_generation=on_generation), {}


def run(cfg: DictConfig) -> dict[str, Any]:
    """Build the problem from the config, search (+ random baseline), write the outputs, return results."""
    validate(cfg)
    out = output_dir(cfg)
    search = cfg.search
    ranks = init_ranks()
    if ranks.world_size > 1 and cfg.score.kind == "supernet" and not cfg.stage.supernet.ckpt:
        raise ValueError("a multi-process search needs stage.supernet.ckpt: train the supernet first "
                         "(stage=supernet, with trainer=ddp or trainer=ddp_cpu on several processes)")
    wiring = Wiring(cfg, out, ranks)
    score, cost = SCORES[str(cfg.score.kind)], COSTS[search.objective]
    costs, table, measured = wiring.costs
    budgets: dict[str, Any] = fixed_budgets(search)
    if search.max_latency_fraction is not None:
        budgets["latency_ms"] = RelativeLatencyBudget(wiring.space, costs["latency_ms"],
                                                      float(search.max_latency_fraction))
    wanted = [cost, *budgets, *cfg.stage.extra_metrics]
    unknown = sorted(set(wanted) - set(costs))
    if unknown:
        raise ValueError(f"stage.extra_metrics: unknown metrics {unknown}; choose from {sorted(costs)}")
    objectives = {name: fn for name, fn in costs.items() if name in wanted}
    objectives[score] = wiring.score
    archive = Archive(out / "archive.jsonl", key=wiring.space.key, context=wiring.context(), writable=ranks.is_main)
    log.info("Archive %s holds %d architectures", archive.path, len(archive))
    evaluator = Evaluator(objectives, archive, ranks)
    goals = [Goal(score, maximize=True)] + ([Goal(cost)] if search.algorithm != "topk" else [])
    floors = {score: float(search.min_miou)} if search.min_miou is not None else {}
    problem = SearchProblem(wiring.space, evaluator, goals, budgets, floors,
                            reject_below_floors=search.min_miou_mode == "reject")

    start = time.perf_counter()
    initial, warm = warm_start(wiring, problem, int(search.population), cost) if search.warm_start else ([], None)
    loggers = [] if not ranks.is_main else list(wiring.trainer.loggers) if wiring.trainer is not None \
        else build_loggers(cfg)
    live = LiveSearch(loggers, score, cost, float(search.hv_ref_cost) if search.hv_ref_cost else None,
                      (0.0, 100.0) if score == "miou" else None, search.min_miou)
    evaluated, extra = search_with(wiring, problem, initial, live)
    search_seconds = time.perf_counter() - start
    n_computed = evaluator.n_computed
    distinct = unique(problem, evaluated)
    if not distinct:
        raise RuntimeError("no architecture was evaluated: every candidate violated a constraint or a budget "
                           f"({budgets or 'none'}); raise the budget")
    if not any(math.isfinite(e.metrics[score]) for e in distinct):
        raise RuntimeError(f"every one of the {len(distinct)} evaluated architectures has an invalid (non-finite) "
                           f"{score}: a diverged supernet or a proxy that does not apply; see {archive.path}")
    baseline: list[Evaluated] = []
    if search.random_baseline and search.algorithm != "random":
        baseline = unique(problem, run_random(problem, len(distinct), batch=int(search.population),
                                              seed=int(cfg.seed) + 1000,
                                              progress=bool(cfg.stage.progress) and ranks.is_main,
                                              on_generation=live))
    per_rank = ranks.gather(evaluator.n_computed_here)
    if not ranks.is_main:  # rank 0 writes the outputs
        return {"rank": ranks.rank, "world_size": ranks.world_size, "evaluated_per_rank": per_rank}

    retrain = str(cfg.stage.retrain_command) if cfg.stage.get("retrain_command") else None
    front = report.front_of(distinct, score, cost, search.min_miou)
    front_rows = report.write_front(out, front, retrain)
    write_rows_csv(out / str(cfg.stage.table), report.rows(distinct + baseline))
    top = report.write_genotypes(out, report.ranked(distinct, score)[: int(cfg.stage.top_n)], "rank", retrain)
    png = plot_search(distinct, cost, out / "pareto.png", baseline, score=score, min_score=search.min_miou,
                      title=f"{wiring.space.name} {search.algorithm} search")
    everything = distinct + baseline
    ref_cost = float(search.hv_ref_cost or max(e.metrics[cost] for e in everything))
    score_range = (0.0, 100.0) if score == "miou" else _score_range(everything, score)
    hv = _hypervolume(front, score, cost, ref_cost, score_range)
    results: dict[str, Any] = {
        "space": wiring.space.name,
        "score": str(cfg.score.kind),
        "score_metric": score,
        "algorithm": search.algorithm,
        "objective": search.objective,
        "cost_metric": cost,
        "budgets": {m: b.describe() if isinstance(b, RelativeLatencyBudget) else b for m, b in budgets.items()},
        "n_evaluated": len(distinct),
        "n_computed_this_run": None,  # set below, random baseline included
        "world_size": ranks.world_size,
        "evaluated_per_rank": per_rank,
        "hypervolume": hv,
        "hv_reference": {score: score_range[0], cost: ref_cost, "score_range": list(score_range)},
        "pareto": front_rows,
        "top": top,
        "summary": report.summary(distinct, score, cost),
        "search_seconds": search_seconds,
        "seconds_per_evaluation": search_seconds / n_computed if n_computed else None,
        **extra,
    }
    if wiring.kind == "supernet":
        results["supernet_ckpt"] = cfg.stage.supernet.ckpt or (
            checkpoint_paths(wiring.trainer).get("last_ckpt") if wiring.trainer else None)
    if warm is not None:
        results["warm_start"] = warm
    if baseline:
        results["n_evaluated_random"] = len(baseline)
        results["hypervolume_random"] = _hypervolume(report.front_of(baseline, score, cost, search.min_miou),
                                                     score, cost, ref_cost, score_range)
        results["summary_random"] = report.summary(baseline, score, cost)
        results["beats_random"] = bool(results["summary"]["best_score"] > results["summary_random"]["best_score"])
        results["random_picks"] = report.write_genotypes(out, baseline[: int(cfg.stage.top_n)], "random", retrain)
    results["n_computed_this_run"] = evaluator.n_computed
    if table is not None:
        results["latency_table"] = {"path": str(table.path), "entries": len(table.entries),
                                    "sha1": hashlib.sha1(json.dumps(table.entries, sort_keys=True).encode()).hexdigest()}
    if table is not None and int(cfg.stage.latency.check_archs) > 0:
        results["lut_agreement"] = agreement(
            table, measured, check_genotypes(distinct, front, int(cfg.stage.latency.check_archs), int(cfg.seed))
        )
    live.finish({key: results.get(key) for key in ("hypervolume", "hypervolume_random", "n_evaluated")}
                | {f"best_{score}": results["summary"]["best_score"]}, front_rows, {"pareto_png": png})
    log.info("%d architectures evaluated (%d computed now), %d on the front, hypervolume %.4f%s; best %s %.4g%s",
             len(distinct), evaluator.n_computed, len(front), hv,
             f" (random search: {results['hypervolume_random']:.4f})" if baseline else "", score,
             results["summary"]["best_score"],
             f" (random search: {results['summary_random']['best_score']:.4g})" if baseline else "")
    return results


def _score_range(evaluated: list[Evaluated], score: str) -> tuple[float, float]:
    values = [e.metrics[score] for e in evaluated if math.isfinite(e.metrics[score])]
    if not values or max(values) == min(values):
        return (0.0, 1.0)
    return (min(values), max(values))


def _hypervolume(front: list[Evaluated], score: str, cost: str, ref_cost: float,
                 score_range: tuple[float, float]) -> float:  # fmt: skip
    return hypervolume([e.metrics[score] for e in front], [e.metrics[cost] for e in front], ref_cost, score_range)


def check_genotypes(evaluated: list[Evaluated], front: list[Evaluated], n: int, seed: int) -> list[Any]:
    """The front (at most ``n`` of it) plus random other evaluated genotypes, ``n`` in all (fewer when fewer
    were evaluated): the lookup-table agreement check."""
    chosen = [e.genotype for e in front[:n]]
    others = [e.genotype for e in evaluated if e not in front]
    k = min(n - len(chosen), len(others))
    picks = np.random.default_rng(seed).choice(len(others), size=k, replace=False)
    return chosen + [others[i] for i in sorted(picks)]

