"""Standalone HyCTAS network built from a genotype (the network that is retrained and deployed)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from segnas.nn import AggregationHead, DropPath, FuseEdge, IdentitySkip, Stem, build_op
from segnas.spaces.hyctas.genotype import HyCTASGenotype
from segnas.spaces.hyctas.plan import Node, Plan, build_plan

STEM_TAP = (-1, 0)  # the ``(layer, node)`` of the stem's stride-8 output in :meth:`HyCTASNet.features`
CellFn = Callable[[int, int, Node, Tensor], Tensor]
EdgeFn = Callable[[int, int, int, Tensor, Sequence[int]], Tensor]


def plan_layers(plan: Plan, x8: Tensor, cell: CellFn, edge: EdgeFn) -> Iterator[list[Tensor]]:
    """Run the cells of ``plan`` on the stem feature, yielding every layer's node outputs (after fusion).

    ``cell(layer, index, node, x)`` computes one node; ``edge(layer, src, dst, x, size)`` carries
    node ``src``'s output to node ``dst``'s resolution. After a set fusion gate every node that
    receives features becomes ``ReLU(own + sum of received)``.
    """
    prev = [x8]
    for layer, nodes in enumerate(plan.layers):
        outs = [cell(layer, i, node, prev[node.parent or 0]) for i, node in enumerate(nodes)]
        edges = plan.fusion_edges(layer)
        if edges:
            fused = list(outs)
            for src, dst in edges:
                fused[dst] = fused[dst] + edge(layer, src, dst, outs[src], outs[dst].shape[-2:])
            receivers = {dst for _, dst in edges}
            outs = [F.relu(f) if i in receivers else f for i, f in enumerate(fused)]
        prev = outs
        yield outs


def forward_plan(plan: Plan, x8: Tensor, cell: CellFn, edge: EdgeFn) -> list[Tensor]:
    """The branch outputs, ordered by stride, of :func:`plan_layers` (same arguments)."""
    last = deque(plan_layers(plan, x8, cell, edge), maxlen=1)[0]
    return [last[i] for i in plan.outputs]


def last_node_at(plan: Plan, branch: int, stride: int) -> tuple[int, int] | None:
    """``(layer, node)`` of the last node of ``branch`` whose output is at ``stride`` (None if there is none).

    For a branch ending at stride 32 and ``stride=16`` this is the input of its 1/16 -> 1/32 cell: the
    reference code's ``outputs16`` of that branch (which its FFM16 fuses for the stride-16 aux head).
    """
    found = None
    for layer, nodes in enumerate(plan.layers):
        for i, node in enumerate(nodes):
            if branch in node.branches and node.out_stride == stride:
                found = (layer, i)
    return found


def build_cell(node: Node) -> nn.Module:
    """The module of a plan node: its operator, inside an :class:`IdentitySkip` when the node has one."""
    op = build_op(node.op, node.c_in, node.c_out, 1 + node.down)
    return IdentitySkip(op) if node.identity_skip else op


class HyCTASNet(nn.Module):
    """A HyCTAS sub-network: stem, the genotype's cells (shared trunk computed once), fusion edges and
    the aggregation head of its branch output strides.

    Args:
        genotype: the architecture.
        num_classes: output channels of the classifier.
        filter_multiplier: ``F`` (channels ``round(stride * F * width)``; stem output ``8F``).
        output_stride: 8, or 4 to fuse the stem's stride-4 feature in the head.
        drop_path_rate: drop probability of the residual branch of every cell that has one: the main
            branch of an operator with a bypass, or the operator of a cell with an identity skip
            (training only; change it later through :attr:`drop_path_rate`); heads are never dropped.
        in_channels: input image channels.
    """

    def __init__(
        self,
        genotype: HyCTASGenotype,
        num_classes: int = 19,
        filter_multiplier: int = 16,
        output_stride: int = 8,
        drop_path_rate: float = 0.0,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        problems = genotype.rule_violations()
        if problems:
            raise ValueError("invalid genotype: " + "; ".join(problems))
        self.genotype = genotype
        self.filter_multiplier = filter_multiplier
        self.plan = build_plan(genotype, filter_multiplier)
        self.stem = self.build_stem(in_channels)
        self.cells = nn.ModuleList(nn.ModuleList(self.build_cell(n) for n in nodes) for nodes in self.plan.layers)
        self.fuse = nn.ModuleList(
            nn.ModuleDict(
                {
                    f"{u}_{t}": FuseEdge(nodes[u].c_out, nodes[t].c_out)
                    for u, t in self.plan.fusion_edges(layer)
                }
            )
            for layer, nodes in enumerate(self.plan.layers)
        )
        self.head = self.build_head(num_classes, output_stride)
        self.drop_path_rate = drop_path_rate

    def build_stem(self, in_channels: int) -> Stem:
        """The stem (a subclass may build another)."""
        return Stem(self.filter_multiplier, in_channels)

    def build_cell(self, node: Node) -> nn.Module:
        """The module of a plan node (:func:`build_cell`)."""
        return build_cell(node)

    def build_head(self, num_classes: int, output_stride: int) -> nn.Module:
        """The paper's aggregation head ``F_theta`` of the branch outputs (:class:`AggregationHead`)."""
        width = self.stem.out_channels
        return AggregationHead(self.plan.out_channels, width, num_classes, output_stride, low_channels=width)

    @property
    def drop_path_rate(self) -> float:
        return self._drop_path_rate

    @drop_path_rate.setter
    def drop_path_rate(self, p: float) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {p}")
        self._drop_path_rate = p
        for m in self.cells.modules():
            if isinstance(m, DropPath):
                m.p = p

    def features(
        self, x: Tensor, taps: Sequence[tuple[int, int]] = ()
    ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """The stem's stride-4 feature, the branch outputs (ordered by stride) and the outputs (after
        fusion) of the nodes ``taps`` (``(layer, node)`` pairs, e.g. from :func:`last_node_at`; ``(-1, 0)``
        is the stem's stride-8 output)."""
        x4, x8 = self.stem(x)
        outs = [x8]
        tapped: dict[tuple[int, int], Tensor] = {STEM_TAP: x8}
        layers = plan_layers(
            self.plan,
            x8,
            lambda layer, i, node, h: self.cells[layer][i](h),
            lambda layer, u, t, h, size: self.fuse[layer][f"{u}_{t}"](h, size),
        )
        for layer, outs in enumerate(layers):
            tapped.update({(layer, i): outs[i] for tap_layer, i in taps if tap_layer == layer})
        return x4, [outs[i] for i in self.plan.outputs], [tapped[t] for t in taps]

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, num_classes, H, W)`` at the input resolution."""
        x4, feats, _ = self.features(x)
        return self.head(feats, x4, x.shape[-2:])

