"""The costs a search trades off and budgets: latency (lookup table or measured), MACs, params and, where the
space estimates it, training activation memory, all of the network that will be deployed."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segnas.metrics import rank_correlations
from segnas.models import build_network
from segnas.search.distributed import Ranks, RankZeroObjective
from segnas.search.evaluator import Objective
from segnas.search.objectives import ActivationMemory, Macs, MeasuredLatency, Params
from segnas.spaces.base import SearchSpace

LATENCY_MODELS = ("auto", "lut", "measured")


def latency_model(space: SearchSpace, model: str) -> str:
    """``model`` resolved: ``auto`` is ``lut`` for a space with a latency lookup table (hyctas) and
    ``measured`` (every network timed) for the others."""
    if model not in LATENCY_MODELS:
        raise ValueError(f"stage.latency.model must be one of {list(LATENCY_MODELS)}, got {model!r}")
    if model == "auto":
        return "lut" if hasattr(space, "latency_table") else "measured"
    return model


class PerStratum:
    """An objective that prices each genotype with its stratum's own objective (``space.stratum``: e.g. each
    HyCTAS branch count at the filter multiplier and output stride it is deployed with)."""

    def __init__(self, stratum: Callable[[Any], str], objectives: Mapping[str, Callable[[Any], float]]) -> None:
        self.stratum, self.objectives = stratum, dict(objectives)

    def __call__(self, genotype: Any) -> float:
        return self.objectives[self.stratum(genotype)](genotype)

    def describe(self) -> dict[str, Any]:
        """Each stratum's table description (for a per-stratum latency table)."""
        return {name: fn.describe() for name, fn in self.objectives.items()}


@dataclass
class CostModels:
    """Cost objectives by metric name, the latency lookup table (rank 0's; None: measured, or another rank), its
    identity (the same on every rank) and the measured latency."""

    objectives: dict[str, Objective]
    table: Any | None
    measured: Callable[[Any], float]
    table_identity: dict[str, Any] | None = None

    def describe(self) -> dict[str, Any] | None:
        """The lookup table's file, size, content hash, machine load and reliability (None without a table)."""
        return self.table.describe() if self.table is not None else None


def build_costs(space: SearchSpace, num_classes: int, network: Mapping[str, Any], input_shape: Sequence[int],
                device: torch.device, latency: Mapping[str, Any], ranks: Ranks) -> CostModels:
    """Latency (``latency["model"]``, see :func:`latency_model`: ``lut``, the space's per-operator table
    cached in ``lut_dir``, or ``measured``), MACs and params (exact cost model) of ``build_network(genotype, num_classes, **network)``
    at ``input_shape``, and the space's activation-memory estimate where it has one. In a job of several ranks
    only rank 0 opens the table and prices every network with it (:class:`RankZeroObjective`)."""
    model = latency_model(space, str(latency["model"]))
    build = functools.partial(build_network, num_classes=num_classes, **network)
    measured = MeasuredLatency(build, input_shape, device, warmup=int(latency["warmup"]),
                               duration_s=float(latency["duration_s"]))
    table, identity = None, None
    if model == "lut":
        if not hasattr(space, "latency_table"):
            raise ValueError(f"stage.latency.model=lut needs a space with a latency lookup table (hyctas), not "
                             f"{space.name!r}; use stage.latency.model=measured")
        if ranks.is_main:
            table = space.latency_table(Path(latency["lut_dir"]), input_shape, network, num_classes, device,
                                        int(latency["calibration_archs"]), int(latency["warmup"]),
                                        float(latency["duration_s"]), bool(latency.get("rebuild", False)),
                                        latency.get("evict_mb"))
        identity = ranks.broadcast(table.identity() if table is not None else None)
    objectives: dict[str, Objective] = {
        "latency_ms": RankZeroObjective(table, ranks) if model == "lut" else measured,
        "macs_g": Macs(build, input_shape),
        "params_m": Params(build, input_shape),
    }
    if hasattr(space, "memory_mb"):
        objectives["memory_mb"] = ActivationMemory(space.memory_mb)
    return CostModels(objectives, table, measured, identity)


def build_stratified_costs(space: SearchSpace, num_classes: int, networks: Mapping[str, Mapping[str, Any]],
                           input_shape: Sequence[int], device: torch.device, latency: Mapping[str, Any],
                           ranks: Ranks) -> CostModels:
    """:func:`build_costs` per stratum of ``space`` (``networks``: the deployed network options of each stratum,
    one per name of ``space.strata()``), combined so that every cost prices a genotype with its stratum's
    models (:class:`PerStratum`); the latency tables, one per stratum's network, are described per stratum."""
    names = [name for name, _ in space.strata()]
    if sorted(networks) != sorted(names):
        raise ValueError(f"stage.cost_network_by_stratum needs one entry per stratum of the {space.name} space "
                         f"{names}, got {sorted(networks)}")
    models = {name: build_costs(space, num_classes, networks[name], input_shape, device, latency, ranks)
              for name in names}
    objectives = {metric: PerStratum(space.stratum, {name: m.objectives[metric] for name, m in models.items()})
                  for metric in models[names[0]].objectives}
    tables = {name: m.table for name, m in models.items()}
    table = PerStratum(space.stratum, tables) if all(t is not None for t in tables.values()) else None
    measured = PerStratum(space.stratum, {name: m.measured for name, m in models.items()})
    identity = {name: m.table_identity for name, m in models.items()} if models[names[0]].table_identity else None
    return CostModels(objectives, table, measured, identity)


def agreement(
    table: Callable[[Any], float],
    measured: Callable[[Any], float],
    genotypes: Sequence[Any],
) -> dict[str, Any]:
    """Pearson r and Kendall tau between the table's and the measured latency of ``genotypes``, and the share
    (%) of them whose table latency is within 10 % and 5 % of the measured one."""
    predicted = [table(g) for g in genotypes]
    actual = [measured(g) for g in genotypes]
    corr = rank_correlations(predicted, actual)
    error = np.abs(np.asarray(predicted) / np.asarray(actual) - 1.0)
    return {
        "pearson": corr["pearson"],
        "kendall": corr["kendall"],
        "within_10": float(100 * np.mean(error <= 0.10)) if len(error) else math.nan,
        "within_5": float(100 * np.mean(error <= 0.05)) if len(error) else math.nan,
        "n": len(genotypes),
        "lut_ms": predicted,
        "measured_ms": actual,
    }
