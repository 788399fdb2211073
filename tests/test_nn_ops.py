"""Operators: Table 2 complexity, shapes at any stride/width, slicing, attention, drop path."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from segnas.metrics import count_macs_params
from segnas.nn import (
    OPS,
    DropPath,
    IdentitySkip,
    MultiHeadSelfAttention,
    SlimBatchNorm2d,
    build_op,
    load_leading_slices,
)
from segnas.nn.ops import to_tokens
from segnas.spaces.hyctas import KNOWN_OPS, Node
from segnas.spaces.hyctas.network import build_cell

TABLE2_INPUT = (1, 256, 32, 64)


def _randomize_bn(module: torch.nn.Module, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=gen) - 0.5)


@pytest.mark.parametrize(
    ("name", "paper_gmacs", "paper_mparams"),
    [("conv", 1.2, 0.59), ("lightweight_conv", 0.4, 0.66)],
)
def test_table2_rows_match_paper(name: str, paper_gmacs: float, paper_mparams: float) -> None:
    macs, params = count_macs_params(build_op(name, 256, 256, 1), TABLE2_INPUT)
    assert abs(macs / 1e9 - paper_gmacs) < 0.05
    assert abs(params / 1e6 - paper_mparams) < 0.005


def test_conv_scales_linearly_attention_quadratically() -> None:
    big = (1, 256, 64, 128)
    for name, quadratic in [
        ("conv", False),
        ("lightweight_conv", False),
        ("self_attention", True),
        ("transformer", True),
    ]:
        op = build_op(name, 256, 256, 1)
        ratio = count_macs_params(op, big)[0] / count_macs_params(op, TABLE2_INPUT)[0]
        if quadratic:
            assert ratio > 8.0, name
        else:
            assert ratio == pytest.approx(4.0, rel=1e-3), name


def test_attention_matmuls_are_counted() -> None:
    # MESA at 256 channels: attention on 64 channels over 2048 tokens = 2048^2 * (64 + 64) MACs.
    op = build_op("self_attention", 256, 256, 1)
    macs, _ = count_macs_params(op, TABLE2_INPUT)
    convs = 2048 * (256 * 64 + 3 * 64 * 64 + 64 * 64 + 64 * 256 + 256 * 256)
    assert macs >= convs + 2048**2 * 128


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("stride", [1, 2])
def test_any_stride_and_width(name: str, stride: int) -> None:
    op = build_op(name, 7, 12, stride)
    x = torch.randn(2, 7, 9, 11, requires_grad=True)
    y = op(x)
    assert y.shape == (2, 12, math.ceil(9 / stride), math.ceil(11 / stride))
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("stride", [1, 2])
def test_sliced_op_equals_small_op(name: str, stride: int) -> None:
    kwargs = {"project": True} if name == "skip" else {}
    big = build_op(name, 32, 48, stride, **kwargs)
    _randomize_bn(big)
    small = build_op(name, 20, 28, stride)
    load_leading_slices(small, big)
    big.eval(), small.eval()
    x = torch.randn(2, 20, 10, 12)
    with torch.no_grad():
        torch.testing.assert_close(big(x, 28), small(x), atol=1e-5, rtol=1e-5)


def test_skip_is_identity_only_when_shape_is_kept() -> None:
    x = torch.randn(1, 8, 6, 6)
    assert build_op("skip", 8, 8, 1)(x) is x
    assert not list(build_op("skip", 8, 8, 1).parameters())
    assert build_op("skip", 8, 8, 2)(x).shape == (1, 8, 3, 3)


def test_space_knows_every_operator() -> None:
    assert set(KNOWN_OPS) == set(OPS)


def test_build_op_rejects_bad_input() -> None:
    with pytest.raises(KeyError, match="unknown operator"):
        build_op("deformable", 8, 8, 1)
    with pytest.raises(ValueError, match="stride"):
        build_op("conv", 8, 8, 3)


def test_multi_head_attention_matches_manual_computation() -> None:
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(dim=12, inner_dim=8, num_heads=2)
    t = torch.randn(3, 5, 12)
    q, k, v = (lin(t).view(3, 5, 2, 4).transpose(1, 2) for lin in (attn.q, attn.k, attn.v))
    weights = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1)
    manual = attn.proj((weights @ v).transpose(1, 2).reshape(3, 5, 8))
    torch.testing.assert_close(attn(t), manual, atol=1e-5, rtol=1e-5)


def test_slim_batchnorm_updates_only_its_slice() -> None:
    bn = SlimBatchNorm2d(6)
    bn.train()
    x = torch.randn(4, 4, 5, 5) + 3.0
    y = bn(x)
    assert torch.allclose(bn.running_mean[4:], torch.zeros(2))
    assert torch.all(bn.running_mean[:4] > 0.2)
    torch.testing.assert_close(y, F.batch_norm(x, None, None, training=True), atol=1e-5, rtol=1e-5)


def test_drop_path_drops_whole_samples_in_training_only() -> None:
    drop = DropPath(0.5)
    x = torch.ones(256, 3, 2, 2)
    torch.manual_seed(0)
    y = drop(x)
    per_sample = y.flatten(1)
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}
    assert torch.all(per_sample.min(1).values == per_sample.max(1).values)
    assert 0.35 < (per_sample[:, 0] == 0).float().mean() < 0.65
    drop.eval()
    assert drop(x) is x


@pytest.mark.parametrize("name", ["lightweight_conv", "self_attention", "transformer"])
def test_ops_with_bypass_drop_their_main_branch(name: str) -> None:
    op = build_op(name, 8, 8, 1)
    x = torch.randn(4, 8, 6, 6)
    op.train()
    torch.manual_seed(0)
    reference = op(x)
    op.drop_path.p = 0.9
    torch.manual_seed(0)
    dropped = op(x)
    assert not torch.allclose(reference, dropped)
    op.eval()
    with torch.no_grad():
        eval_dropped = op(x)
        op.drop_path.p = 0.0
        torch.testing.assert_close(op(x), eval_dropped)


def test_identity_skip_cells_drop_to_their_input() -> None:
    def node(op: str, c_out: int = 8, down: int = 0) -> Node:
        return Node(0, (0,), op, down, 8, 8, c_out, None)

    assert isinstance(build_cell(node("conv")), IdentitySkip)
    # a width change, a downsampling cell or an operator with its own bypass: no identity skip
    assert not any(
        isinstance(build_cell(n), IdentitySkip)
        for n in (node("conv", 12), node("conv", 16, 1), node("lightweight_conv"), node("skip"))
    )
    cell = build_cell(node("conv"))
    cell.drop_path.p = 0.5
    x = torch.randn(64, 8, 5, 5)
    torch.manual_seed(0)
    y = cell.train()(x)
    kept_input = (y == x).flatten(1).all(1)
    assert 0.3 < kept_input.float().mean() < 0.7
    cell.eval()
    with torch.no_grad():
        torch.testing.assert_close(cell(x), x + cell.op(x))



def _fp16_magnitude_input(op: torch.nn.Module, channels: int) -> torch.Tensor:
    """Activations fp16 represents (|x| < 2100) whose unscaled q.k logits in ``op`` exceed fp16's 65504."""
    x = 500 * torch.randn(1, channels, 8, 16)
    with torch.no_grad():
        z = op.embed(x)
        logits = to_tokens(op.q(z)) @ to_tokens(op.k(z)).transpose(1, 2)
    assert logits.abs().max() > torch.finfo(torch.float16).max
    return x


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("reduce_in_low_precision", [False, True], ids=["default", "fp16_reduction"])
def test_reference_attention_is_finite_at_fp16_magnitudes(dtype: torch.dtype, reduce_in_low_precision: bool) -> None:
    """Unscaled logits (the reference's): attended in fp32 under autocast, even with SDPA's math kernel set to
    reduce in fp16 (a fallback before torch 2.5, or ``allow_fp16_bf16_reduction_math_sdp(True)``)."""
    torch.manual_seed(0)
    op = build_op("self_attention_reference", 64, 64).eval()
    op.gamma.data.fill_(1.0)  # a trained op uses its attention (it starts at 0)
    x = _fp16_magnitude_input(op, 64)
    allowed = torch.backends.cuda.fp16_bf16_reduction_math_sdp_allowed()
    torch.backends.cuda.allow_fp16_bf16_reduction_math_sdp(reduce_in_low_precision)
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=dtype), sdpa_kernel(SDPBackend.MATH):
            out = op(x)
    finally:
        torch.backends.cuda.allow_fp16_bf16_reduction_math_sdp(allowed)
    assert torch.isfinite(out).all()


def test_scaled_attention_is_finite_at_fp16_magnitudes_with_default_kernels() -> None:
    """``self_attention`` relies on SDPA reducing in fp32 (its logits, scaled, still exceed 65504 here)."""
    torch.manual_seed(0)
    op = build_op("self_attention", 64, 64).eval()
    x = 1000 * torch.randn(1, 64, 8, 16)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16), sdpa_kernel(SDPBackend.MATH):
        out = op(x)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()


def test_reference_attention_in_fp32_is_the_plain_sdpa_call() -> None:
    """The fp16 guard leaves fp32 untouched: bit-identical to ``softmax(q k^T) v`` by SDPA, unscaled."""
    torch.manual_seed(0)
    op = build_op("self_attention_reference", 16, 16).eval()
    op.gamma.data.fill_(0.5)
    x = torch.randn(2, 16, 6, 10)
    with torch.no_grad():
        z = op.embed(x)
        q, k, v = (to_tokens(conv(z)).unsqueeze(1) for conv in (op.q, op.k, op.v))
        attn = F.scaled_dot_product_attention(q, k, v, scale=1.0).squeeze(1)
        manual = op.expand(F.relu(op.norm(z + 0.5 * attn.transpose(1, 2).reshape(2, 16, 6, 10))))
        assert torch.equal(op(x), F.relu(manual + x))
