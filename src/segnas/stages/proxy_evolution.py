"""``stage=proxy_evolution``: search a zero-cost proxy expression on TransNAS-Bench-101 (SasWOT §3.3).

Per space, ``train_archs`` benchmark architectures are built and their per-layer statistics
(:func:`~segnas.proxies.expression.layer_statistics`: activations, dL/dW, W) collected once on one batch
and kept in memory, exact or, with ``sketch_columns: K``, as column sketches of at most K columns of W and
dL/dW per layer (:func:`~segnas.proxies.expression.sketch_statistics`; ~10x less memory and time per
candidate); with ``cache_statistics`` they are also saved to ``train_statistics.pt``. The search is the
engine's top-k evolution (:func:`~segnas.search.topk.run_topk`) over
:class:`~segnas.proxies.expression_space.ExpressionSpace`, maximising the mean over spaces of Kendall tau
against the ground truth (:class:`~segnas.proxies.proxy_search.CachedFitness`; NaN: invalid), or, with
``fitness: per_space``, one such search per space, written to ``<space>/`` subfolders. Every
fitness goes to ``archive.jsonl`` as soon as it is computed, under a context naming what it depends on
(benchmark file, split, batch, sketch): a killed run re-run in the same folder replays the search from the
archive and computes only what is missing (``n_computed_this_run``), and a run with other such settings in
that folder is refused. With sketches, the ``rerank_top`` best distinct candidates (and SasWOT's
expression) are then re-scored on exact statistics of the same training archs (streamed one architecture
at a time) and the best by exact training Kendall is kept, so every reported correlation is computed on
exact statistics. The chosen expression is scored on ``heldout_archs`` other architectures per space,
beside the hand-designed proxies ``hand_proxies`` and SasWOT's expression, on the same held-out set.
Writes ``best_proxy.yaml`` (loadable with :func:`~segnas.proxies.expression.load_expression_proxy`),
``search_curve.csv``, ``search_curve.png`` and returns the results dict (``results.json``).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

from segnas.proxies import compute
from segnas.proxies.batch import benchmark_batch
from segnas.proxies.benchmark import Record, load
from segnas.proxies.expression import (
    SASWOT,
    Expression,
    InvalidExpression,
    LayerStats,
    layer_statistics,
    sketch_statistics,
)
from segnas.proxies.expression_space import ExpressionSpace
from segnas.proxies.proxy_search import CachedFitness, kendall
from segnas.search.algorithms import GenerationCallback
from segnas.search.archive import Archive
from segnas.search.evaluator import Evaluator
from segnas.search.live import LiveSearch
from segnas.search.problem import Evaluated, Goal, SearchProblem
from segnas.search.topk import TopKResult, run_topk
from segnas.spaces import transnas
from segnas.utils.loggers import build_loggers
from segnas.utils.run import output_dir

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]


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


def _statistics(records: list[Record], batch: Batch, seed: int, bn_quirk: bool, pool: int, sketch: int | None,
                progress: bool) -> list[list[LayerStats]]:  # fmt: skip
    """Every record's layer statistics, exact or as column sketches of at most ``sketch`` columns."""
    out = []
    for r in _progress(records, progress, "train stats"):
        model = transnas.build(r.arch, seed=seed, bn_quirk=bn_quirk)
        layers = layer_statistics(model, *batch, activation_pool=pool)
        out.append(layers if sketch is None else sketch_statistics(layers, sketch, seed))
    return out


def fitness_context(cfg: DictConfig, csv_path: str, sketch: int | None) -> dict[str, Any]:
    """What the search's fitness depends on: the benchmark file (content hash) and target, the arch split,
    the scoring batch, the statistics' pooling and sketch, and TNB's residual-BN quirk."""
    stage = cfg.stage
    data = cfg.get("data") if str(stage.inputs) == "data" else None
    return {
        "benchmark_sha256": hashlib.sha256(Path(csv_path).read_bytes()).hexdigest(),
        "target": str(cfg.benchmark.target),
        "seed": int(cfg.seed),
        "spaces": list(stage.spaces),
        "train_archs": int(stage.train_archs),
        "heldout_archs": int(stage.heldout_archs),
        "inputs": str(stage.inputs),
        "data": OmegaConf.to_container(data, resolve=True) if data is not None else None,
        "batch_size": int(stage.batch_size),
        "resolution": int(stage.resolution),
        "activation_pool": int(stage.activation_pool),
        "sketch_columns": sketch,
        **({"bn_quirk": True} if stage.bn_quirk else {}),  # absent when off, as in archives made before it
    }


def cached_statistics(build: Callable[[], list[list[LayerStats]]], path: Path | None,
                      context: dict[str, Any]) -> list[list[LayerStats]]:  # fmt: skip
    """``build()``, or its copy saved at ``path`` under the same ``context`` (saved there when built)."""
    if path is not None and path.is_file():
        saved = torch.load(path)
        if saved["context"] == context:
            return [[LayerStats(*layer) for layer in layers] for layers in saved["stats"]]
        log.warning("%s was computed in another context; rebuilding it", path)
    stats = build()
    if path is not None:
        plain = [
            [(s.activation, s.gradient, s.weight, s.column_fraction) for s in layers] for layers in stats
        ]
        torch.save({"context": context, "stats": plain}, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
    return stats


class TrainFitness:
    """Kendall fitness (NaN when invalid) on the training archs, whose statistics are only built (or loaded)
    when a candidate is first computed, so a re-run answered from the archive does not need them."""

    def __init__(self, build: Callable[[], list[list[LayerStats]]], train: list[Record]) -> None:
        self.build, self.train = build, train
        self.fitness: CachedFitness | None = None
        self.seconds, self.mb_per_arch = 0.0, math.nan

    def __call__(self, expression: Expression) -> float:
        if self.fitness is None:
            start = time.perf_counter()
            stats = self.build()
            self.seconds = time.perf_counter() - start
            self.mb_per_arch = sum(s.nbytes() for layers in stats for s in layers) / len(stats) / 2**20
            self.fitness = CachedFitness(stats, [r.target for r in self.train], [r.space for r in self.train])
        return self.fitness(expression).kendall

    def release(self) -> None:
        """Drop the statistics (they are large)."""
        self.fitness = None


def _exact_scores(exprs: dict[str, Expression], hand: list[str], records: list[Record], batch: Batch,
                  seed: int, bn_quirk: bool, progress: bool, desc: str) -> dict[str, list[float]]:  # fmt: skip
    """Scores (NaN where undefined) of each expression and registered proxy ``hand`` on every record, from
    exact statistics computed one architecture at a time and dropped (they are large)."""
    pool = {e.activation_pool for e in exprs.values()}
    if len(pool) != 1:
        raise ValueError("the expressions must share their activation pooling")
    scores: dict[str, list[float]] = {name: [] for name in [*exprs, *hand]}
    for r in _progress(records, progress, desc):
        model = transnas.build(r.arch, seed=seed, bn_quirk=bn_quirk)
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


def ranking(evaluated: list[Evaluated]) -> list[tuple[Expression, float]]:
    """The valid candidates of a search (distinct keys) and their Kendall, best first (ties: evaluation
    order)."""
    valid = [e for e in evaluated if math.isfinite(e.metrics["kendall"])]
    return [(e.genotype, e.metrics["kendall"]) for e in sorted(valid, key=lambda e: -e.metrics["kendall"])]


def _rerank(ranked: list[tuple[Expression, float]], saswot_expr: Expression, top: int, train: list[Record],
            batch: Batch, seed: int, bn_quirk: bool, spaces: list[str],
            progress: bool) -> tuple[Expression, list[dict[str, Any]], dict[str, float]]:  # fmt: skip
    """Re-score the ``top`` best candidates of a sketched search and SasWOT's expression on exact
    statistics of the training archs; the best candidate defined on every arch (by exact mean Kendall),
    one row per candidate (sketch vs exact Kendall) and SasWOT's exact row."""
    candidates = {f"candidate_{i}": e for i, (e, _) in enumerate(ranked[:top])}
    table = _kendall_table(
        _exact_scores({**candidates, "_saswot_expression": saswot_expr}, [], train, batch, seed, bn_quirk,
                      progress, "exact train"), train, spaces,
    )  # fmt: skip
    rows = [
        {"expression": str(e), "kendall_sketch": f, "kendall_exact": table[name]["mean"],
         "undefined_exact": table[name]["undefined"]}
        for name, (e, f) in zip(candidates, ranked[:top], strict=True)
    ]  # fmt: skip
    valid = [n for n in candidates if table[n]["undefined"] == 0 and math.isfinite(table[n]["mean"])]
    if not valid:
        raise RuntimeError(f"none of the {top} best sketch candidates is defined on exact statistics")
    best = max(valid, key=lambda n: table[n]["mean"])
    return candidates[best], rows, table["_saswot_expression"]


def plot_curve(history: list[dict[str, float]], reference: dict[str, float], out: Path) -> None:
    """Best and population-mean training Kendall per generation, with held-out reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gens = [h["generation"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(gens, [h["best"] for h in history], label="best so far (train)")
    ax.plot(gens, [h["population_mean"] for h in history], label="population mean (train)", alpha=0.7)
    for i, (label, value) in enumerate(reference.items()):
        if math.isfinite(value):
            ax.axhline(value, linestyle="--", color=f"C{i + 2}", label=label)
    ax.set_xlabel("iteration")
    ax.set_ylabel("Kendall tau")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "search_curve.png", dpi=120)
    plt.close(fig)


def _search(
    cfg: DictConfig, space: ExpressionSpace, evaluator: Evaluator, seeds: list[Expression],
    on_generation: GenerationCallback | None = None,
) -> TopKResult:
    """The top-k evolution of ``cfg.stage.evolution`` over ``space``, maximising the ``kendall`` metric
    (``on_generation``: see :func:`~segnas.search.topk.run_topk`)."""
    evo = cfg.stage.evolution
    problem = SearchProblem(space, evaluator, [Goal("kendall", maximize=True)])
    return run_topk(
        problem, population=int(evo.population), generations=int(evo.iterations), top_k=int(evo.top_k),
        children=int(evo.children), p_crossover=float(evo.p_crossover), p_mutate=float(evo.p_mutate),
        patience=int(evo.patience), clear_pool=bool(evo.clear_pool),
        random_per_generation=int(evo.random_per_generation), initial=seeds, seed=int(cfg.seed),
        label="proxy_evolution", progress=bool(cfg.stage.progress), on_generation=on_generation,
    )  # fmt: skip


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


def _evolve(cfg: DictConfig) -> dict[str, Any]:
    """One search whose fitness is the mean over ``cfg.stage.spaces`` of each space's Kendall."""
    stage = cfg.stage
    out = output_dir(cfg)
    spaces, seed = list(stage.spaces), int(cfg.seed)
    csv_path = to_absolute_path(str(cfg.benchmark.csv))
    records = load(csv_path, str(cfg.benchmark.target))
    train, held = split_archs(records, spaces, int(stage.train_archs), int(stage.heldout_archs),
                              random.Random(seed))  # fmt: skip
    batch = benchmark_batch(cfg.get("data"), str(cfg.stage.inputs), int(cfg.stage.batch_size),
                            int(cfg.stage.resolution), transnas.NUM_CLASSES, int(cfg.seed))
    pool, progress, quirk = int(stage.activation_pool), bool(stage.progress), bool(stage.bn_quirk)
    space = ExpressionSpace(int(stage.chain), str(stage.elem_reduce), str(stage.layer_reduce), pool)
    saswot_expr = space.canonical(Expression(SASWOT.inputs, SASWOT.unary, SASWOT.binary, str(stage.elem_reduce),
                                             str(stage.layer_reduce), pool))  # fmt: skip
    sketch = None if stage.sketch_columns is None else int(stage.sketch_columns)
    context = fitness_context(cfg, csv_path, sketch)
    archive = Archive(out / "archive.jsonl", key=space.key, context=context)
    fitness = TrainFitness(
        lambda: cached_statistics(
            lambda: _statistics(train, batch, seed, quirk, pool, sketch, progress),
            out / "train_statistics.pt" if bool(stage.cache_statistics) else None, context,
        ), train,
    )  # fmt: skip
    evaluator = Evaluator({"kendall": fitness}, archive)

    live = LiveSearch(build_loggers(cfg), "kendall")  # best Kendall per iteration on W&B / TensorBoard
    t1 = time.perf_counter()
    result = _search(cfg, space, evaluator, [saswot_expr] if bool(stage.seed_with_saswot) else [], live)
    t2 = time.perf_counter()
    ranked = ranking(result.evaluated)
    search_best, search_fitness = ranked[0]
    log.info("search best %s: train Kendall %.4f (%s)", search_best, search_fitness, sketch or "exact")
    saswot_search = evaluator(saswot_expr, search="saswot_reference")["kendall"]
    fitness.release()  # free the memory before the exact passes

    if sketch is None:
        best, rerank, train_kendall, saswot_train = search_best, [], search_fitness, saswot_search
    else:
        best, rerank, saswot_row = _rerank(ranked, saswot_expr, int(stage.rerank_top), train, batch, seed,
                                           quirk, spaces, progress)  # fmt: skip
        train_kendall = next(r["kendall_exact"] for r in rerank if r["expression"] == str(best))
        saswot_train = saswot_row["mean"]
    t3 = time.perf_counter()
    hand_names = list(stage.hand_proxies)
    held_table = _kendall_table(
        _exact_scores({"_evolved": best, "_saswot_expression": saswot_expr}, hand_names, held, batch, seed,
                      quirk, progress, "held-out"), held, spaces,
    )  # fmt: skip
    best_held, saswot_held = held_table["_evolved"], held_table["_saswot_expression"]
    hand = {n: held_table[n] for n in hand_names}
    finite_hand = {n: r["mean"] for n, r in hand.items() if math.isfinite(r["mean"])}
    best_hand = max(finite_hand, key=finite_hand.__getitem__) if finite_hand else None
    t4 = time.perf_counter()

    best.save(out / "best_proxy.yaml", kendall_train=train_kendall, kendall_heldout=best_held["mean"])
    columns = ("generation", "best", "population_best", "population_mean", "evaluated")
    lines = ["iteration,best,population_best,population_mean,evaluated"]
    lines += [",".join(f"{h[k]:.6g}" for k in columns) for h in result.history]
    (out / "search_curve.csv").write_text("\n".join(lines) + "\n")
    reference = {"evolved (held-out)": best_held["mean"], "saswot expression (held-out)": saswot_held["mean"]}
    if best_hand:
        reference[f"best hand-designed: {best_hand} (held-out)"] = hand[best_hand]["mean"]
    plot_curve(result.history, reference, out)
    live.finish({"kendall_train": train_kendall, "kendall_heldout": best_held["mean"],
                 "saswot_expression_heldout": saswot_held["mean"],
                 "best_hand_designed_heldout": hand[best_hand]["mean"] if best_hand else None},
                images={"search_curve": out / "search_curve.png"})
    log.info("held-out Kendall: evolved %s %.4f vs %s; SasWOT's expression %.4f", best, best_held["mean"],
             f"best hand-designed {best_hand} {hand[best_hand]['mean']:.4f}" if best_hand else "no hand-designed proxy",
             saswot_held["mean"])
    n_search = len(result.evaluated)
    return {
        "best_expression": str(best),
        "kendall_train": train_kendall,
        "kendall_heldout": best_held["mean"],
        "kendall_heldout_per_space": {s: best_held[s] for s in spaces},
        "kendall_train_sketch": archive.metrics(space.key(best))["kendall"] if sketch is not None else None,
        "saswot_expression_train": saswot_train,
        "saswot_expression_heldout": saswot_held,
        "hand_designed_heldout": hand,
        "best_hand_designed": (
            {"name": best_hand, "kendall_heldout": hand[best_hand]["mean"]} if best_hand else None
        ),
        "rerank": rerank,
        "n_computed_this_run": evaluator.n_computed,
        "search": {
            "best": str(search_best),
            "fitness": search_fitness,
            "saswot_expression": saswot_search,
            "evaluated": n_search,
            "rejected": sum(not math.isfinite(e.metrics["kendall"]) for e in result.evaluated),
            "resets": result.resets,
            "iterations": len(result.history),
            "archive": str(out / "archive.jsonl"),
        },
        "cost": {
            "statistics": "exact" if sketch is None else f"column sketch, {sketch} columns, bfloat16",
            "cache_mb_per_arch": fitness.mb_per_arch,
            "seconds_train_statistics": fitness.seconds,
            "seconds_search": t2 - t1 - fitness.seconds,
            "seconds_per_candidate": (t2 - t1 - fitness.seconds) / max(evaluator.n_computed, 1),
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
            "fitness_context": context,
        },
    }
