"""MACs and params of a TransNAS-Bench-101 network from its architecture string, with the operator formulas
of :mod:`segnas.metrics.cost_model` (equal to fvcore's count of the built network:
``tests/test_space_contract.py``)."""

from __future__ import annotations

from segnas.metrics.cost_model import Shape, Tally
from segnas.spaces.transnas.arch import parse
from segnas.spaces.transnas.space import TransNASGenotype


def _factorized_reduce(t: Tally, x: Shape, c_out: int, stride: int) -> Shape:
    y = t.conv(x, c_out // 2, 1, stride)
    t.conv(x, c_out // 2, 1, stride)
    return t.bn((y[0], c_out, *y[2:]))


def _micro_edge(t: Tally, code: str, x: Shape, c_out: int, stride: int) -> Shape:
    """One cell edge (:func:`segnas.spaces.transnas.network.micro_op`)."""
    if code == "0":
        return (x[0], c_out, (x[2] + stride - 1) // stride, (x[3] + stride - 1) // stride)
    if code == "1":
        return x if stride == 1 and x[1] == c_out else _factorized_reduce(t, x, c_out, stride)
    return t.conv_bn(x, c_out, 1 if code == "2" else 3, stride)


def _micro_cell(t: Tally, ops: str, x: Shape, c_out: int, stride: int) -> Shape:
    nodes, edge = [x], 0
    for node in range(1, 4):
        outs = [_micro_edge(t, ops[edge + src], nodes[src], c_out, stride if src == 0 else 1) for src in range(node)]
        edge += node
        nodes.append(outs[0])
    return nodes[-1]


def _basic_block(t: Tally, x: Shape, c_out: int, stride: int) -> Shape:
    y = t.conv_bn(t.conv_bn(x, c_out, 3, stride), c_out, 3)
    if stride != 1 or x[1] != c_out:
        t.conv_bn(x, c_out, 1, stride)
    return y


def network_costs(t: Tally, genotype: TransNASGenotype, num_classes: int, x: Shape, bn_quirk: bool = True) -> None:
    """Add the costs of :class:`~segnas.spaces.transnas.network.TransNASSegmenter` on an input of shape ``x``
    to ``t``; the options are those of the registered builder (the BN quirk changes no cost)."""
    channels, modules, cell = parse(genotype.arch)
    y = t.conv_bn(x, channels // 2, 3, 2)
    y = t.conv_bn(y, channels, 3, 2)
    for code in map(int, modules):
        c_out = y[1] * 2 if code % 2 == 0 else y[1]
        for s in (2 if code > 2 else 1, 1):
            y = _basic_block(t, y, c_out, s) if cell is None else _micro_cell(t, cell, y, c_out, s)
    num_upsample = 2 + sum(int(m) > 2 for m in modules)
    y = t.bn(t.conv(y, 1024, 3, bias=True))
    for _ in range(6 - num_upsample):
        y = t.bn(t.conv(y, y[1] // 2, 3, bias=True))
    for _ in range(num_upsample - 1):
        y = t.bn(t.conv_transpose(y, y[1] // 2))
    y = t.bn(t.conv_transpose(y, y[1]))
    t.conv(y, num_classes, 3, bias=True)
