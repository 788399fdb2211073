"""Pareto-front figure in the style of the paper's Figure 3."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LinearSegmentedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from segnas.search.problem import Evaluated
from segnas.search.report import front_of

MARKERS = {1: "o", 2: "s", 3: "^"}
GENERATIONS = LinearSegmentedColormap.from_list("generations", plt.cm.Blues(np.linspace(0.25, 1.0, 256)))
COST_LABELS = {"latency_ms": "latency (ms)", "macs_g": "MACs (G)", "params_m": "parameters (M)"}
SCORE_LABELS = {"miou": "mIoU (%)", "score": "proxy score"}


def _branches(e: Evaluated) -> int:
    return len(getattr(e.genotype, "branches", ())) or 1


def plot_search(
    evaluated: Sequence[Evaluated],
    cost: str,
    path: str | Path,
    baseline: Sequence[Evaluated] = (),
    title: str = "",
    score: str = "miou",
    min_score: float | None = None,
) -> Path:
    """Every evaluated architecture (``score`` vs ``cost``) coloured by generation (light to dark), marker
    by branch count, the Pareto front (of the points at or above ``min_score``) as a solid line with its
    points named ``arch_NN`` as in ``genotypes/``; ``baseline`` (e.g. random search) in grey with a dashed
    front. The title (``title``: its first part) counts the points and the front."""
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    last = max((e.generation for e in evaluated), default=0)
    norm = Normalize(vmin=0, vmax=max(last, 1))
    for n, marker in MARKERS.items():
        points = [e for e in evaluated if _branches(e) == n]
        if points:
            ax.scatter(
                [e.metrics[cost] for e in points], [e.metrics[score] for e in points],
                c=[e.generation for e in points], cmap=GENERATIONS, norm=norm, marker=marker, s=22,
                edgecolors="none", zorder=2,
            )
    if baseline:
        ax.scatter([e.metrics[cost] for e in baseline], [e.metrics[score] for e in baseline], c="0.6",
                   marker="x", s=14, linewidths=0.8, zorder=1)
    handles = [Line2D([], [], ls="", marker=m, color="tab:blue", label=f"{n} branch{'es' * (n > 1)}")
               for n, m in MARKERS.items()]
    front = front_of(evaluated, score, cost, min_score)
    for i, e in enumerate(front):
        ax.annotate(f"arch_{i:02d}", (e.metrics[cost], e.metrics[score]), textcoords="offset points",
                    xytext=(3, 3), fontsize=6, zorder=4)
    fronts = ((front, "-", "Pareto front"), (front_of(baseline, score, cost), "--", "random search front"))
    for points, style, label in fronts:
        if not points:
            continue
        ax.plot([e.metrics[cost] for e in points], [e.metrics[score] for e in points], style,
                color="k" if style == "-" else "0.45", lw=1.4, zorder=3)
        handles.append(Line2D([], [], ls=style, color="k" if style == "-" else "0.45", label=label))
    mappable = plt.cm.ScalarMappable(norm=norm, cmap=GENERATIONS)
    fig.colorbar(mappable, ax=ax, label="generation")
    ax.set_xlabel(COST_LABELS.get(cost, cost))
    ax.set_ylabel(SCORE_LABELS.get(score, score))
    counts = f"{len(evaluated)} searched" + (f" + {len(baseline)} random" if baseline else "")
    head = title or f"{SCORE_LABELS.get(score, score)} vs {COST_LABELS.get(cost, cost)}"
    ax.set_title(f"{head}: {counts} architectures, {len(front)} on the front", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_front(
    evaluated: Sequence[Evaluated], front: Sequence[Evaluated], cost: str, score: str = "miou", title: str = ""
) -> Figure:
    """Every evaluation coloured by branch count and the ``front`` joined (the live dashboards' figure);
    the caller closes it."""
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for n in sorted({_branches(e) for e in evaluated}):
        points = [e for e in evaluated if _branches(e) == n]
        ax.scatter([e.metrics[cost] for e in points], [e.metrics[score] for e in points], s=16, color=f"C{n - 1}",
                   label=f"{n} branch{'es' * (n > 1)}", zorder=2)
    ax.plot([e.metrics[cost] for e in front], [e.metrics[score] for e in front], "-o", color="k", mfc="none",
            lw=1.2, ms=7, zorder=3, label="front")
    ax.set(xlabel=COST_LABELS.get(cost, cost), ylabel=SCORE_LABELS.get(score, score))
    ax.set_title(f"{title}: {len(evaluated)} architectures, {len(front)} on the front", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def plot_correlation(rows: list[dict[str, Any]], corr: dict[str, float], path: Path) -> None:
    """Supernet-estimated vs standalone mIoU, one point per network (coloured by branch count)."""
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    x = [r["supernet_miou"] for r in rows]
    y = [r["standalone_miou"] for r in rows]
    ax.scatter(x, y, c=[r.get("num_branches", 1) for r in rows], cmap="viridis", vmin=1, vmax=3, s=30)
    ax.set_xlabel("supernet mIoU (%)")
    ax.set_ylabel("standalone mIoU (%)")
    ax.set_title(f"Kendall tau {corr['kendall']:.2f}, Pearson {corr['pearson']:.2f} (n={len(rows)})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
