"""Exact MACs and params of a genotype's network, computed analytically instead of by tracing.

:func:`~segnas.metrics.complexity.count_macs_params` builds a network and traces it with fvcore (one
multiply-add is one MAC, attention matmuls included): 0.1-4 s a network. The networks of the ``hyctas`` and
``fasterseg`` spaces are stacks of a few operators, so :func:`analytic_costs` walks a genotype's layout with
each operator's cost formula, propagating shapes, and counts for every op what fvcore's handles count:

- convolution: ``B x C_out x C_in x k^2 x output pixels`` (bias free); linear: input elements x outputs;
- BatchNorm (eval): 2 x elements; LayerNorm: 5 x elements; adaptive average pooling: input elements;
- bilinear resize: 4 x output elements (``F.interpolate`` always; the hyctas ``resize`` only when the size
  changes);
- scaled dot-product attention: ``batch x heads x N^2 x (d_qk + d_v)``, the token count from the pixels;
- ReLU, GELU, additions, concatenation, reshapes and average pooling: 0.

Params are those of the modules the walk meets (the built networks call each of their modules once). The
result equals fvcore's at every input size (``tests/test_cost_model.py``: random networks of both spaces).

:func:`genotype_costs` is what every search and budget check calls: analytic where supported (both spaces
without ``aux_heads``), traced otherwise (an :class:`Unsupported` reason is logged once); the first analytic
result of every configuration in a process is also traced and compared, and a configuration that disagrees
is traced from then on (a warning says so), so an edited operator is never costed silently wrong.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from math import prod
from typing import Any

from torch import nn

from segnas.metrics.complexity import count_macs_params
from segnas.models.factory import GenotypeLike, build_network, network_options
from segnas.models.fasterseg_net import INITS, _cell_specs, num_filters
from segnas.spaces import as_genotype
from segnas.spaces.fasterseg import FasterSegGenotype
from segnas.spaces.hyctas import HyCTASGenotype, Node, build_plan

log = logging.getLogger(__name__)

Shape = tuple[int, ...]  # (B, C, H, W) feature maps, (B, N, C) tokens
Costs = tuple[int, int]  # (MACs, params)


class Unsupported(Exception):
    """The analytic model does not cover this network (it is traced instead)."""


class Tally:
    """Running MACs and params of the layers applied so far; each method returns its output shape."""

    def __init__(self) -> None:
        self.macs = 0
        self.params = 0

    def conv(self, x: Shape, c_out: int, k: int = 1, stride: int = 1, bias: bool = False) -> Shape:
        """``k x k`` convolution with padding ``k // 2``."""
        b, c_in, h, w = x
        pad = k // 2
        y = (b, c_out, (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1)
        self.macs += b * c_out * c_in * k * k * y[2] * y[3]
        self.params += c_out * c_in * k * k + (c_out if bias else 0)
        return y

    def bn(self, x: Shape) -> Shape:
        """Affine BatchNorm in eval mode."""
        self.macs += 2 * prod(x)
        self.params += 2 * x[1]
        return x

    def conv_bn(self, x: Shape, c_out: int, k: int = 1, stride: int = 1) -> Shape:
        """Convolution without bias + BatchNorm (+ ReLU)."""
        return self.bn(self.conv(x, c_out, k, stride))

    def interpolate(self, x: Shape, size: Sequence[int]) -> Shape:
        """Bilinear ``F.interpolate`` (counted even at the same size)."""
        y = (x[0], x[1], *size)
        self.macs += 4 * prod(y)
        return y

    def resize(self, x: Shape, size: Sequence[int]) -> Shape:
        """:func:`segnas.nn.heads.resize`: bilinear, skipped when the size already matches."""
        return x if tuple(x[2:]) == tuple(size) else self.interpolate(x, size)

    def adaptive_avg_pool(self, x: Shape, size: Sequence[int]) -> Shape:
        self.macs += prod(x)
        return (x[0], x[1], *size)

    def linear(self, t: Shape, c_out: int) -> Shape:
        """Linear layer with bias on the last dimension."""
        self.macs += prod(t) * c_out
        self.params += t[-1] * c_out + c_out
        return (*t[:-1], c_out)

    def layer_norm(self, t: Shape) -> Shape:
        self.macs += 5 * prod(t)
        self.params += 2 * t[-1]
        return t

    def attention(self, batch: int, tokens: int, d_qk: int, d_v: int) -> None:
        """``softmax(Q K^T) V`` over ``batch`` (batch x heads) sequences of ``tokens``."""
        self.macs += batch * tokens * tokens * (d_qk + d_v)

    def cat(self, *xs: Shape) -> Shape:
        """Channel concatenation."""
        return (xs[0][0], sum(x[1] for x in xs), *xs[0][2:])


def pool2(x: Shape) -> Shape:
    """2x2 average pooling, ceil mode (free)."""
    return (x[0], x[1], (x[2] + 1) // 2, (x[3] + 1) // 2)


def tokens(x: Shape) -> Shape:
    """``(B, C, H, W)`` -> ``(B, H*W, C)``."""
    return (x[0], x[2] * x[3], x[1])


# ------------------------------------------------------------------------------------------- hyctas operators
# Each mirrors the forward of its segnas.nn.ops class (default heads / reductions, as build_op builds them).
Op = Callable[[Tally, Shape, int, int], Shape]


def _skip(t: Tally, x: Shape, c_out: int, stride: int) -> Shape:
    if stride == 1 and x[1] == c_out:
        return x
    return t.conv_bn(pool2(x) if stride == 2 else x, c_out)


def _conv3x3(t: Tally, x: Shape, c_out: int, stride: int) -> Shape:
    return t.conv_bn(x, c_out, 3, stride)


def _lightweight(num_convs: int) -> Op:
    def cost(t: Tally, x: Shape, c_out: int, stride: int) -> Shape:
        y = t.interpolate(x, pool2(x)[2:])
        for _ in range(num_convs):
            y = t.conv_bn(y, c_out, 3)
        if stride == 2:
            return y
        t.conv_bn(x, c_out)  # bypass
        return t.interpolate(y, x[2:])

    return cost


def _mhsa(t: Tally, seq: Shape, inner: int, heads: int) -> None:
    """:class:`~segnas.nn.ops.MultiHeadSelfAttention` on tokens ``seq``."""
    for _ in range(3):
        t.linear(seq, inner)
    t.attention(seq[0] * heads, seq[1], inner // heads, inner // heads)
    t.linear((*seq[:2], inner), seq[2])


def _self_attention(t: Tally, x: Shape, c_out: int, stride: int, heads: int = 2, reduction: int = 4) -> Shape:
    if stride == 2:
        x = pool2(x)
    c_attn = heads * max(1, round(c_out / (reduction * heads)))
    z = t.conv_bn(x, c_attn)
    _mhsa(t, tokens(z), c_attn, heads)
    t.conv_bn(x, c_out)  # bypass
    return t.conv_bn(z, c_out)


def _self_attention_reference(t: Tally, x: Shape, c_out: int, stride: int) -> Shape:
    if stride == 2 or x[1] != c_out:
        t.conv_bn(x, c_out, 3 if stride == 2 else 1, stride)  # shortcut
    z = t.conv_bn(x, c_out)
    c_qk = max(1, c_out // 8)
    for c in (c_qk, c_qk, c_out):
        t.conv(z, c, bias=True)
    t.attention(z[0], z[2] * z[3], c_qk, c_out)
    t.params += 1  # gamma
    z = t.bn(pool2(z) if stride == 2 else z)
    return t.conv_bn(z, c_out)


def _transformer(t: Tally, x: Shape, c_out: int, stride: int, heads: int = 4, mlp_ratio: float = 4.0) -> Shape:
    if stride == 2:
        x = pool2(x)
    z = t.conv(x, c_out, bias=True)
    seq = t.layer_norm(tokens(z))
    _mhsa(t, seq, -(-c_out // heads) * heads, heads)
    t.linear(t.linear(t.layer_norm(seq), round(c_out * mlp_ratio)), c_out)
    return z


HYCTAS_OPS: dict[str, Op] = {
    "skip": _skip,
    "conv": _conv3x3,
    "lightweight_conv": _lightweight(1),
    "lightweight_conv2x": _lightweight(2),
    "self_attention": _self_attention,
    "self_attention_reference": _self_attention_reference,
    "transformer": _transformer,
}


def _hyctas_cell(t: Tally, node: Node, x: Shape) -> Shape:
    if node.op not in HYCTAS_OPS:
        raise Unsupported(f"no cost formula for the hyctas operator {node.op!r}")
    return HYCTAS_OPS[node.op](t, x, node.c_out, 1 + node.down)  # an identity skip adds nothing


def _fuse_edge(t: Tally, x: Shape, c_out: int, size: Sequence[int]) -> None:
    """:class:`~segnas.nn.heads.FuseEdge`."""
    if x[2] > size[0]:
        t.conv_bn(t.adaptive_avg_pool(x, size), c_out)
    else:
        t.resize(t.conv_bn(x, c_out), size)


def _hyctas(t: Tally, genotype: HyCTASGenotype, num_classes: int, x: Shape, filter_multiplier: int = 16,
            output_stride: int = 8, drop_path_rate: float = 0.0) -> None:
    """:class:`~segnas.models.hyctas_net.HyCTASNet` (drop path is the identity in eval mode)."""
    if output_stride not in (4, 8) or not 0.0 <= drop_path_rate < 1.0:
        raise Unsupported(f"output_stride={output_stride}, drop_path_rate={drop_path_rate}")
    plan = build_plan(genotype, filter_multiplier)
    width = 8 * filter_multiplier
    x4 = t.conv_bn(t.conv_bn(t.conv_bn(x, 4 * filter_multiplier, 3, 2), width, 3, 2), width, 3)
    prev = [t.conv_bn(t.conv_bn(x4, width, 3, 2), width, 3)]
    for layer, nodes in enumerate(plan.layers):
        outs = [_hyctas_cell(t, node, prev[node.parent or 0]) for node in nodes]
        for u, v in plan.fusion_edges(layer):
            _fuse_edge(t, outs[u], outs[v][1], outs[v][2:])
        prev = outs
    size8 = ((x4[2] + 1) // 2, (x4[3] + 1) // 2)
    y = t.conv_bn(t.cat(*(t.resize(t.conv_bn(prev[i], width), size8) for i in plan.outputs)), width, 3)
    if output_stride == 4:
        y = t.conv_bn(t.cat(t.resize(y, x4[2:]), t.conv_bn(x4, 48)), width, 3)
    t.resize(t.conv(y, num_classes, bias=True), x[2:])


# ----------------------------------------------------------------------------------------- fasterseg network
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


def _fasterseg(t: Tally, genotype: FasterSegGenotype, num_classes: int, x: Shape, init: str = "kaiming") -> None:
    """:class:`~segnas.models.fasterseg_net.FasterSegNet` (``forward``: the main head only)."""
    if init not in INITS:
        raise Unsupported(f"init={init!r}")
    fch, hw = genotype.fch, genotype.stem_head_width
    c8, c16 = num_filters(fch, 8, hw), num_filters(fch, 16, hw)
    y = t.conv_bn(x, 2 * num_filters(fch, 2, hw), 3, 2)
    x8 = _conv_cell(t, _conv_cell(t, y, 2 * num_filters(fch, 4, hw), 2, 2), c8, 2, 2)
    specs = [_cell_specs(b, fch, c8, hw) for b in genotype.branches]
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


WALKS: dict[str, Callable[..., None]] = {"hyctas": _hyctas, "fasterseg": _fasterseg}


# ---------------------------------------------------------------------------------------------------- entry
def analytic_costs(genotype: GenotypeLike, num_classes: int, input_shape: Sequence[int], **options: Any) -> Costs:
    """``(MACs, params)`` of ``build_network(genotype, num_classes, **options)`` on an input of ``input_shape``,
    from the cost formulas (no network is built); :class:`Unsupported` when they do not cover it."""
    genotype = as_genotype(genotype)
    walk = WALKS.get(genotype.space_name)
    if walk is None:
        raise Unsupported(f"no cost formulas for the {genotype.space_name!r} space")
    if options.get("aux_heads", False):
        raise Unsupported("aux_heads=True (the auxiliary heads' parameters)")
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 4 or shape[1] != 3:
        raise Unsupported(f"input shape {list(shape)} (the networks take [B, 3, H, W])")
    problems = genotype.rule_violations()
    if problems:
        raise Unsupported(f"invalid genotype ({'; '.join(problems)})")
    unknown = sorted(set(options) - set(network_options(genotype.space_name)))
    if unknown:
        raise Unsupported(f"unknown network options {unknown}")
    t = Tally()
    walk(t, genotype, num_classes, shape, **{k: v for k, v in options.items() if k != "aux_heads"})
    return t.macs, t.params


def traced_costs(genotype: GenotypeLike, num_classes: int, input_shape: Sequence[int], **options: Any) -> Costs:
    """``(MACs, params)`` of the built network, traced with fvcore."""
    return count_macs_params(build_network(genotype, num_classes, **options), input_shape)


_AGREES: dict[str, bool] = {}  # configuration -> its first analytic result equalled tracing
_NOTED: set[str] = set()


def genotype_costs(genotype: GenotypeLike, num_classes: int, input_shape: Sequence[int], **options: Any) -> Costs:
    """``(MACs, params)`` of ``build_network(genotype, num_classes, **options)`` at ``input_shape``: analytic
    where supported (the first network of each configuration checked against tracing), traced otherwise."""
    genotype = as_genotype(genotype)
    config = repr((genotype.space_name, num_classes, [int(v) for v in input_shape], sorted(options.items())))
    if _AGREES.get(config, True):
        try:
            costs = analytic_costs(genotype, num_classes, input_shape, **options)
        except Unsupported as why:
            if str(why) not in _NOTED:
                _NOTED.add(str(why))
                log.info("MACs and params traced with fvcore: %s", why)
        else:
            if config in _AGREES:
                return costs
            traced = traced_costs(genotype, num_classes, input_shape, **options)
            _AGREES[config] = traced == costs
            if traced != costs:
                log.warning("analytic (MACs, params) %s != traced %s for %s: tracing this configuration from now on",
                            costs, traced, config)
            return traced
    return traced_costs(genotype, num_classes, input_shape, **options)


def builder_costs(build: Callable[[Any], nn.Module], genotype: Any, input_shape: Sequence[int]) -> Costs:
    """``(MACs, params)`` of ``build(genotype)``: :func:`genotype_costs` when ``build`` is a keyword ``partial``
    of :func:`~segnas.models.build_network` (what the searches use), else the built network traced."""
    if isinstance(build, functools.partial) and build.func is build_network and not build.args \
            and "num_classes" in build.keywords:
        options = dict(build.keywords)
        return genotype_costs(genotype, options.pop("num_classes"), input_shape, **options)
    return count_macs_params(build(genotype), input_shape)
