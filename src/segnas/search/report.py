"""What a search leaves in its folder: evaluation tables, the front, ranked genotype YAMLs, summaries."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segnas.callbacks.history import write_rows_csv
from segnas.search.pareto import pareto_indices
from segnas.search.problem import Evaluated
from segnas.spaces import save_genotype


def rows(evaluated: Sequence[Evaluated], names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One table row per evaluation: search, generation, branch count (or architecture string) and every metric."""
    out = []
    for i, e in enumerate(evaluated):
        row: dict[str, Any] = {"name": names[i]} if names else {}
        row.update(search=e.search, generation=e.generation)
        if hasattr(e.genotype, "branches"):
            row["num_branches"] = len(e.genotype.branches)
        if hasattr(e.genotype, "head"):
            row["head"] = "_".join(map(str, e.genotype.head))
        if hasattr(e.genotype, "arch"):
            row["arch"] = e.genotype.arch
        row.update(sorted(e.metrics.items()))  # a fixed column order, however the archive merged them
        out.append(row)
    return out


def front_of(
    evaluated: Sequence[Evaluated], score: str, cost: str, min_score: float | None = None
) -> list[Evaluated]:
    """The Pareto front (higher ``score``, lower ``cost``) of the evaluations at or above ``min_score``."""
    feasible = [e for e in evaluated if min_score is None or e.metrics[score] >= min_score]
    return [feasible[i] for i in pareto_indices([e.metrics[score] for e in feasible],
                                                [e.metrics[cost] for e in feasible])]


def ranked(evaluated: Sequence[Evaluated], score: str) -> list[Evaluated]:
    """Evaluations with a finite ``score``, best first (ties keep evaluation order)."""
    return sorted((e for e in evaluated if math.isfinite(e.metrics[score])), key=lambda e: -e.metrics[score])


def write_genotypes(
    out: Path, evaluated: Sequence[Evaluated], prefix: str, retrain: str | None = None,
    measured_on: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """``genotypes/{prefix}_NN.yaml`` for ``evaluated`` in order (stale ones of the prefix removed), each
    with its metrics, what they were measured on and the command that retrains it; returns their table rows
    with the path."""
    folder = out / "genotypes"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(f"{prefix}_*.yaml"):
        stale.unlink()
    names = [f"{prefix}_{i:02d}" for i in range(len(evaluated))]
    table = rows(evaluated, names)
    for row, e in zip(table, evaluated, strict=True):
        path = folder / f"{row['name']}.yaml"
        command = retrain.format(path=path) if retrain else None
        saved = save_genotype(e.genotype, path, metrics=e.metrics, command=command, measured_on=measured_on)
        row["genotype"] = str(saved.relative_to(out))
    return table


def write_front(out: Path, front: Sequence[Evaluated], retrain: str | None = None,
                measured_on: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """``genotypes/arch_NN.yaml`` per front architecture and ``pareto.csv``."""
    table = write_genotypes(out, front, "arch", retrain, measured_on)
    write_rows_csv(out / "pareto.csv", table)
    return table


def summary(evaluated: Sequence[Evaluated], score: str, cost: str) -> dict[str, Any]:
    """Count, best score (and its cost) and mean of the top five scores."""
    best = ranked(evaluated, score)
    return {
        "evaluated": len(evaluated),
        "valid_scores": len(best),
        "best_score": best[0].metrics[score] if best else math.nan,
        "best_cost": best[0].metrics.get(cost, math.nan) if best else math.nan,
        "mean_top5_score": float(np.mean([e.metrics[score] for e in best[:5]])) if best else math.nan,
    }


def best_so_far(evaluated: Sequence[Evaluated], score: str) -> list[dict[str, Any]]:
    """One row per evaluation in order: its index (from 1), score and the best finite score so far."""
    out, best = [], math.nan
    for i, e in enumerate(evaluated, 1):
        value = e.metrics[score]
        if math.isfinite(value) and (math.isnan(best) or value > best):
            best = value
        out.append({"evaluation": i, "search": e.search, score: value, f"best_{score}": best})
    return out
