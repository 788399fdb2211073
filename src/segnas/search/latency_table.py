"""Latency lookup table: per-operator, per-resolution, per-width latencies measured once and summed.

A network's latency is modelled as the sum of its pieces, each timed alone at batch 1 on the device:
the stem, every cell (operator, input stride, downsampling, input and output channels, with its identity
skip where it has one), every fusion edge (source and target stride, channels) and the output head (branch
strides and channels); no piece depends on a genotype's depth, so one table prices every depth. Entries
are measured the first time a genotype needs them and cached in a JSON file keyed by everything that
changes a timing (device, input size, filter multiplier, classes, output stride, threads), so later
searches on the same device reuse them. :func:`agreement` reports how well the sum tracks the latency
measured on whole networks.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from segnas.metrics import measure_latency, rank_correlations
from segnas.models.hyctas_net import build_cell
from segnas.nn import AggregationHead, FuseEdge, Stem
from segnas.spaces.hyctas import HyCTASGenotype, Node, build_plan, num_filters


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


class LatencyTable:
    """Lookup-table latency model (ms) of HyCTAS networks; callable as a search objective.

    Args:
        cache_dir: folder of the JSON cache (one file per device/input/network setting).
        input_shape: ``(1, 3, H, W)`` network input the pieces are timed for.
        filter_multiplier, num_classes, output_stride: of the standalone networks.
        device: where the pieces run.
        warmup, duration_s, min_iters: timing protocol of one entry.
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
    ) -> None:
        self.input_shape = tuple(int(s) for s in input_shape)
        self.filter_multiplier, self.num_classes, self.output_stride = filter_multiplier, num_classes, output_stride
        self.device = torch.device(device)
        self.warmup, self.duration_s, self.min_iters = warmup, duration_s, min_iters
        self.meta = {
            "device": _device_name(self.device),
            "torch": torch.__version__,
            "input_shape": list(self.input_shape),
            "filter_multiplier": filter_multiplier,
            "num_classes": num_classes,
            "output_stride": output_stride,
        }
        digest = hashlib.sha1(json.dumps(self.meta, sort_keys=True).encode()).hexdigest()[:10]
        self.path = Path(cache_dir) / f"latency_lut_{digest}.json"
        self.entries: dict[str, float] = {}
        if self.path.is_file():
            self.entries = dict(json.loads(self.path.read_text())["entries"])
        self.n_measured = 0

    # ----------------------------------------------------------------------------------- pieces
    def _size(self, stride: int) -> tuple[int, int]:
        h, w = self.input_shape[-2:]
        return math.ceil(h / stride), math.ceil(w / stride)

    def _time(self, module: nn.Module, input_shape: Sequence[int]) -> float:
        result = measure_latency(
            module.eval(), input_shape, self.device, warmup=self.warmup, duration_s=self.duration_s,
            min_iters=self.min_iters,
        )
        self.n_measured += 1
        return result.median_ms

    def _entry(self, key: str, make: Callable[[], tuple[nn.Module, Sequence[int]]]) -> float:
        if key not in self.entries:
            self.entries[key] = self._time(*make())
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

    # ---------------------------------------------------------------------------------- public
    def __call__(self, genotype: HyCTASGenotype) -> float:
        """Predicted latency (ms): the sum of the genotype's entries (new ones measured and cached)."""
        n_before = len(self.entries)
        plan = build_plan(genotype, self.filter_multiplier)
        total = self._stem()
        for layer, nodes in enumerate(plan.layers):
            total += sum(self._cell(n) for n in nodes)
            for u, t in plan.fusion_edges(layer):
                total += self._edge(nodes[u].out_stride, nodes[t].out_stride, nodes[u].c_out, nodes[t].c_out)
        total += self._head(plan.head, plan.out_channels)
        if len(self.entries) > n_before:
            self.save()
        return total

    def save(self) -> None:
        """Write the table (atomically) to :attr:`path`."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"meta": self.meta, "entries": self.entries}, indent=1, sort_keys=True))
        tmp.replace(self.path)


def agreement(
    table: Callable[[HyCTASGenotype], float],
    measured: Callable[[HyCTASGenotype], float],
    genotypes: Sequence[HyCTASGenotype],
) -> dict[str, Any]:
    """Pearson r and Kendall tau between the table's and the measured latency of ``genotypes``."""
    predicted = [table(g) for g in genotypes]
    actual = [measured(g) for g in genotypes]
    corr = rank_correlations(predicted, actual)
    return {
        "pearson": corr["pearson"],
        "kendall": corr["kendall"],
        "n": len(genotypes),
        "lut_ms": predicted,
        "measured_ms": actual,
    }
