"""``stage=proxy_evolution``: search a zero-cost proxy expression on TransNAS-Bench-101 (SasWOT §3.3).

Per space, ``train_archs`` benchmark architectures are built and their per-layer statistics
(:func:`~segnas.proxies.expression.layer_statistics`: activations, dL/dW, W) collected once on one batch
and kept in memory, exact or, with ``sketch_columns: K``, as column sketches of at most K columns of W and
dL/dW per layer (:func:`~segnas.proxies.expression.sketch_statistics`; ~10x less memory and time per
candidate). The evolution (:func:`~segnas.proxies.proxy_search.evolve`) maximises the mean over spaces of
Kendall tau against the ground truth on them. With sketches, the ``rerank_top`` best distinct candidates
(and SasWOT's expression) are then re-scored on exact statistics of the same training archs (streamed one
architecture at a time) and the best by exact training Kendall is kept, so every reported correlation is
computed on exact statistics. The chosen expression is scored on ``heldout_archs`` other architectures per
space, beside the hand-designed proxies ``hand_proxies`` and SasWOT's expression, on the same held-out
set. Writes ``best_proxy.yaml`` (loadable with :func:`~segnas.proxies.expression.load_expression_proxy`),
``search_curve.csv``, ``search_curve.png`` and returns the results dict (``results.json``).
"""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from segnas.proxies import compute
from segnas.proxies.benchmark import Record, load
from segnas.proxies.expression import (
    SASWOT,
    Expression,
    InvalidExpression,
    LayerStats,
    layer_statistics,
    sketch_statistics,
)
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


def _progress(records: list[Record], progress: bool, desc: str) -> Any:
    if not progress:
        return records
    from tqdm import tqdm

    return tqdm(records, desc=desc, unit="arch")


def _statistics(records: list[Record], batch: tuple[torch.Tensor, torch.Tensor], seed: int, pool: int,
                sketch: int | None, progress: bool) -> list[list[LayerStats]]:  # fmt: skip
    """Every record's layer statistics, exact or as column sketches of at most ``sketch`` columns."""
    out = []
    for r in _progress(records, progress, "train stats"):
        layers = layer_statistics(_build(r.arch, seed), *batch, activation_pool=pool)
        out.append(layers if sketch is None else sketch_statistics(layers, sketch, seed))
    return out


def _exact_scores(exprs: dict[str, Expression], hand: list[str], records: list[Record],
                  batch: tuple[torch.Tensor, torch.Tensor], seed: int,
                  progress: bool, desc: str) -> dict[str, list[float]]:  # fmt: skip
    """Scores (NaN where undefined) of each expression and registered proxy ``hand`` on every record, from
    exact statistics computed one architecture at a time and dropped (they are large)."""
    pool = {e.activation_pool for e in exprs.values()}
    if len(pool) != 1:
        raise ValueError("the expressions must share their activation pooling")
    scores: dict[str, list[float]] = {name: [] for name in [*exprs, *hand]}
    for r in _progress(records, progress, desc):
        model = _build(r.arch, seed)
        layers = layer_statistics(model, *batch, activation_pool=next(iter(pool)))
        for name, expr in exprs.items():
            try:
                scores[name].append(expr.score(layers))
            except InvalidExpression:
                scores[name].append(math.nan)
        del layers
        for name, value in compute(hand, model, *batch).items():
            scores[name].append(value)
    return scores


def _kendall_table(scores: dict[str, list[float]], records: list[Record],
                   spaces: list[str]) -> dict[str, dict[str, float]]:  # fmt: skip
    """Kendall per space, their ``mean`` and the number of archs where the score is ``undefined`` (left
    out of the Kendall), per scored name."""
    out = {}
    for name, values in scores.items():
        row = {}
        for space in spaces:
            idx = [i for i, r in enumerate(records) if r.space == space]
            row[space] = _finite_kendall([values[i] for i in idx], [records[i].target for i in idx])
        row["mean"] = float(np.mean([row[s] for s in spaces]))
        row["undefined"] = sum(not math.isfinite(v) for v in values)
        out[name] = row
    return out


def _finite_kendall(x: list[float], y: list[float]) -> float:
    keep = [i for i, v in enumerate(x) if math.isfinite(v)]
    return kendall([x[i] for i in keep], [y[i] for i in keep])


def _rerank(result: SearchResult, saswot_expr: Expression, top: int, train: list[Record],
            batch: tuple[torch.Tensor, torch.Tensor], seed: int, spaces: list[str],
            progress: bool) -> tuple[Expression, list[dict[str, Any]], dict[str, float]]:  # fmt: skip
    """Re-score the ``top`` best candidates of a sketched search and SasWOT's expression on exact
    statistics of the training archs; the best candidate defined on every arch (by exact mean Kendall),
    one row per candidate (sketch vs exact Kendall) and SasWOT's exact row."""
    candidates = {f"candidate_{i}": e for i, (e, _) in enumerate(result.ranking[:top])}
    table = _kendall_table(
        _exact_scores({**candidates, "_saswot_expression": saswot_expr}, [], train, batch, seed, progress,
                      "exact train"), train, spaces,
    )  # fmt: skip
    rows = [
        {"expression": str(e), "kendall_sketch": f, "kendall_exact": table[name]["mean"],
         "undefined_exact": table[name]["undefined"]}
        for name, (e, f) in zip(candidates, result.ranking[:top], strict=True)
    ]  # fmt: skip
    valid = [n for n in candidates if table[n]["undefined"] == 0 and math.isfinite(table[n]["mean"])]
    if not valid:
        raise RuntimeError(f"none of the {top} best sketch candidates is defined on exact statistics")
    best = max(valid, key=lambda n: table[n]["mean"])
    return candidates[best], rows, table["_saswot_expression"]


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

    sketch = None if stage.sketch_columns is None else int(stage.sketch_columns)
    t0 = time.perf_counter()
    train_stats = _statistics(train, batch, seed, pool, sketch, progress)
    cache_mb = sum(layer.nbytes() for layers in train_stats for layer in layers) / len(train_stats) / 2**20
    fitness = CachedFitness(train_stats, [r.target for r in train], [r.space for r in train])
    evo = stage.evolution
    seeds = [saswot_expr] if bool(stage.seed_with_saswot) else []
    t1 = time.perf_counter()
    result = evolve(
        fitness, random.Random(seed), population=int(evo.population), iterations=int(evo.iterations),
        top_k=int(evo.top_k), children=int(evo.children), p_crossover=float(evo.p_crossover),
        p_mutate=float(evo.p_mutate), patience=int(evo.patience), base=base, seeds=seeds,
    )  # fmt: skip
    t2 = time.perf_counter()
    log.info("search best %s: train Kendall %.4f (%s)", result.best, result.fitness, sketch or "exact")
    saswot_search = fitness(saswot_expr).kendall

    del train_stats, fitness.stats  # free the memory before the exact passes
    if sketch is None:
        best, rerank, train_kendall, saswot_train = result.best, [], result.fitness, saswot_search
    else:
        best, rerank, saswot_row = _rerank(result, saswot_expr, int(stage.rerank_top), train, batch, seed,
                                           spaces, progress)  # fmt: skip
        train_kendall = next(r["kendall_exact"] for r in rerank if r["expression"] == str(best))
        saswot_train = saswot_row["mean"]
    t3 = time.perf_counter()
    hand_names = list(stage.hand_proxies)
    held_table = _kendall_table(
        _exact_scores({"_evolved": best, "_saswot_expression": saswot_expr}, hand_names, held, batch, seed,
                      progress, "held-out"), held, spaces,
    )  # fmt: skip
    best_held, saswot_held = held_table["_evolved"], held_table["_saswot_expression"]
    hand = {n: held_table[n] for n in hand_names}
    finite_hand = {n: r["mean"] for n, r in hand.items() if math.isfinite(r["mean"])}
    best_hand = max(finite_hand, key=finite_hand.__getitem__) if finite_hand else None
    t4 = time.perf_counter()

    best.save(out / "best_proxy.yaml", kendall_train=train_kendall, kendall_heldout=best_held["mean"])
    lines = ["iteration,best,population_best,population_mean,evaluated"]
    lines += [",".join(f"{h[k]:.6g}" for k in ("iteration", "best", "population_best", "population_mean",
                                                "evaluated")) for h in result.history]  # fmt: skip
    (out / "search_curve.csv").write_text("\n".join(lines) + "\n")
    reference = {"evolved (held-out)": best_held["mean"], "saswot expression (held-out)": saswot_held["mean"]}
    if best_hand:
        reference[f"best hand-designed: {best_hand} (held-out)"] = hand[best_hand]["mean"]
    plot_curve(result, reference, out)
    return {
        "best_expression": str(best),
        "kendall_train": train_kendall,
        "kendall_heldout": best_held["mean"],
        "kendall_heldout_per_space": {s: best_held[s] for s in spaces},
        "kendall_train_sketch": fitness.cache[best].kendall if sketch is not None else None,
        "saswot_expression_train": saswot_train,
        "saswot_expression_heldout": saswot_held,
        "hand_designed_heldout": hand,
        "best_hand_designed": (
            {"name": best_hand, "kendall_heldout": hand[best_hand]["mean"]} if best_hand else None
        ),
        "rerank": rerank,
        "search": {
            "best": str(result.best),
            "fitness": result.fitness,
            "saswot_expression": saswot_search,
            "evaluated": result.evaluated,
            "rejected": result.rejected,
            "resets": result.resets,
            "iterations": len(result.history),
        },
        "cost": {
            "statistics": "exact" if sketch is None else f"column sketch, {sketch} columns, bfloat16",
            "cache_mb_per_arch": cache_mb,
            "seconds_train_statistics": t1 - t0,
            "seconds_search": t2 - t1,
            "seconds_per_candidate": (t2 - t1) / max(result.evaluated, 1),
            "seconds_exact_rerank": t3 - t2,
            "seconds_heldout": t4 - t3,
        },
        "setup": {
            "csv": csv_path,
            "target": str(cfg.benchmark.target),
            "spaces": spaces,
            "train_archs_per_space": int(stage.train_archs),
            "heldout_archs_per_space": int(stage.heldout_archs),
            "sketch_columns": sketch,
            "batch_shape": list(batch[0].shape),
            "inputs": str(stage.inputs),
        },
    }
