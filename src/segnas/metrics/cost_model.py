"""Cost formulas of network operators, in fvcore's convention, for analytic MACs and params.

:class:`Tally` accumulates what fvcore's handles count for each operator applied to a feature shape (one
multiply-add is one MAC, attention matmuls included), returning the output shape, so that a space can walk
a genotype's layout (``segnas.spaces.<name>.costs``) instead of tracing the built network:

- convolution: ``B x C_out x C_in x k^2 x output pixels`` (bias free; transposed: x input pixels); linear: input
  elements x outputs;
- BatchNorm (eval): 2 x elements; LayerNorm: 5 x elements; adaptive average pooling: input elements;
- bilinear resize: 4 x output elements (``F.interpolate`` always; :meth:`Tally.resize` only when the size
  changes);
- scaled dot-product attention: ``batch x heads x N^2 x (d_qk + d_v)``, the token count from the pixels;
- ReLU, GELU, additions, concatenation, reshapes and average pooling: 0.

Params are those of the modules counted. A walk raises :class:`Unsupported` for a network it does not
cover (the caller then traces it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import prod

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

    def conv_transpose(self, x: Shape, c_out: int, k: int = 3) -> Shape:
        """``k x k`` transposed convolution with bias, stride 2, padding ``k // 2`` and output padding 1 (doubles
        the resolution); fvcore counts it over the input pixels."""
        b, c_in, h, w = x
        self.macs += b * c_in * c_out * k * k * h * w
        self.params += c_in * c_out * k * k + c_out
        return (b, c_out, 2 * h, 2 * w)

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


# An operator's costs: (tally, input shape, output channels, stride) -> output shape.
Op = Callable[[Tally, Shape, int, int], Shape]
