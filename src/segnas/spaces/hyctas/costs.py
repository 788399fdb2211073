"""The HyCTAS network's MACs and params from its plan, with the operator formulas of
:mod:`segnas.metrics.cost_model` (equal to fvcore's count of the built network:
``tests/test_cost_model.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from segnas.metrics.cost_model import Op, Shape, Tally, Unsupported, pool2, tokens
from segnas.spaces.hyctas.genotype import HyCTASGenotype
from segnas.spaces.hyctas.plan import Node, build_plan


# Each operator's formula mirrors the forward of its segnas.nn.ops class (default heads / reductions, as
# build_op builds them).
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


def network_costs(t: Tally, genotype: HyCTASGenotype, num_classes: int, x: Shape, filter_multiplier: int = 16,
                  output_stride: int = 8, drop_path_rate: float = 0.0, aux_heads: bool = False,
                  head: str = "segnas") -> None:
    """Add the costs of :class:`~segnas.spaces.hyctas.network.HyCTASNet` on an input of shape ``x`` to ``t``
    (drop path is the identity in eval mode); the options are those of the registered builder (the reference
    network, ``head="reference"``, is traced instead)."""
    if aux_heads:
        raise Unsupported("aux_heads=True (the auxiliary heads' parameters)")
    if head != "segnas":
        raise Unsupported(f"head={head!r} (no cost formulas for the reference code's network)")
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
