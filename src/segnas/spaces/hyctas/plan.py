"""Execution plan of a HyCTAS genotype, shared by the supernet and the standalone network.

Branches that agree on every cell so far (operator, width, downsampling) compute the same features,
so they share one *node* per layer (the reference code's "trunk" sharing); once they differ they
never merge again. Channels follow ``num_filters(stride, w) = round(stride * F * w)`` with the stem
output at full width. A node whose operator has no bypass of its own and that keeps its input's shape
adds an identity skip (``x + op(x)``): the residual branch that drop path drops.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from segnas.spaces.hyctas.genotype import IDENTITY_SKIP_OPS, HyCTASGenotype


def num_filters(stride: int, width: float, filter_multiplier: int) -> int:
    """Channels of a feature at ``stride`` with width multiplier ``width``."""
    return round(stride * filter_multiplier * width)


@dataclass(frozen=True)
class Node:
    """One computed cell: ``branches`` share it; ``parent`` indexes the previous layer's nodes."""

    layer: int
    branches: tuple[int, ...]
    op: str
    down: int
    in_stride: int
    c_in: int
    c_out: int
    parent: int | None

    @property
    def out_stride(self) -> int:
        return self.in_stride * (2 if self.down else 1)

    @property
    def identity_skip(self) -> bool:
        """Whether the cell computes ``x + op(x)`` (see :data:`~segnas.spaces.hyctas.IDENTITY_SKIP_OPS`)."""
        return not self.down and self.c_in == self.c_out and self.op in IDENTITY_SKIP_OPS


@dataclass(frozen=True)
class Plan:
    """Nodes per layer, fusion gates, and per branch the last-layer node index and channels."""

    layers: tuple[tuple[Node, ...], ...]
    fusion: tuple[int, ...]
    outputs: tuple[int, ...]
    out_channels: tuple[int, ...]
    head: tuple[int, ...]

    def fusion_edges(self, layer: int) -> list[tuple[int, int]]:
        """``(src, dst)`` node pairs fused after ``layer`` (nodes at different resolutions)."""
        if layer >= len(self.fusion) or not self.fusion[layer]:
            return []
        nodes = self.layers[layer]
        return [
            (u, t)
            for t, dst in enumerate(nodes)
            for u, src in enumerate(nodes)
            if src.out_stride != dst.out_stride
        ]


@lru_cache(maxsize=4096)
def build_plan(genotype: HyCTASGenotype, filter_multiplier: int) -> Plan:
    """Group branches into shared nodes layer by layer and fix every node's channels."""
    stem_c = num_filters(8, 1.0, filter_multiplier)
    layers: list[tuple[Node, ...]] = []
    groups: list[tuple[tuple[int, ...], int | None, int]] = [
        (tuple(range(genotype.num_branches)), None, stem_c)
    ]
    strides = [b.cell_strides() for b in genotype.branches]
    for layer in range(genotype.depth):
        nodes: list[Node] = []
        for members, parent, c_in in groups:
            keys: dict[tuple[str, float, int], list[int]] = {}
            for b in members:
                br = genotype.branches[b]
                keys.setdefault((br.ops[layer], br.widths[layer], br.downs[layer]), []).append(b)
            for (op, width, down), bs in keys.items():
                in_stride = strides[bs[0]][layer]
                c_out = num_filters(in_stride * (2 if down else 1), width, filter_multiplier)
                nodes.append(Node(layer, tuple(bs), op, down, in_stride, c_in, c_out, parent))
        layers.append(tuple(nodes))
        groups = [(n.branches, i, n.c_out) for i, n in enumerate(nodes)]
    last = layers[-1]
    outputs = tuple(
        next(i for i, n in enumerate(last) if b in n.branches) for b in range(genotype.num_branches)
    )
    return Plan(
        layers=tuple(layers),
        fusion=genotype.fusion,
        outputs=outputs,
        out_channels=tuple(last[i].c_out for i in outputs),
        head=genotype.head,
    )
