"""``stage=proxy_evolution``: search a zero-cost proxy expression on TransNAS-Bench-101 (SasWOT §3.3).

Per space, ``train_archs`` benchmark architectures are built and their per-layer statistics
(:func:`~segnas.proxies.expression.layer_statistics`: activations, dL/dW, W) collected once on one batch
and kept in memory; the evolution (:func:`~segnas.proxies.proxy_search.evolve`) maximises the mean over
spaces of Kendall tau against the ground truth on them. The best expression is then scored on
``heldout_archs`` other architectures per space, beside the hand-designed proxies ``hand_proxies`` and
SasWOT's own expression on the same held-out set. Writes ``best_proxy.yaml`` (loadable with
:func:`~segnas.proxies.expression.load_expression_proxy`), ``search_curve.csv``, ``search_curve.png``
and returns the results dict (``results.json``).
"""

from __future__ import annotations

import logging
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from segnas.proxies import compute
from segnas.proxies.benchmark import Record, load
from segnas.proxies.expression import SASWOT, Expression, InvalidExpression, LayerStats, layer_statistics
from segnas.proxies.proxy_search import CachedFitness, SearchResult, evolve, kendall
from segnas.stages.proxy_evaluate import _batch, _build
from segnas.utils.run import output_dir

log = logging.getLogger(__name__)


def split_archs(
    records: list[Record], spaces: list[str], train: int, heldout: int, rng: random.Random
) -> tuple[list[Record], list[Record]]:
    """Disjoint random training and held-out architectures, ``train`` and ``heldout`` per space."""
    train_set, held_set = [], []
    for space in spaces:
        pool = sorted((r for r in records if r.space == space), key=lambda r: r.arch)
        if train + heldout > len(pool):
            raise ValueError(f"{space}: {train} + {heldout} archs requested, {len(pool)} available")
        chosen = rng.sample(pool, train + heldout)
        train_set += chosen[:train]
        held_set += chosen[train:]
    return train_set, held_set


def _statistics(records: list[Record], batch: tuple[torch.Tensor, torch.Tensor], seed: int, pool: int,
                progress: bool, desc: str) -> list[list[LayerStats]]:  # fmt: skip
    items: Any = records
    if progress:
        from tqdm import tqdm

        items = tqdm(records, desc=desc, unit="arch")
    return [layer_statistics(_build(r.arch, seed), *batch, activation_pool=pool) for r in items]


def _expression_kendall(exprs: dict[str, Expression], records: list[Record],
                        batch: tuple[torch.Tensor, torch.Tensor], seed: int, spaces: list[str],
                        progress: bool) -> dict[str, dict[str, float]]:  # fmt: skip
    """Kendall of each expression per space and their ``mean`` (an arch where an expression is undefined
    is left out). Statistics are computed one architecture at a time and dropped (they are large)."""
    pool = {e.activation_pool for e in exprs.values()}
    if len(pool) != 1:
        raise ValueError("the expressions must share their activation pooling")
    scores: dict[str, list[float]] = {name: [] for name in exprs}
    items: Any = records
    if progress:
        from tqdm import tqdm

        items = tqdm(records, desc="held-out", unit="arch")
    for r in items:
        layers = layer_statistics(_build(r.arch, seed), *batch, activation_pool=next(iter(pool)))
        for name, expr in exprs.items():
            try:
                scores[name].append(expr.score(layers))
            except InvalidExpression:
                scores[name].append(math.nan)
    out = {}
    for name in exprs:
        row = {}
        for space in spaces:
            idx = [i for i, r in enumerate(records) if r.space == space]
            row[space] = _finite_kendall([scores[name][i] for i in idx], [records[i].target for i in idx])
        row["mean"] = float(np.mean([row[s] for s in spaces]))
        out[name] = row
    return out


def _finite_kendall(x: list[float], y: list[float]) -> float:
    keep = [i for i, v in enumerate(x) if math.isfinite(v)]
    return kendall([x[i] for i in keep], [y[i] for i in keep])


def _hand_kendall(names: list[str], records: list[Record], batch: tuple[torch.Tensor, torch.Tensor],
                  seed: int, spaces: list[str]) -> dict[str, dict[str, float]]:  # fmt: skip
    """Kendall of each registered proxy on ``records`` per space and the mean over spaces."""
    scores = [compute(names, _build(r.arch, seed), *batch) for r in records]
    out = {}
    for name in names:
        row = {}
        for space in spaces:
            idx = [i for i, r in enumerate(records) if r.space == space]
            row[space] = _finite_kendall([scores[i][name] for i in idx], [records[i].target for i in idx])
        row["mean"] = float(np.mean([row[s] for s in spaces]))
        out[name] = row
    return out


def plot_curve(result: SearchResult, reference: dict[str, float], out: Path) -> None:
    """Best and population-mean training Kendall per iteration, with held-out reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = [h["iteration"] for h in result.history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(its, [h["best"] for h in result.history], label="best so far (train)")
    ax.plot(its, [h["population_mean"] for h in result.history], label="population mean (train)", alpha=0.7)
    for i, (label, value) in enumerate(reference.items()):
        if math.isfinite(value):
            ax.axhline(value, linestyle="--", color=f"C{i + 2}", label=label)
    ax.set_xlabel("iteration")
    ax.set_ylabel("Kendall tau")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "search_curve.png", dpi=120)
    plt.close(fig)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Evolve a proxy expression on training archs and report its held-out Kendall vs hand-designed ones."""
    stage = cfg.stage
    out = output_dir(cfg)
    spaces, seed = list(stage.spaces), int(cfg.seed)
    csv_path = to_absolute_path(str(cfg.benchmark.csv))
    records = load(csv_path, str(cfg.benchmark.target))
    rng = random.Random(seed)
    train, held = split_archs(records, spaces, int(stage.train_archs), int(stage.heldout_archs), rng)
    batch = _batch(cfg)
    pool, progress = int(stage.activation_pool), bool(stage.progress)
    base = Expression(("weight", "weight"), (("no_op",), ("no_op",)), "sum", str(stage.elem_reduce),
                      str(stage.layer_reduce), pool)  # fmt: skip
    saswot_expr = Expression(SASWOT.inputs, SASWOT.unary, SASWOT.binary, base.elem_reduce,
                             base.layer_reduce, pool)  # fmt: skip

    train_stats = _statistics(train, batch, seed, pool, progress, "train stats")
    fitness = CachedFitness(train_stats, [r.target for r in train], [r.space for r in train])
    evo = stage.evolution
    seeds = [saswot_expr] if bool(stage.seed_with_saswot) else []
    result = evolve(
        fitness, random.Random(seed), population=int(evo.population), iterations=int(evo.iterations),
        top_k=int(evo.top_k), children=int(evo.children), p_crossover=float(evo.p_crossover),
        p_mutate=float(evo.p_mutate), patience=int(evo.patience), base=base, seeds=seeds,
    )  # fmt: skip
    log.info("best expression %s: train Kendall %.4f", result.best, result.fitness)
    saswot_train = fitness(saswot_expr).kendall

    del train_stats, fitness.stats  # free the memory before the held-out pass
    exprs = {"best": result.best, "saswot": saswot_expr}
    held_kendall = _expression_kendall(exprs, held, batch, seed, spaces, progress)
    best_held, saswot_held = held_kendall["best"], held_kendall["saswot"]
    hand = _hand_kendall(list(stage.hand_proxies), held, batch, seed, spaces)
    finite_hand = {n: r["mean"] for n, r in hand.items() if math.isfinite(r["mean"])}
    best_hand = max(finite_hand, key=finite_hand.__getitem__) if finite_hand else None

    result.best.save(out / "best_proxy.yaml", kendall_train=result.fitness, kendall_heldout=best_held["mean"])
    lines = ["iteration,best,population_best,population_mean,evaluated"]
    lines += [",".join(f"{h[k]:.6g}" for k in ("iteration", "best", "population_best", "population_mean",
                                                "evaluated")) for h in result.history]  # fmt: skip
    (out / "search_curve.csv").write_text("\n".join(lines) + "\n")
    reference = {"evolved (held-out)": best_held["mean"], "saswot expression (held-out)": saswot_held["mean"]}
    if best_hand:
        reference[f"best hand-designed: {best_hand} (held-out)"] = hand[best_hand]["mean"]
    plot_curve(result, reference, out)
    return {
        "best_expression": str(result.best),
        "kendall_train": result.fitness,
        "kendall_heldout": best_held["mean"],
        "kendall_heldout_per_space": {s: best_held[s] for s in spaces},
        "saswot_expression_train": saswot_train,
        "saswot_expression_heldout": saswot_held,
        "hand_designed_heldout": hand,
        "best_hand_designed": (
            {"name": best_hand, "kendall_heldout": hand[best_hand]["mean"]} if best_hand else None
        ),
        "search": {
            "evaluated": result.evaluated,
            "rejected": result.rejected,
            "resets": result.resets,
            "iterations": len(result.history),
        },
        "setup": {
            "csv": csv_path,
            "target": str(cfg.benchmark.target),
            "spaces": spaces,
            "train_archs_per_space": int(stage.train_archs),
            "heldout_archs_per_space": int(stage.heldout_archs),
            "batch_shape": list(batch[0].shape),
            "inputs": str(stage.inputs),
        },
    }
