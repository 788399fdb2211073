"""Pareto-front figure in the style of the paper's Figure 3."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LinearSegmentedColormap, Normalize
from matplotlib.lines import Line2D

from segnas.search.pareto import pareto_indices
from segnas.search.problem import Evaluated

MARKERS = {1: "o", 2: "s", 3: "^"}
GENERATIONS = LinearSegmentedColormap.from_list("generations", plt.cm.Blues(np.linspace(0.25, 1.0, 256)))
COST_LABELS = {"latency_ms": "latency (ms)", "macs_g": "FLOPs (GMACs)", "params_m": "parameters (M)"}
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
) -> Path:
    """Every evaluated architecture (``score`` vs ``cost``) coloured by generation (light to dark), marker
    by branch count, the Pareto front as a solid line; ``baseline`` (e.g. random search) in grey with a
    dashed front."""
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
    for points, style, label in ((evaluated, "-", "Pareto front"), (baseline, "--", "random search front")):
        if not points:
            continue
        front = [points[i] for i in pareto_indices([e.metrics[score] for e in points],
                                                   [e.metrics[cost] for e in points])]
        ax.plot([e.metrics[cost] for e in front], [e.metrics[score] for e in front], style,
                color="k" if style == "-" else "0.45", lw=1.4, zorder=3)
        handles.append(Line2D([], [], ls=style, color="k" if style == "-" else "0.45", label=label))
    mappable = plt.cm.ScalarMappable(norm=norm, cmap=GENERATIONS)
    fig.colorbar(mappable, ax=ax, label="generation")
    ax.set_xlabel(COST_LABELS.get(cost, cost))
    ax.set_ylabel(SCORE_LABELS.get(score, score))
    ax.set_title(title or f"{SCORE_LABELS.get(score, score)} vs {COST_LABELS.get(cost, cost)}")
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
