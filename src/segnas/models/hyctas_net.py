"""Standalone HyCTAS network built from a genotype (the network that is retrained and deployed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from segnas.nn import AggregationHead, DropPath, FuseEdge, IdentitySkip, Stem, build_op
from segnas.spaces import load_genotype
from segnas.spaces.hyctas import HyCTASGenotype, Node, Plan, build_plan

CellFn = Callable[[int, int, Node, Tensor], Tensor]
EdgeFn = Callable[[int, int, int, Tensor, Sequence[int]], Tensor]


def forward_plan(plan: Plan, x8: Tensor, cell: CellFn, edge: EdgeFn) -> list[Tensor]:
    """Run the cells of ``plan`` on the stem feature; return the branch outputs ordered by stride.

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
    return [prev[i] for i in plan.outputs]


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
            (training only; change it later through :attr:`drop_path_rate`).
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
        self.stem = Stem(filter_multiplier, in_channels)
        self.cells = nn.ModuleList(nn.ModuleList(build_cell(n) for n in nodes) for nodes in self.plan.layers)
        self.fuse = nn.ModuleList(
            nn.ModuleDict(
                {
                    f"{u}_{t}": FuseEdge(nodes[u].c_out, nodes[t].c_out)
                    for u, t in self.plan.fusion_edges(layer)
                }
            )
            for layer, nodes in enumerate(self.plan.layers)
        )
        width = self.stem.out_channels
        self.head = AggregationHead(
            self.plan.out_channels, width, num_classes, output_stride, low_channels=width
        )
        self.drop_path_rate = drop_path_rate

    @property
    def drop_path_rate(self) -> float:
        return self._drop_path_rate

    @drop_path_rate.setter
    def drop_path_rate(self, p: float) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {p}")
        self._drop_path_rate = p
        for m in self.modules():
            if isinstance(m, DropPath):
                m.p = p

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, num_classes, H, W)`` at the input resolution."""
        x4, x8 = self.stem(x)
        feats = forward_plan(
            self.plan,
            x8,
            lambda layer, i, node, h: self.cells[layer][i](h),
            lambda layer, u, t, h, size: self.fuse[layer][f"{u}_{t}"](h, size),
        )
        return self.head(feats, x4, x.shape[-2:])


def build_hyctas_net(
    genotype: str | HyCTASGenotype,
    num_classes: int = 19,
    filter_multiplier: int = 16,
    output_stride: int = 8,
    drop_path_rate: float = 0.0,
) -> HyCTASNet:
    """:class:`HyCTASNet` from a genotype or a genotype YAML (path or ``pkg://NAME``), for ``_target_`` configs."""
    if not isinstance(genotype, HyCTASGenotype):
        genotype = load_genotype(genotype)
    return HyCTASNet(genotype, num_classes, filter_multiplier, output_stride, drop_path_rate)
