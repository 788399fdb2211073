"""The pieces of a proxy-expression search on TransNAS-Bench-101 (SasWOT §3.3) beside the search itself.

``stage=proxy_evolution`` draws disjoint training and held-out benchmark architectures (:func:`split_archs`),
collects the training archs' per-layer statistics (:func:`~segnas.proxies.expression.layer_statistics`:
activations, dL/dW, W) once on one batch, exact or as column sketches of at most K columns of W and dL/dW
per layer (:func:`~segnas.proxies.expression.sketch_statistics`; ~10x less memory and time per candidate),
optionally saved (:func:`cached_statistics`), and searches the
:class:`~segnas.proxies.expression_space.ExpressionSpace` with the ``search=`` group's algorithm for the
fitness :class:`TrainFitness` (mean over spaces of Kendall tau against the ground truth; NaN: invalid).
With sketches the best distinct candidates and SasWOT's expression are then re-scored on exact statistics
(streamed one architecture at a time) and the best by exact training Kendall is kept (:func:`select`), so
every reported correlation is computed on exact statistics; the chosen expression is scored on the
held-out archs beside hand-designed proxies and SasWOT's expression (:func:`heldout`), and
:func:`write_outputs` writes ``best_proxy.yaml`` and the search curve.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from segnas.proxies.benchmark import Record
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
from segnas.proxies.registry import compute
from segnas.search.algorithms import SearchResult
from segnas.search.problem import Evaluated
from segnas.spaces import transnas

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]
Statistics = list[list[LayerStats]]


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


def fitness_context(cfg: DictConfig, csv_path: str, sketch: int | None) -> dict[str, Any]:
    """What the search's fitness depends on (the archive's context), from ``stage=proxy_evolution``'s config:
    the benchmark file (content hash) and target, the arch split, the scoring batch, the statistics' pooling
    and sketch, and TNB's residual-BN quirk."""
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


def saswot_expression(space: ExpressionSpace) -> Expression:
    """SasWOT's ``lesser_than(softmax(W), relu(dL/dW))`` with the space's reductions and pooling."""
    return space.canonical(Expression(SASWOT.inputs, SASWOT.unary, SASWOT.binary, **space.reductions,
                                      activation_pool=space.activation_pool))


def _progress(records: list[Record], progress: bool, desc: str) -> Any:
    if not progress:
        return records
    from tqdm import tqdm

    return tqdm(records, desc=desc, unit="arch")


@dataclass
class BenchmarkArchs:
    """Training and held-out benchmark architectures and how they are built (weights' ``seed``, TNB's
    residual-BN quirk) and scored (one ``batch``); Kendalls are per space of ``spaces``."""

    train: list[Record]
    heldout: list[Record]
    spaces: list[str]
    batch: Batch
    seed: int
    bn_quirk: bool
    progress: bool = True

    def statistics(self, pool: int, sketch: int | None) -> Statistics:
        """Every training arch's layer statistics, exact or as column sketches of at most ``sketch``
        columns."""
        out = []
        for r in _progress(self.train, self.progress, "train stats"):
            model = transnas.build(r.arch, seed=self.seed, bn_quirk=self.bn_quirk)
            layers = layer_statistics(model, *self.batch, activation_pool=pool)
            out.append(layers if sketch is None else sketch_statistics(layers, sketch, self.seed))
        return out

    def exact_scores(self, exprs: dict[str, Expression], hand: Mapping[str, Mapping[str, Any]],
                     records: list[Record], desc: str) -> dict[str, list[float]]:  # fmt: skip
        """Scores (NaN where undefined) of each expression and registered proxy of ``hand`` (name -> its
        options) on every record, from exact statistics computed one architecture at a time and dropped (they
        are large)."""
        pool = {e.activation_pool for e in exprs.values()}
        if len(pool) != 1:
            raise ValueError("the expressions must share their activation pooling")
        scores: dict[str, list[float]] = {name: [] for name in [*exprs, *hand]}
        for r in _progress(records, self.progress, desc):
            model = transnas.build(r.arch, seed=self.seed, bn_quirk=self.bn_quirk)
            layers = layer_statistics(model, *self.batch, activation_pool=next(iter(pool)))
            for name, expr in exprs.items():
                try:
                    scores[name].append(expr.score(layers))
                except InvalidExpression:
                    scores[name].append(math.nan)
            del layers
            for name, value in compute(list(hand), model, *self.batch, options=hand).items():
                scores[name].append(value)
        return scores

    def kendall_table(self, exprs: dict[str, Expression], hand: Mapping[str, Mapping[str, Any]],
                      records: list[Record], desc: str) -> dict[str, dict[str, float]]:  # fmt: skip
        """Per scored name (:meth:`exact_scores`): Kendall per space, their ``mean`` and the number of archs
        where the score is ``undefined`` (left out of the Kendall)."""
        out = {}
        for name, values in self.exact_scores(exprs, hand, records, desc).items():
            row = {}
            for space in self.spaces:
                idx = [i for i, r in enumerate(records) if r.space == space]
                row[space] = _finite_kendall([values[i] for i in idx], [records[i].target for i in idx])
            row["mean"] = float(np.mean([row[s] for s in self.spaces]))
            row["undefined"] = sum(not math.isfinite(v) for v in values)
            out[name] = row
        return out


def _finite_kendall(x: list[float], y: list[float]) -> float:
    keep = [i for i, v in enumerate(x) if math.isfinite(v)]
    return kendall([x[i] for i in keep], [y[i] for i in keep])


def cached_statistics(
    build: Callable[[], Statistics], path: Path | None, context: dict[str, Any]
) -> Statistics:
    """``build()``, or its copy saved at ``path`` under the same ``context`` (saved there when built); a file
    that does not load (torn, corrupt, another format) is rebuilt with a warning naming it."""
    if path is not None and path.is_file():
        try:
            saved = torch.load(path, weights_only=True)
            if saved["context"] == context:
                return [[LayerStats(*layer) for layer in layers] for layers in saved["stats"]]
            log.warning("%s was computed in another context; rebuilding it", path)
        except Exception as error:  # any unreadable cache is rebuilt, never trusted
            log.warning("%s is unreadable (%s: %s); rebuilding it", path, type(error).__name__,
                        str(error).partition("\n")[0][:120])
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

    def __init__(self, build: Callable[[], Statistics], train: list[Record]) -> None:
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


def ranking(evaluated: list[Evaluated]) -> list[tuple[Expression, float]]:
    """The valid candidates of a search (distinct keys) and their Kendall, best first (ties: evaluation
    order)."""
    valid = [e for e in evaluated if math.isfinite(e.metrics["kendall"])]
    return [(e.genotype, e.metrics["kendall"]) for e in sorted(valid, key=lambda e: -e.metrics["kendall"])]


@dataclass
class Selection:
    """The chosen expression, its training Kendall and SasWOT's (exact statistics), and the re-ranked rows
    (sketch vs exact Kendall; empty when the search ran on exact statistics)."""

    best: Expression
    train_kendall: float
    saswot_train: float
    rerank: list[dict[str, Any]]


def select(ranked: list[tuple[Expression, float]], saswot_expr: Expression, saswot_search: float,
           sketch: int | None, top: int, archs: BenchmarkArchs) -> Selection:  # fmt: skip
    """The search's best (exact statistics), or the best of its ``top`` best candidates re-scored with
    SasWOT's expression on exact statistics of the training archs (sketches) that is defined on every arch."""
    if sketch is None:
        best, fitness = ranked[0]
        return Selection(best, fitness, saswot_search, [])
    candidates = {f"candidate_{i}": e for i, (e, _) in enumerate(ranked[:top])}
    exprs = {**candidates, "_saswot_expression": saswot_expr}
    table = archs.kendall_table(exprs, {}, archs.train, "exact train")
    rows = [
        {"expression": str(e), "kendall_sketch": f, "kendall_exact": table[name]["mean"],
         "undefined_exact": table[name]["undefined"]}
        for name, (e, f) in zip(candidates, ranked[:top], strict=True)
    ]  # fmt: skip
    valid = [n for n in candidates if table[n]["undefined"] == 0 and math.isfinite(table[n]["mean"])]
    if not valid:
        raise RuntimeError(f"none of the {top} best sketch candidates is defined on exact statistics")
    best = candidates[max(valid, key=lambda n: table[n]["mean"])]
    train = next(r["kendall_exact"] for r in rows if r["expression"] == str(best))
    return Selection(best, train, table["_saswot_expression"]["mean"], rows)


@dataclass
class HeldOut:
    """Held-out Kendall rows (per space, ``mean``, ``undefined``) of the chosen expression, SasWOT's and the
    hand-designed proxies, and the best hand-designed one by mean (None when none is defined)."""

    evolved: dict[str, float]
    saswot: dict[str, float]
    hand: dict[str, dict[str, float]]
    best_hand: str | None

    def summary(self, train_kendall: float) -> dict[str, float | None]:
        """The headline numbers (dashboards): train and held-out Kendall, SasWOT's and the best
        hand-designed one's held-out Kendall."""
        return {"kendall_train": train_kendall, "kendall_heldout": self.evolved["mean"],
                "saswot_expression_heldout": self.saswot["mean"],
                "best_hand_designed_heldout": self.hand[self.best_hand]["mean"] if self.best_hand else None}

    def results(self, spaces: Sequence[str]) -> dict[str, Any]:
        """The held-out entries of ``results.json``."""
        return {
            "kendall_heldout": self.evolved["mean"],
            "kendall_heldout_per_space": {s: self.evolved[s] for s in spaces},
            "saswot_expression_heldout": self.saswot,
            "hand_designed_heldout": self.hand,
            "best_hand_designed": (
                {"name": self.best_hand, "kendall_heldout": self.hand[self.best_hand]["mean"]}
                if self.best_hand else None
            ),
        }


def heldout(best: Expression, saswot_expr: Expression, hand: Mapping[str, Mapping[str, Any]],
            archs: BenchmarkArchs) -> HeldOut:
    """``best``, SasWOT's expression and the registered proxies of ``hand`` (name -> options) on the held-out
    archs."""
    table = archs.kendall_table({"_evolved": best, "_saswot_expression": saswot_expr}, hand, archs.heldout,
                                "held-out")  # fmt: skip
    rows = {n: table[n] for n in hand}
    finite = {n: r["mean"] for n, r in rows.items() if math.isfinite(r["mean"])}
    best_hand = max(finite, key=finite.__getitem__) if finite else None
    versus = f"best hand-designed {best_hand} {finite[best_hand]:.4f}" if best_hand else "no hand-designed"
    log.info("held-out Kendall: evolved %s %.4f vs %s; SasWOT's expression %.4f", best,
             table["_evolved"]["mean"], versus, table["_saswot_expression"]["mean"])  # fmt: skip
    return HeldOut(table["_evolved"], table["_saswot_expression"], rows, best_hand)


def search_history(result: SearchResult, metric: str = "kendall") -> list[dict[str, float]]:
    """One row per generation: the algorithm's own (top-k's ``history``), else from the evaluations'
    generations (random search's batches): the best so far, the generation's best and mean over its valid
    candidates, and the number evaluated so far."""
    if "history" in result.extra:
        return list(result.extra["history"])
    rows: list[dict[str, float]] = []
    best, count = -math.inf, 0
    for generation, group in itertools.groupby(result.evaluated, key=lambda e: e.generation):
        values = [e.metrics[metric] for e in group]
        finite = [v for v in values if math.isfinite(v)]
        count, best = count + len(values), max([best, *finite])
        rows.append({"generation": generation, "best": best if math.isfinite(best) else math.nan,
                     "population_best": max(finite, default=math.nan),
                     "population_mean": float(np.mean(finite)) if finite else math.nan, "evaluated": count})
    return rows


def search_summary(result: SearchResult, saswot_search: float, archive: Path) -> dict[str, Any]:
    """The ``search`` entry of ``results.json``: its best candidate, SasWOT's expression's fitness, how many
    candidates it evaluated and rejected (NaN), its resets and iterations (top-k) and the archive."""
    best, fitness = ranking(result.evaluated)[0]
    return {
        "best": str(best),
        "fitness": fitness,
        "saswot_expression": saswot_search,
        "evaluated": len(result.evaluated),
        "rejected": sum(not math.isfinite(e.metrics["kendall"]) for e in result.evaluated),
        "resets": result.extra.get("resets", 0),
        "iterations": len(search_history(result)),
        "archive": str(archive),
    }


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


def write_outputs(out: Path, chosen: Selection, held: HeldOut, history: list[dict[str, float]]) -> None:
    """``best_proxy.yaml``, ``search_curve.csv`` and ``search_curve.png`` (held-out reference lines)."""
    chosen.best.save(out / "best_proxy.yaml", kendall_train=chosen.train_kendall,
                     kendall_heldout=held.evolved["mean"])  # fmt: skip
    columns = ("generation", "best", "population_best", "population_mean", "evaluated")
    lines = ["iteration,best,population_best,population_mean,evaluated"]
    lines += [",".join(f"{h[k]:.6g}" for k in columns) for h in history]
    (out / "search_curve.csv").write_text("\n".join(lines) + "\n")
    reference = {
        "evolved (held-out)": held.evolved["mean"],
        "saswot expression (held-out)": held.saswot["mean"],
    }
    if held.best_hand:
        reference[f"best hand-designed: {held.best_hand} (held-out)"] = held.hand[held.best_hand]["mean"]
    plot_curve(history, reference, out)
