"""Weight-sharing HyCTAS supernet: one lattice of slimmable cells that runs any genotype of the space.

Cell weights are indexed by (layer, input stride, downsampling, operator) and built at the largest
width (no skip at downsampling positions and no downsampling at the last layer, which the constraints
forbid); a genotype's cell uses the leading slices of the weights at its position, so branches that pass
the same position with the same operator share weights (and identical branch prefixes are computed once).
A genotype of depth ``d`` uses the first ``d`` layers, then the head of its branch output strides. Fusion
edges are indexed by (layer, source stride, target stride) and the six output heads by their branch
output strides, with slimmable 1x1 convs adapting the branch widths.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

from torch import Tensor, nn

from segnas.nn import OPS, AggregationHead, FuseEdge, IdentitySkip, Stem, build_op, load_leading_slices
from segnas.spaces.hyctas.genotype import HEADS, HyCTASGenotype
from segnas.spaces.hyctas.network import HyCTASNet, forward_plan
from segnas.spaces.hyctas.plan import Node, build_plan, num_filters
from segnas.spaces.hyctas.space import DEFAULT_LAYERS, DEFAULT_OPS, HyCTASSpace


def _head_key(head: Sequence[int]) -> str:
    return "_".join(str(s) for s in head)


class HyCTASSupernet(nn.Module):
    """Supernet over ``layers`` cells per branch.

    Args:
        layers: depth of the lattice (a genotype uses its first ``depth`` layers).
        ops: operator names available to every cell.
        filter_multiplier: ``F`` of :func:`segnas.spaces.hyctas.num_filters`.
        max_width: largest width multiplier (weights are built at this width).
        num_classes: classifier outputs.
        output_stride: 8, or 4 to fuse the stem's stride-4 feature in the heads.
        in_channels: input image channels.
    """

    def __init__(
        self,
        layers: int = DEFAULT_LAYERS,
        ops: Sequence[str] = DEFAULT_OPS,
        filter_multiplier: int = 8,
        max_width: float = 1.0,
        num_classes: int = 19,
        output_stride: int = 8,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.layers, self.ops = layers, tuple(ops)
        self.filter_multiplier, self.num_classes, self.output_stride = (
            filter_multiplier,
            num_classes,
            output_stride,
        )
        self.in_channels = in_channels
        c_max = {s: num_filters(s, max_width, filter_multiplier) for s in (8, 16, 32)}
        self.stem = Stem(filter_multiplier, in_channels)
        self.cells = nn.ModuleDict()
        self.fuse = nn.ModuleDict()
        for layer in range(layers):
            for k, stride in enumerate((8, 16, 32)[: min(layer, 2) + 1]):
                for down in (0, 1) if k < 2 and layer < layers - 1 else (0,):
                    c_in, c_out = c_max[stride], c_max[stride * (1 + down)]
                    self.cells[f"{layer}_{stride}_{down}"] = nn.ModuleDict(
                        {
                            op: self._op(op, c_in, c_out, 1 + down)
                            for op in self.ops
                            if not (down and op == "skip")
                        }
                    )
            reachable = (8, 16, 32)[: min(layer + 1, 2) + 1]
            if layer < layers - 1:
                for src in reachable:
                    for dst in reachable:
                        if src != dst:
                            self.fuse[f"{layer}_{src}_{dst}"] = FuseEdge(c_max[src], c_max[dst])
        width = self.stem.out_channels
        self.heads = nn.ModuleDict(
            {
                _head_key(h): AggregationHead([c_max[s] for s in h], width, num_classes, output_stride, width)
                for h in HEADS
            }
        )

    @staticmethod
    def _op(name: str, c_in: int, c_out: int, stride: int) -> nn.Module:
        """An operator that can change widths even when built with ``c_in == c_out`` (``project=True``
        where the operator would otherwise drop its projection)."""
        projects = "project" in inspect.signature(OPS[name]).parameters
        return build_op(name, c_in, c_out, stride, **({"project": True} if projects else {}))

    @classmethod
    def from_space(cls, space: HyCTASSpace, **kwargs: int) -> HyCTASSupernet:
        """Supernet matching a space's depth, operators, filter multiplier and largest width."""
        return cls(
            layers=space.layers,
            ops=space.ops,
            filter_multiplier=space.filter_multiplier,
            max_width=max(space.width_mults),
            **kwargs,
        )

    def _check(self, genotype: HyCTASGenotype) -> None:
        problems = genotype.rule_violations()
        if genotype.depth > self.layers:
            problems.append(f"depth {genotype.depth} exceeds the supernet's {self.layers} layers")
        foreign = {o for b in genotype.branches for o in b.ops} - set(self.ops)
        if foreign:
            problems.append(f"operators {sorted(foreign)} are not in the supernet")
        if problems:
            raise ValueError("genotype does not fit the supernet: " + "; ".join(problems))

    def forward(self, x: Tensor, genotype: HyCTASGenotype) -> Tensor:
        """Logits of sub-network ``genotype`` at the input resolution."""
        self._check(genotype)
        plan = build_plan(genotype, self.filter_multiplier)
        x4, x8 = self.stem(x)
        feats = forward_plan(
            plan,
            x8,
            lambda layer, i, node, h: self._cell(layer, node, h),
            lambda layer, u, t, h, size: self.fuse[
                f"{layer}_{plan.layers[layer][u].out_stride}_{plan.layers[layer][t].out_stride}"
            ](h, size, plan.layers[layer][t].c_out),
        )
        return self.heads[_head_key(plan.head)](feats, x4, x.shape[-2:])

    def _cell(self, layer: int, node: Node, h: Tensor) -> Tensor:
        out = self.cells[f"{layer}_{node.in_stride}_{node.down}"][node.op](h, node.c_out)
        return h + out if node.identity_skip else out

    def extract(self, genotype: HyCTASGenotype, drop_path_rate: float = 0.0) -> HyCTASNet:
        """Standalone network of ``genotype`` initialised from the leading slices of the shared weights."""
        self._check(genotype)
        net = HyCTASNet(
            genotype,
            self.num_classes,
            self.filter_multiplier,
            self.output_stride,
            drop_path_rate,
            self.in_channels,
        ).to(next(self.parameters()).device)
        load_leading_slices(net.stem, self.stem)
        plan = net.plan
        for layer, nodes in enumerate(plan.layers):
            for cell, node in zip(net.cells[layer], nodes, strict=True):
                load_leading_slices(
                    cell.op if isinstance(cell, IdentitySkip) else cell,
                    self.cells[f"{layer}_{node.in_stride}_{node.down}"][node.op],
                )
            for u, t in plan.fusion_edges(layer):
                src = self.fuse[f"{layer}_{nodes[u].out_stride}_{nodes[t].out_stride}"]
                load_leading_slices(net.fuse[layer][f"{u}_{t}"], src)
        load_leading_slices(net.head, self.heads[_head_key(plan.head)])
        return net
