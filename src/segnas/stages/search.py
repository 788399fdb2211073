"""``stage=search``: HyCTAS multi-objective search (paper §3.4, Algorithm 1) on a trained supernet.

supernet checkpoint (``stage.supernet.ckpt``; trained first into this run folder when null) -> for every
candidate: cost (lookup-table or measured latency, MACs, params), then BN recalibration + mIoU on a
validation subset -> NSGA-II (``search`` group) -> ``archive.jsonl`` (every evaluation, appended at once;
a re-run in the same folder resumes from it), ``pareto.csv``, ``pareto.png``, ``genotypes/*.yaml``,
``evaluations.csv``; with ``search.random_baseline`` also random search on the same budget, and the
hypervolumes of both against one reference point.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from segnas.callbacks.history import write_rows_csv
from segnas.data.base import SegmentationDataModule
from segnas.lit.supernet import SupernetModule
from segnas.search.algorithms import MIOU, Evaluated, run_nsga2, run_random, unique
from segnas.search.archive import Archive
from segnas.search.evaluator import Evaluator, Objective
from segnas.search.latency_table import LatencyTable, agreement
from segnas.search.objectives import Macs, MeasuredLatency, NetworkBuilder, Params, SupernetMIoU, load_batches
from segnas.search.pareto import hypervolume, pareto_indices
from segnas.search.plot import plot_search
from segnas.spaces import save_genotype
from segnas.spaces.hyctas import HyCTASGenotype
from segnas.stages import supernet as supernet_stage
from segnas.stages.common import build_datamodule, build_trainer, checkpoint_paths, resolve_ckpt
from segnas.utils.run import output_dir

log = logging.getLogger(__name__)

COSTS = {"latency": "latency_ms", "macs": "macs_g", "params": "params_m"}


def device_of(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def prepare_supernet(
    cfg: DictConfig, datamodule: SegmentationDataModule, out: Path
) -> tuple[SupernetModule, L.Trainer | None]:
    """The supernet of ``cfg.stage.supernet.ckpt``, or one trained now into ``out/checkpoints`` with the
    settings of ``cfg.stage.supernet`` (resumed from there when the folder already holds a checkpoint)."""
    settings = cfg.stage.supernet
    if settings.ckpt:
        log.info("Loading supernet %s", settings.ckpt)
        return SupernetModule.load_from_checkpoint(settings.ckpt, map_location="cpu"), None
    sub = OmegaConf.create({
        "seed": cfg.seed,
        "space": OmegaConf.to_container(cfg.space, resolve=True),
        "stage": OmegaConf.to_container(settings, resolve=True),
    })
    module = supernet_stage.build_module(sub, datamodule.metadata())
    trainer = build_trainer(cfg, max_epochs=int(settings.epochs))
    log.info("No supernet checkpoint given: training one for %d epochs", settings.epochs)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resolve_ckpt(cfg, out))
    return module, trainer


def cost_input(cfg: DictConfig, datamodule: SegmentationDataModule) -> list[int]:
    """``stage.cost_input`` or ``[1, 3, *crop_size]`` of the data."""
    if cfg.stage.cost_input:
        return [int(v) for v in cfg.stage.cost_input]
    return [1, 3, *(int(v) for v in datamodule.crop_size)]


def supernet_miou(
    cfg: DictConfig, module: SupernetModule, datamodule: SegmentationDataModule, device: torch.device
) -> SupernetMIoU:
    """Supernet mIoU after BN recalibration on ``stage.evaluation.recalibration_images`` random training
    images (fixed augmentation), on the first ``stage.evaluation.val_images`` validation images."""
    ev, meta = cfg.stage.evaluation, datamodule.metadata()
    datamodule.setup("fit")
    rng = np.random.default_rng(int(cfg.seed))
    n_train, n_val = len(datamodule.train_set), len(datamodule.val_set)
    recal_idx = rng.choice(n_train, size=min(int(ev.recalibration_images), n_train), replace=False)
    recal = load_batches(datamodule.train_set, sorted(recal_idx.tolist()), int(ev.batch_size), int(cfg.seed))
    val = load_batches(datamodule.val_set, range(min(int(ev.val_images), n_val)), int(ev.batch_size))
    return SupernetMIoU(module.supernet.to(device), recal, val, meta["num_classes"], meta["ignore_index"])


def build_objectives(
    cfg: DictConfig, module: SupernetModule, datamodule: SegmentationDataModule, device: torch.device
) -> tuple[dict[str, Objective], LatencyTable, MeasuredLatency]:
    """The search objective's cost metric and ``stage.extra_metrics`` (latency by ``stage.latency.model``,
    MACs, params) first, supernet mIoU last; also the lookup table and the measured latency (for the
    agreement report)."""
    lat, meta, space = cfg.stage.latency, datamodule.metadata(), module.space
    if lat.model not in ("lut", "measured"):
        raise ValueError(f"stage.latency.model must be 'lut' or 'measured', got {lat.model!r}")
    shape = cost_input(cfg, datamodule)
    builder = NetworkBuilder(meta["num_classes"], space.filter_multiplier, module.hparams.output_stride)
    table = LatencyTable(lat.lut_dir, shape, space.filter_multiplier, meta["num_classes"],
                         module.hparams.output_stride, device)
    measured = MeasuredLatency(builder, shape, device, warmup=lat.warmup, duration_s=lat.duration_s)
    costs: dict[str, Objective] = {
        "latency_ms": table if lat.model == "lut" else measured,
        "macs_g": Macs(builder, shape),
        "params_m": Params(builder),
    }
    wanted = {COSTS[cfg.search.objective], *cfg.stage.extra_metrics}
    if cfg.search.max_latency_ms is not None:
        wanted.add("latency_ms")
    unknown = wanted - set(costs)
    if unknown:
        raise ValueError(f"stage.extra_metrics: unknown metrics {sorted(unknown)}; choose from {sorted(costs)}")
    objectives = {name: fn for name, fn in costs.items() if name in wanted}
    objectives[MIOU] = supernet_miou(cfg, module, datamodule, device)
    return objectives, table, measured


def _rows(evaluated: list[Evaluated], names: list[str] | None = None) -> list[dict[str, Any]]:
    rows = []
    for i, e in enumerate(evaluated):
        row: dict[str, Any] = {"name": names[i]} if names else {}
        row.update(search=e.search, generation=e.generation, num_branches=e.genotype.num_branches,
                   head="_".join(map(str, e.genotype.head)))
        row.update({k: round(v, 6) for k, v in e.metrics.items()})
        rows.append(row)
    return rows


def front_of(evaluated: list[Evaluated], cost: str, min_miou: float | None) -> list[Evaluated]:
    """The Pareto front (by cost) of the feasible evaluations."""
    feasible = [e for e in evaluated if min_miou is None or e.metrics[MIOU] >= min_miou]
    return [feasible[i] for i in pareto_indices([e.metrics[MIOU] for e in feasible],
                                                [e.metrics[cost] for e in feasible])]


def check_genotypes(evaluated: list[Evaluated], front: list[Evaluated], n: int, seed: int) -> list[HyCTASGenotype]:
    """The front (at most ``n`` of it) plus random other evaluated genotypes, ``n`` in all (fewer when fewer
    were evaluated): the lookup-table agreement check."""
    chosen = [e.genotype for e in front[:n]]
    others = [e.genotype for e in evaluated if e not in front]
    k = min(n - len(chosen), len(others))
    picks = np.random.default_rng(seed).choice(len(others), size=k, replace=False)
    return chosen + [others[i] for i in sorted(picks)]


def write_front(out: Path, front: list[Evaluated]) -> list[dict[str, Any]]:
    """``genotypes/arch_NN.yaml`` per front architecture (stale ones removed) and ``pareto.csv``."""
    folder = out / "genotypes"
    folder.mkdir(exist_ok=True)
    for stale in folder.glob("arch_*.yaml"):
        stale.unlink()
    names = [f"arch_{i:02d}" for i in range(len(front))]
    rows = _rows(front, names)
    for row, e in zip(rows, front, strict=True):
        row["genotype"] = str(save_genotype(e.genotype, folder / f"{row['name']}.yaml").relative_to(out))
    write_rows_csv(out / "pareto.csv", rows)
    return rows


def log_wandb(cfg: DictConfig, trainer: L.Trainer | None, rows: list[dict[str, Any]], cost: str, png: Path) -> None:
    """A W&B table and scatter plot of the front (and the figure) when ``logger=wandb``."""
    from lightning.pytorch.loggers import WandbLogger

    loggers = list(trainer.loggers) if trainer is not None else [
        instantiate(node) for node in (cfg.get("logger") or {}).values()
        if node and str(node.get("_target_", "")).endswith("WandbLogger")
    ]
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            columns = list(rows[0]) if rows else ["miou", cost]
            table = wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in rows])
            logger.experiment.log({
                "search/pareto": table,
                "search/pareto_scatter": wandb.plot.scatter(table, cost, MIOU, title=f"Pareto front: mIoU vs {cost}"),
                "search/pareto_png": wandb.Image(str(png)),
            })


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train or load the supernet, search, write the front and return hypervolumes and counts."""
    out = output_dir(cfg)
    search = cfg.search
    if search.objective not in COSTS:
        raise ValueError(f"search.objective must be one of {sorted(COSTS)}, got {search.objective!r}")
    if search.algorithm not in ("nsga2", "random"):
        raise ValueError(f"search.algorithm must be 'nsga2' or 'random', got {search.algorithm!r}")
    cost = COSTS[search.objective]
    device = device_of(cfg.stage.device)
    datamodule = build_datamodule(cfg)
    module, trainer = prepare_supernet(cfg, datamodule, out)
    objectives, table, measured = build_objectives(cfg, module, datamodule, device)
    archive = Archive(out / "archive.jsonl")
    evaluator = Evaluator(objectives, archive)
    log.info("Archive %s holds %d architectures", archive.path, len(archive))
    filters = {"max_latency_ms": search.max_latency_ms, "min_miou": search.min_miou}
    common = {"cost": cost, "seed": int(cfg.seed), "progress": bool(cfg.stage.progress), **filters}
    budget = int(search.population) * int(search.generations)

    start = time.perf_counter()
    if search.algorithm == "nsga2":
        evaluated = run_nsga2(module.space, evaluator, population=int(search.population),
                              generations=int(search.generations), crossover_prob=float(search.crossover_prob),
                              mutation_prob=float(search.mutation_prob), per_branch=bool(search.per_branch),
                              **common)
    else:
        evaluated = run_random(module.space, evaluator, budget, batch=int(search.population), **common)
    search_seconds = time.perf_counter() - start
    n_computed = evaluator.n_computed
    distinct = unique(evaluated)
    baseline: list[Evaluated] = []
    if search.random_baseline and search.algorithm == "nsga2":
        baseline = unique(run_random(module.space, evaluator, len(distinct), batch=int(search.population),
                                     **{**common, "seed": int(cfg.seed) + 1000}))

    front = front_of(distinct, cost, search.min_miou)
    rows = write_front(out, front)
    write_rows_csv(out / "evaluations.csv", _rows(distinct + baseline))
    png = plot_search(distinct, cost, out / "pareto.png", baseline,
                      title=f"HyCTAS {search.algorithm} search: {len(distinct)} architectures")
    ref_cost = float(search.hv_ref_cost or max(e.metrics[cost] for e in distinct + baseline))
    hv = hypervolume([e.metrics[MIOU] for e in front], [e.metrics[cost] for e in front], ref_cost)
    results: dict[str, Any] = {
        "algorithm": search.algorithm,
        "objective": search.objective,
        "cost_metric": cost,
        "n_evaluated": len(distinct),
        "hypervolume": hv,
        "hv_reference": {"miou": 0.0, cost: ref_cost},
        "pareto": rows,
        "search_seconds": search_seconds,
        "seconds_per_evaluation": search_seconds / n_computed if n_computed else None,
        "supernet_ckpt": cfg.stage.supernet.ckpt or (checkpoint_paths(trainer).get("last_ckpt") if trainer else None),
        "n_computed_this_run": evaluator.n_computed,
    }
    if baseline:
        base_front = front_of(baseline, cost, search.min_miou)
        results["n_evaluated_random"] = len(baseline)
        results["hypervolume_random"] = hypervolume(
            [e.metrics[MIOU] for e in base_front], [e.metrics[cost] for e in base_front], ref_cost
        )
    if int(cfg.stage.latency.check_archs) > 0:
        results["lut_agreement"] = agreement(
            table, measured, check_genotypes(distinct, front, int(cfg.stage.latency.check_archs), int(cfg.seed))
        )
    log_wandb(cfg, trainer, rows, cost, png)
    log.info("%d architectures evaluated (%d computed now), %d on the front, hypervolume %.4f%s", len(distinct),
             n_computed, len(front), hv,
             f" (random search: {results['hypervolume_random']:.4f})" if baseline else "")
    return results
