"""Cell operators of the HyCTAS search space, all with the constructor shape ``(c_in, c_out, stride)``.

Every operator works at stride 1 and 2 with any input/output width and is slimmable: ``forward(x,
c_out=None)`` reads the input width from ``x`` and runs on leading weight slices when ``c_out`` is
smaller than the width it was built with (see :mod:`segnas.nn.slim`). Stride-2 outputs have
``ceil(H/2) x ceil(W/2)`` pixels for every operator. Operators with a bypass put a :class:`DropPath`
on their main branch; a ``conv`` cell that keeps its input's shape is wrapped in an identity skip whose
residual branch is dropped (:class:`~segnas.nn.drop.IdentitySkip`); ``skip`` is never dropped.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segnas.nn.drop import DropPath
from segnas.nn.slim import ConvBNAct, SlimBatchNorm2d, SlimConv2d, SlimLayerNorm, SlimLinear


def half_size(x: Tensor) -> tuple[int, int]:
    """Spatial size of ``x`` after a stride-2 operator: ``(ceil(H/2), ceil(W/2))``."""
    h, w = x.shape[-2:]
    return (h + 1) // 2, (w + 1) // 2


def pool2(x: Tensor) -> Tensor:
    """2x2 average pooling with ceil-mode output size."""
    return F.avg_pool2d(x, 2, ceil_mode=True)


def to_tokens(x: Tensor) -> Tensor:
    """``(B, C, H, W)`` -> ``(B, H*W, C)``."""
    return x.flatten(2).transpose(1, 2)


def to_map(t: Tensor, size: tuple[int, int]) -> Tensor:
    """``(B, H*W, C)`` -> ``(B, C, H, W)``."""
    return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], *size)


class Skip(nn.Module):
    """Identity when stride 1 and width unchanged; otherwise (2x2 avg-pool) + 1x1 conv + BN.

    ``project=True`` forces the projection weights to exist (a supernet op must be able to change
    widths even when built with ``c_in == c_out``).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, project: bool | None = None) -> None:
        super().__init__()
        self.c_out, self.stride = c_out, stride
        if project is None:
            project = stride != 1 or c_in != c_out
        self.proj = ConvBNAct(c_in, c_out, 1, act=False) if project else None

    def forward(self, x: Tensor, c_out: int | None = None) -> Tensor:
        c_out = self.c_out if c_out is None else c_out
        if self.stride == 1 and x.shape[1] == c_out:
            return x
        if self.proj is None:
            raise RuntimeError("Skip built without projection cannot change shape")
        return self.proj(pool2(x) if self.stride == 2 else x, c_out)


class Conv3x3(ConvBNAct):
    """3x3 convolution + BN + ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__(c_in, c_out, 3, stride)


class LightweightConv(nn.Module):
    """Zoomed 3x3 conv(s) at half resolution plus a full-resolution 1x1 bypass, summed, then ReLU.

    Main path: bilinear resize to half size -> ``num_convs`` 3x3 conv-BN (ReLU between them) ->
    bilinear resize back; bypass: 1x1 conv-BN. At stride 2 the output stays at half resolution and
    there is no bypass (the reference ``conv_downup`` down cell).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, num_convs: int = 1) -> None:
        super().__init__()
        self.c_out, self.stride = c_out, stride
        widths = [c_in] + [c_out] * num_convs
        self.convs = nn.ModuleList(
            ConvBNAct(widths[i], c_out, 3, act=i < num_convs - 1) for i in range(num_convs)
        )
        self.bypass = ConvBNAct(c_in, c_out, 1, act=False) if stride == 1 else None
        self.drop_path = DropPath()

    def forward(self, x: Tensor, c_out: int | None = None) -> Tensor:
        c_out = self.c_out if c_out is None else c_out
        y = F.interpolate(x, size=half_size(x), mode="bilinear", align_corners=False)
        for conv in self.convs:
            y = conv(y, c_out)
        if self.bypass is None:
            return F.relu(y)
        y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return F.relu(self.drop_path(y) + self.bypass(x, c_out))


class LightweightConv2x(LightweightConv):
    """:class:`LightweightConv` with two 3x3 convs at half resolution (reference ``conv_2x_downup``)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__(c_in, c_out, stride, num_convs=2)


def attention_fp32(q: Tensor, k: Tensor, v: Tensor, scale: float | None = None) -> Tensor:
    """``F.scaled_dot_product_attention`` computed in fp32 (autocast off) and cast back to the input dtype;
    fp32 inputs take exactly the plain call."""
    if q.dtype == torch.float32:
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    with torch.autocast(q.device.type, enabled=False):
        return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), scale=scale).to(q.dtype)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention on tokens ``(B, N, C)`` via ``F.scaled_dot_product_attention``.

    q/k/v project ``C -> inner`` and the output projection ``inner -> C``; ``inner`` must be divisible
    by ``num_heads`` and may be smaller than the width the module was built with (slicing).

    Precision: logits are scaled by ``1/sqrt(head_dim)`` and, under fp16/bf16 autocast, left to SDPA's
    kernels, which all reduce in fp32 by default (flash/memory-efficient accumulators; the math kernel
    upcasts unless ``torch.backends.cuda.allow_fp16_bf16_reduction_math_sdp(True)``), so the fused
    low-precision kernels stay available (tests/test_nn_ops.py checks finite outputs at fp16 magnitudes).
    """

    def __init__(self, dim: int, inner_dim: int, num_heads: int) -> None:
        super().__init__()
        if inner_dim % num_heads:
            raise ValueError(f"inner_dim {inner_dim} is not divisible by num_heads {num_heads}")
        self.inner_dim, self.num_heads = inner_dim, num_heads
        self.q = SlimLinear(dim, inner_dim)
        self.k = SlimLinear(dim, inner_dim)
        self.v = SlimLinear(dim, inner_dim)
        self.proj = SlimLinear(inner_dim, dim)

    def forward(self, t: Tensor, inner_dim: int | None = None) -> Tensor:
        inner = self.inner_dim if inner_dim is None else inner_dim
        b, n, c = t.shape
        q, k, v = (
            lin(t, inner).view(b, n, self.num_heads, -1).transpose(1, 2) for lin in (self.q, self.k, self.v)
        )
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, inner), c)


class SelfAttention(nn.Module):
    """Memory-efficient self-attention: 1x1 reduce -> MHSA (no FFN) -> 1x1 expand, plus a 1x1 bypass.

    The attention runs on ``attn_width(c_out)`` channels (``c_out / reduction``, a multiple of
    ``num_heads``) at the operator's output resolution (2x2 average pooling first at stride 2), with a
    residual connection around it; output = ReLU(expand + bypass).
    """

    def __init__(
        self, c_in: int, c_out: int, stride: int = 1, num_heads: int = 2, reduction: int = 4
    ) -> None:
        super().__init__()
        self.c_out, self.stride = c_out, stride
        self.num_heads, self.reduction = num_heads, reduction
        c_attn = self.attn_width(c_out)
        self.reduce = ConvBNAct(c_in, c_attn, 1)
        self.attn = MultiHeadSelfAttention(c_attn, c_attn, num_heads)
        self.expand = ConvBNAct(c_attn, c_out, 1, act=False)
        self.bypass = ConvBNAct(c_in, c_out, 1, act=False)
        self.drop_path = DropPath()

    def attn_width(self, c_out: int) -> int:
        """Attention width for output width ``c_out``."""
        return self.num_heads * max(1, round(c_out / (self.reduction * self.num_heads)))

    def forward(self, x: Tensor, c_out: int | None = None) -> Tensor:
        c_out = self.c_out if c_out is None else c_out
        if self.stride == 2:
            x = pool2(x)
        c_attn = self.attn_width(c_out)
        z = self.reduce(x, c_attn)
        t = to_tokens(z)
        z = to_map(t + self.attn(t, c_attn), z.shape[-2:])
        return F.relu(self.drop_path(self.expand(z, c_out)) + self.bypass(x, c_out))


class SelfAttentionReference(nn.Module):
    """The public reference code's self-attention cell (``operations.Self_Attn``), single head.

    Main path: 1x1 conv-BN-ReLU ``c_in -> c_out``; SAGAN attention over all pixels with q/k 1x1 convs to
    ``c_out // 8`` and v to ``c_out`` (all with bias), ``softmax(q^T k)`` without 1/sqrt(d) scaling and no
    positional encoding, added as ``gamma * attention + z`` with a learned scalar ``gamma`` (initialised
    to 0); 2x2 average pooling at stride 2; BN-ReLU; 1x1 conv-BN. Shortcut: identity (stride 1, same
    width), 1x1 conv-BN-ReLU (width change) or 3x3 stride-2 conv-BN-ReLU (stride 2). Output
    ``ReLU(main + shortcut)``. ``project=True`` builds the shortcut conv even at ``c_in == c_out``
    (a supernet op whose slices change width). ``half_resolution=True`` is the reference's head variant
    (``SAHead``): the attention (and the BN-ReLU after it) runs on the embedding bilinearly resized to
    ``(H // 2, W // 2)``, resized back to ``H x W`` before the last 1x1 conv.

    Precision: the logits stay unscaled as in the reference (which trains in fp32), so fp32 outputs are the
    reference's and are unchanged; instead, fp16/bf16 q/k/v (autocast) are attended in fp32 (logits, softmax,
    weighted sum; :func:`attention_fp32`). Unscaled ``c/8``-dim logits exceed fp16's 65504 at activations of a
    few hundred, which an SDPA kernel reducing in fp16 turns into NaN; bf16 would round them coarsely.
    """

    def __init__(
        self, c_in: int, c_out: int, stride: int = 1, project: bool | None = None, half_resolution: bool = False
    ) -> None:
        super().__init__()
        if half_resolution and stride != 1:
            raise ValueError("half_resolution (the reference head's SAHead) is a stride-1 operator")
        self.c_out, self.stride, self.half_resolution = c_out, stride, half_resolution
        if project is None:
            project = stride != 1 or c_in != c_out
        self.shortcut = ConvBNAct(c_in, c_out, 3 if stride == 2 else 1, stride) if project else None
        self.embed = ConvBNAct(c_in, c_out, 1)
        c_qk = self.qk_width(c_out)
        self.q = SlimConv2d(c_out, c_qk, 1)
        self.k = SlimConv2d(c_out, c_qk, 1)
        self.v = SlimConv2d(c_out, c_out, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.norm = SlimBatchNorm2d(c_out)
        self.expand = ConvBNAct(c_out, c_out, 1, act=False)
        self.drop_path = DropPath()

    @staticmethod
    def qk_width(c_out: int) -> int:
        """Query/key width for output width ``c_out`` (``c_out // 8``, at least 1)."""
        return max(1, c_out // 8)

    def forward(self, x: Tensor, c_out: int | None = None) -> Tensor:
        c_out = self.c_out if c_out is None else c_out
        if self.stride == 1 and x.shape[1] == c_out:
            identity = x
        elif self.shortcut is None:
            raise RuntimeError("SelfAttentionReference built without shortcut conv cannot change shape")
        else:
            identity = self.shortcut(x, c_out)
        z = self.embed(x, c_out)
        size = z.shape[-2:]
        if self.half_resolution:
            z = F.interpolate(z, size=(size[0] // 2, size[1] // 2), mode="bilinear", align_corners=False)
        c_qk = self.qk_width(c_out)
        q, k, v = (
            to_tokens(lin(z, c)).unsqueeze(1) for lin, c in ((self.q, c_qk), (self.k, c_qk), (self.v, c_out))
        )
        attn = attention_fp32(q, k, v, scale=1.0).squeeze(1)
        z = z + self.gamma * to_map(attn, z.shape[-2:])
        if self.stride == 2:
            z = pool2(z)
        z = F.relu(self.norm(z))
        if self.half_resolution:
            z = F.interpolate(z, size=size, mode="bilinear", align_corners=False)
        z = self.expand(z, c_out)
        return F.relu(self.drop_path(z) + identity)


class TransformerBlock(nn.Module):
    """Standard pre-norm transformer block (MHSA + GELU MLP) on a 1x1-projected feature map.

    1x1 conv embedding ``c_in -> c_out`` (after 2x2 average pooling at stride 2), then
    ``t + MHSA(LN(t))`` and ``t + MLP(LN(t))`` with ``mlp_ratio * c_out`` hidden units.
    """

    def __init__(
        self, c_in: int, c_out: int, stride: int = 1, num_heads: int = 4, mlp_ratio: float = 4.0
    ) -> None:
        super().__init__()
        self.c_out, self.stride = c_out, stride
        self.num_heads, self.mlp_ratio = num_heads, mlp_ratio
        self.embed = SlimConv2d(c_in, c_out, 1)
        self.norm1 = SlimLayerNorm(c_out)
        self.attn = MultiHeadSelfAttention(c_out, self.inner_width(c_out), num_heads)
        self.norm2 = SlimLayerNorm(c_out)
        self.fc1 = SlimLinear(c_out, self.hidden_width(c_out))
        self.fc2 = SlimLinear(self.hidden_width(c_out), c_out)
        self.drop_path = DropPath()

    def inner_width(self, c_out: int) -> int:
        """Attention width: ``c_out`` rounded up to a multiple of ``num_heads``."""
        return -(-c_out // self.num_heads) * self.num_heads

    def hidden_width(self, c_out: int) -> int:
        """MLP hidden width."""
        return round(c_out * self.mlp_ratio)

    def forward(self, x: Tensor, c_out: int | None = None) -> Tensor:
        c_out = self.c_out if c_out is None else c_out
        if self.stride == 2:
            x = pool2(x)
        z = self.embed(x, c_out)
        t = to_tokens(z)
        t = t + self.drop_path(self.attn(self.norm1(t), self.inner_width(c_out)))
        t = t + self.drop_path(self.fc2(F.gelu(self.fc1(self.norm2(t), self.hidden_width(c_out))), c_out))
        return to_map(t, z.shape[-2:])


class PatchTransformer(nn.Module):
    """A standard pre-LN transformer encoder layer (MHSA + GELU MLP) of width ``patch**2 * c`` on
    ``patch x patch`` patches flattened without a projection (``pixel_unshuffle``), folded back after.

    Not a cell operator: the Transformer row of the paper's Table 2 at the paper's width (at 1x256x32x64:
    width 1024, 512 tokens, 12.60 M params, the paper's 12.62 M; see ``experiments/hyctas_fidelity``).
    """

    def __init__(self, c: int, patch: int = 2, num_heads: int = 8, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        d = patch * patch * c
        self.patch = patch
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = MultiHeadSelfAttention(d, d, num_heads)
        self.mlp = nn.Sequential(nn.Linear(d, round(mlp_ratio * d)), nn.GELU(), nn.Linear(round(mlp_ratio * d), d))

    def forward(self, x: Tensor) -> Tensor:
        z = F.pixel_unshuffle(x, self.patch)
        t = to_tokens(z)
        t = t + self.attn(self.norm1(t))
        t = t + self.mlp(self.norm2(t))
        return F.pixel_shuffle(to_map(t, z.shape[-2:]), self.patch)


OPS: dict[str, Callable[..., nn.Module]] = {
    "skip": Skip,
    "conv": Conv3x3,
    "lightweight_conv": LightweightConv,
    "lightweight_conv2x": LightweightConv2x,
    "self_attention": SelfAttention,
    "self_attention_reference": SelfAttentionReference,
    "transformer": TransformerBlock,
}


def build_op(name: str, c_in: int, c_out: int, stride: int = 1, **kwargs: object) -> nn.Module:
    """Build the operator ``name`` (a key of :data:`OPS`) for ``c_in -> c_out`` channels at ``stride``."""
    if name not in OPS:
        raise KeyError(f"unknown operator {name!r}; expected one of {sorted(OPS)}")
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride}")
    return OPS[name](c_in, c_out, stride, **kwargs)
