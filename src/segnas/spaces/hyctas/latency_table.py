"""Latency lookup table: per-operator, per-resolution, per-width latencies measured once and summed.

A network's latency is modelled from the sum of its pieces, each timed alone at batch 1 on the device:
the stem, every cell (operator, input stride, downsampling, input and output channels, with its identity
skip where it has one), every fusion edge (source and target stride, channels) and the output head (branch
strides and channels); no piece depends on a genotype's depth, so one table prices every depth. On the CPU
every timed pass of a piece follows a cache eviction, as inside a network, where the other pieces evict its
weights. Given calibration networks, the table also fits ``latency = offset + scale x sum`` on their measured
latency (what the sum misses: per-network overhead, fusion additions, cache effects) and returns the corrected
value. Entries and the calibration are measured the first time they are needed and cached in a JSON file
keyed by everything that changes a timing (device, input size, filter multiplier, classes, output stride,
threads, eviction, calibration networks), so later searches on the same device reuse them; the file's random
id (:meth:`LatencyTable.identity`) tells a rebuilt or replaced table from the one an archive was scored with.
:func:`segnas.search.costs.agreement` reports how well the model tracks the latency measured on whole networks.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from segnas.metrics import measure_latency
from segnas.nn import AggregationHead, FuseEdge, Stem
from segnas.spaces.hyctas.genotype import HyCTASGenotype
from segnas.spaces.hyctas.network import HyCTASNet, build_cell
from segnas.spaces.hyctas.plan import Node, build_plan, num_filters
from segnas.spaces.hyctas.space import HyCTASSpace
from segnas.spaces.registry import genotype_key
from segnas.utils.hashing import data_sha1, text_sha1
from segnas.utils.jsonl import RecordLog

log = logging.getLogger(__name__)


class _Bound(nn.Module):
    """``call(module, x, *extra)`` with fixed extra tensors, so a piece with several inputs can be timed."""

    def __init__(self, module: nn.Module, call: Callable[..., Tensor], *extra: Tensor) -> None:
        super().__init__()
        self.module, self.call, self.n_extra = module, call, len(extra)
        for i, t in enumerate(extra):
            self.register_buffer(f"extra{i}", t)

    def forward(self, x: Tensor) -> Tensor:
        return self.call(self.module, x, *(getattr(self, f"extra{i}") for i in range(self.n_extra)))


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu{torch.get_num_threads()}t"


MAX_REPEAT_SPREAD = 0.1  # median (max - min) / median of a calibration network's rounds above this: busy machine


def machine_load() -> dict[str, float]:
    """The 1-minute load average and the CPU count when timings are taken."""
    return {"load_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count() or 1}


def calibration_genotypes(space: HyCTASSpace, n: int, seed: int = 0) -> list[HyCTASGenotype]:
    """``n`` genotypes of ``space`` drawn with their own seed (so every search of the space shares them),
    cycling through the branch counts so they span the latency range."""
    rng = np.random.default_rng([seed, 16])
    strata = [space.with_branches(b) for b in range(1, 4)]
    return [strata[i % len(strata)].sample(rng) for i in range(n)]


def fit_correction(table_ms: Sequence[float], measured_ms: Sequence[float]) -> tuple[float, float]:
    """``(offset, scale)`` minimising the squared relative error of ``offset + scale x table`` against the
    measured latencies; a pure scale (median ratio) with fewer than 3 networks or a non-positive fit."""
    t, m = np.asarray(table_ms, float), np.asarray(measured_ms, float)
    if len(t) >= 3 and np.ptp(t) > 0:
        (offset, scale), *_ = np.linalg.lstsq(np.stack([1 / m, t / m], 1), np.ones_like(m), rcond=None)
        if scale > 0 and offset + scale * t.min() > 0:
            return float(offset), float(scale)
    return 0.0, float(np.median(m / t))


class LatencyTable:
    """Lookup-table latency model (ms) of HyCTAS networks; callable as a search objective.

    Args:
        cache_dir: folder of the JSON cache (one file per device/input/network setting).
        input_shape: ``(1, 3, H, W)`` network input the pieces are timed for.
        filter_multiplier, num_classes, output_stride: of the standalone networks.
        device: where the pieces run.
        warmup, duration_s, min_iters: timing protocol of one entry.
        evict_mb: size of the buffer rewritten before every timed pass of an entry to evict the caches
            (default: 32 on the CPU, 0 on CUDA).
        calibration: networks whose measured latency fits the correction (none: the plain sum).
        calibration_warmup, calibration_s, calibration_rounds: their timing (``measure_latency`` of the whole
            network, as :class:`~segnas.search.objectives.MeasuredLatency`), median of interleaved rounds;
            a fit whose rounds disagree (a busy machine) is used but never cached.
        rebuild: move a cached table aside and measure every entry again.
    """

    def __init__(
        self,
        cache_dir: str | Path,
        input_shape: Sequence[int],
        filter_multiplier: int,
        num_classes: int,
        output_stride: int = 8,
        device: str | torch.device = "cpu",
        warmup: int = 2,
        duration_s: float = 0.02,
        min_iters: int = 5,
        evict_mb: float | None = None,
        calibration: Sequence[HyCTASGenotype] = (),
        calibration_warmup: int = 3,
        calibration_s: float = 0.2,
        calibration_rounds: int = 3,
        rebuild: bool = False,
    ) -> None:
        self.input_shape = tuple(int(s) for s in input_shape)
        self.filter_multiplier, self.num_classes, self.output_stride = filter_multiplier, num_classes, output_stride
        self.device = torch.device(device)
        self.warmup, self.duration_s, self.min_iters = warmup, duration_s, min_iters
        self.evict_mb = (0.0 if self.device.type == "cuda" else 32.0) if evict_mb is None else float(evict_mb)
        self.calibration = list(calibration)
        self.calibration_timing = (calibration_warmup, calibration_s, calibration_rounds)
        self.meta = {
            "device": _device_name(self.device),
            "torch": torch.__version__,
            "input_shape": list(self.input_shape),
            "filter_multiplier": filter_multiplier,
            "num_classes": num_classes,
            "output_stride": output_stride,
            "evict_mb": self.evict_mb,
        }
        if self.calibration:
            keys = json.dumps([genotype_key(g) for g in self.calibration])
            self.meta["calibration"] = {"networks": len(self.calibration), "timing": list(self.calibration_timing),
                                        "sha1": text_sha1(keys)}
        digest = data_sha1(self.meta, 10)
        path = Path(cache_dir) / f"latency_lut_{digest}.jsonl"
        if rebuild and path.is_file():
            path.replace(path.with_name(path.name + ".stale"))
            log.info("latency table %s: rebuilt (the old one is kept as %s.stale)", path, path.name)
        self.records = RecordLog(path, context=self.meta, rebuild=True)
        self.path = self.records.path
        self.entries: dict[str, float] = {r["entry"]: float(r["ms"]) for r in self.records if "entry" in r}
        # calibration: table and measured ms, offset, scale
        self.fit: dict[str, Any] | None = next((r["fit"] for r in self.records if "fit" in r), None)
        self.built_load: dict[str, float] | None = next((r["load"] for r in self.records if "load" in r), None)
        self.table_id: str = next((r["table_id"] for r in self.records if "table_id" in r), "")
        if not self.table_id:  # a new table (or one made before tables had an id)
            self.table_id = uuid.uuid4().hex
            self.records.append({"table_id": self.table_id})
        self.n_measured = 0

    # ----------------------------------------------------------------------------------- pieces
    def _size(self, stride: int) -> tuple[int, int]:
        h, w = self.input_shape[-2:]
        return math.ceil(h / stride), math.ceil(w / stride)

    @functools.cached_property
    def _evict(self) -> Tensor | None:
        """The buffer rewritten before every timed pass of an entry (allocated when an entry is timed)."""
        return torch.zeros(int(self.evict_mb * 2**18)) if self.evict_mb > 0 else None

    def _time(self, module: nn.Module, input_shape: Sequence[int]) -> float:
        evict = self._evict
        result = measure_latency(
            module.eval(), input_shape, self.device, warmup=self.warmup, duration_s=self.duration_s,
            min_iters=self.min_iters, before_each=None if evict is None else lambda: evict.add_(1.0),
        )
        self.n_measured += 1
        return result.median_ms

    def _entry(self, key: str, make: Callable[[], tuple[nn.Module, Sequence[int]]]) -> float:
        if self.built_load is None:
            self.built_load = machine_load()
            self.records.append({"load": self.built_load})
        if key not in self.entries:
            self.entries[key] = self._time(*make())
            self.records.append({"entry": key, "ms": self.entries[key]})
        return self.entries[key]

    def _stem(self) -> float:
        return self._entry("stem", lambda: (Stem(self.filter_multiplier), self.input_shape))

    def _cell(self, node: Node) -> float:
        return self._entry(
            f"cell/{node.op}/{node.in_stride}/{node.down}/{node.c_in}/{node.c_out}",
            lambda: (build_cell(node), (1, node.c_in, *self._size(node.in_stride))),
        )

    def _edge(self, src: int, dst: int, c_in: int, c_out: int) -> float:
        size = self._size(dst)

        def make() -> tuple[nn.Module, Sequence[int]]:
            return _Bound(FuseEdge(c_in, c_out), lambda m, x: m(x, size)), (1, c_in, *self._size(src))

        return self._entry(f"edge/{src}/{dst}/{c_in}/{c_out}", make)

    def _head(self, strides: Sequence[int], channels: Sequence[int]) -> float:
        width = num_filters(8, 1.0, self.filter_multiplier)
        out_size = self.input_shape[-2:]

        def make() -> tuple[nn.Module, Sequence[int]]:
            head = AggregationHead(list(channels), width, self.num_classes, self.output_stride, width)
            feats = [torch.randn(1, c, *self._size(s)) for s, c in zip(strides, channels, strict=True)]
            module = _Bound(head, lambda m, x4, *fs: m(list(fs), x4, out_size), *feats)
            return module, (1, width, *self._size(4))

        key = "head/" + "_".join(map(str, strides)) + "/" + "_".join(map(str, channels))
        return self._entry(key, make)

    def _calibrate(self) -> dict[str, Any]:
        """Measure the calibration networks (interleaved rounds, median) and fit the correction."""
        warmup, duration_s, rounds = self.calibration_timing
        nets = [HyCTASNet(g, self.num_classes, self.filter_multiplier, self.output_stride) for g in self.calibration]
        times: list[list[float]] = [[] for _ in nets]
        for _ in range(rounds):
            for net, samples in zip(nets, times, strict=True):
                samples.append(measure_latency(net, self.input_shape, self.device, warmup=warmup,
                                               duration_s=duration_s, min_iters=self.min_iters).median_ms)
        table_ms = [self.sum_ms(g) for g in self.calibration]
        measured_ms = [float(np.median(t)) for t in times]
        offset, scale = fit_correction(table_ms, measured_ms)
        spread = float(np.median([(max(t) - min(t)) / float(np.median(t)) for t in times]))
        return {"table_ms": table_ms, "measured_ms": measured_ms, "offset_ms": offset, "scale": scale,
                "repeat_spread": spread, "load": machine_load()}

    # ---------------------------------------------------------------------------------- public
    def identity(self) -> dict[str, str]:
        """What an archive of this table's latencies depends on: its file (device, input, network settings), its
        id, drawn when the file was started (entries are measured once and never change, so a table with the id
        has the same entries; a rebuilt or replaced table of the same name has another id) and, with calibration
        networks, the fit's digest (fitted here if it is not yet: a fit measured anew, after one too noisy to
        cache, gives another identity, so no archive mixes latencies of two fits)."""
        identity = {"file": self.path.name, "id": self.table_id}
        if self.calibration:
            fit = self._fitted()
            identity["fit"] = data_sha1([fit["offset_ms"], fit["scale"]], 10)
        return identity

    def __call__(self, genotype: HyCTASGenotype) -> float:
        """Predicted latency (ms): ``offset + scale x`` :meth:`sum_ms` with calibration networks (fitted and
        cached on first use), else the sum."""
        total = self.sum_ms(genotype)
        if not self.calibration:
            return total
        fit = self._fitted()
        return fit["offset_ms"] + fit["scale"] * total

    def _fitted(self) -> dict[str, Any]:
        """The calibration fit, measured (and cached when reliable) the first time it is needed."""
        if self.fit is None:
            self.fit = self._calibrate()
            if self.fit["repeat_spread"] <= MAX_REPEAT_SPREAD:
                self.records.append({"fit": self.fit})
            else:  # never cached as good: the next run measures again
                log.warning("latency table %s: repeated timings of the calibration networks disagree by %.0f %% "
                            "(load %.1f on %d CPUs): the machine is busy and latencies are unreliable; the fit is "
                            "not cached (stage.latency.rebuild=true re-measures the entries too)", self.path,
                            100 * self.fit["repeat_spread"], self.fit["load"]["load_1min"], self.fit["load"]["cpus"])
        return self.fit

    def describe(self) -> dict[str, Any]:
        """The table's file, size, content hash, machine load when built and, once calibrated, whether its
        repeated calibration timings agree (``reliable``: median spread <= :data:`MAX_REPEAT_SPREAD`)."""
        info: dict[str, Any] = {"path": str(self.path), "id": self.table_id, "entries": len(self.entries),
                                "sha1": data_sha1(self.entries), "load_when_built": self.built_load}
        if self.fit is not None:
            info.update(repeat_spread=self.fit.get("repeat_spread"), reliable=self.fit.get("repeat_spread", 0.0)
                        <= MAX_REPEAT_SPREAD, load_when_calibrated=self.fit.get("load"))
        return info

    def sum_ms(self, genotype: HyCTASGenotype) -> float:
        """The sum of the genotype's entries (ms; new ones measured and cached)."""
        plan = build_plan(genotype, self.filter_multiplier)
        total = self._stem()
        for layer, nodes in enumerate(plan.layers):
            total += sum(self._cell(n) for n in nodes)
            for u, t in plan.fusion_edges(layer):
                total += self._edge(nodes[u].out_stride, nodes[t].out_stride, nodes[u].c_out, nodes[t].c_out)
        total += self._head(plan.head, plan.out_channels)
        return total
