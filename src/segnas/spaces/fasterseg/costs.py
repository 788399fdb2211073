"""The FasterSeg network's MACs and params from its genotype, with the operator formulas of
:mod:`segnas.metrics.cost_model` (equal to fvcore's count of the built network:
``tests/test_cost_model.py``)."""

from __future__ import annotations

import functools

from segnas.metrics.cost_model import Op, Shape, Tally, Unsupported
from segnas.spaces.fasterseg.network import INITS, cell_specs, num_filters
from segnas.spaces.fasterseg.space import FasterSegGenotype


def _conv_cell(t: Tally, x: Shape, c_out: int, stride: int, num_convs: int) -> Shape:
    y = t.conv_bn(x, c_out, 3, stride)
    for _ in range(num_convs - 1):
        y = t.conv_bn(y, c_out, 3)
    return y


def _zoomed_conv(t: Tally, x: Shape, c_out: int, stride: int, num_convs: int) -> Shape:
    y = t.interpolate(x, (max(x[2] // 2, 1), max(x[3] // 2, 1)))
    for _ in range(num_convs):
        y = t.conv_bn(y, c_out, 3)
    return t.interpolate(y, x[2:]) if stride == 1 else y


def _factorized_reduce(t: Tally, x: Shape, c_out: int, stride: int) -> Shape:
    if stride == 1:
        return x if x[1] == c_out else t.conv_bn(x, c_out)
    y = t.conv(x, c_out // 2, 1, 2)
    t.conv(x, c_out - c_out // 2, 1, 2)
    return t.bn((y[0], c_out, *y[2:]))


FASTERSEG_OPS: dict[str, Op] = {
    "skip": _factorized_reduce,
    "conv": functools.partial(_conv_cell, num_convs=1),
    "conv_2x": functools.partial(_conv_cell, num_convs=2),
    "conv_downup": functools.partial(_zoomed_conv, num_convs=1),
    "conv_2x_downup": functools.partial(_zoomed_conv, num_convs=2),
}


def _fasterseg_head(t: Tally, x: Shape, num_classes: int) -> Shape:
    y = t.conv_bn(x, x[1] if x[1] <= 256 else x[1] // 2, 3)
    return t.conv(y, num_classes, bias=True)


def network_costs(t: Tally, genotype: FasterSegGenotype, num_classes: int, x: Shape, aux_heads: bool = False,
                  init: str = "kaiming") -> None:
    """Add the costs of :class:`~segnas.spaces.fasterseg.network.FasterSegNet` (``forward``: the main head only)
    on an input of shape ``x`` to ``t``; the options are those of the registered builder."""
    if aux_heads:
        raise Unsupported("aux_heads=True (the auxiliary heads' parameters)")
    if init not in INITS:
        raise Unsupported(f"init={init!r}")
    fch, hw = genotype.fch, genotype.stem_head_width
    c8, c16 = num_filters(fch, 8, hw), num_filters(fch, 16, hw)
    y = t.conv_bn(x, 2 * num_filters(fch, 2, hw), 3, 2)
    x8 = _conv_cell(t, _conv_cell(t, y, 2 * num_filters(fch, 4, hw), 2, 2), c8, 2, 2)
    specs = [cell_specs(b, fch, c8, hw) for b in genotype.branches]
    shared = 0
    while (shared < min(len(s) for s in specs) - 1 and specs[0][shared] == specs[1][shared]
           and genotype.branches[0].path[shared] == genotype.branches[1].path[shared]):
        shared += 1
    eighth, trunk = [], []
    for b, branch in enumerate(genotype.branches):
        h, downs_in = x8, []
        for i, (d, (op, _, c_out, stride)) in enumerate(zip(branch.downs(), specs[b], strict=True)):
            if d:
                downs_in.append(h)
            h = trunk[i] if b > 0 and i < shared else FASTERSEG_OPS[op](t, h, c_out, stride)
            if b == 0:
                trunk.append(h)
        for c, skip in zip((c16, c8)[2 - branch.last:], downs_in[::-1], strict=False):  # arm, upsample, refine
            h = t.conv_bn(t.cat(t.interpolate(t.conv_bn(h, c), skip[2:]), skip), c, 3)
        eighth.append(h)
    fused = t.conv_bn(t.cat(*(t.interpolate(e, eighth[0][2:]) for e in eighth)), 2 * c8)
    t.interpolate(_fasterseg_head(t, fused, num_classes), x[2:])
