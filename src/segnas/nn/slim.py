"""Slimmable layers: drop-in replacements for torch layers that can run on leading weight slices.

Every layer takes its input width from the input tensor and (where it has one) an optional output
width at call time, and then uses the *leading* slice of its weights (``w[:c_out, :c_in]``). Built at
the largest widths they form the weight-sharing supernet; built at the exact widths of one sub-network
they are ordinary layers, and copying the leading weight slices (:func:`load_leading_slices`) from a
supernet layer gives the same function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SlimConv2d(nn.Conv2d):
    """``nn.Conv2d`` that uses ``weight[:c_out, :x.shape[1]]`` (groups must be 1)."""

    def forward(self, x: Tensor, c_out: int | None = None) -> Tensor:
        c_out = self.out_channels if c_out is None else c_out
        weight = self.weight
        if c_out != weight.shape[0] or x.shape[1] != weight.shape[1]:
            weight = weight[:c_out, : x.shape[1]]
        bias = None if self.bias is None else self.bias[:c_out]
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class SlimLinear(nn.Linear):
    """``nn.Linear`` that uses ``weight[:c_out, :x.shape[-1]]``."""

    def forward(self, x: Tensor, c_out: int | None = None) -> Tensor:
        c_out = self.out_features if c_out is None else c_out
        weight = self.weight
        if c_out != weight.shape[0] or x.shape[-1] != weight.shape[1]:
            weight = weight[:c_out, : x.shape[-1]]
        bias = None if self.bias is None else self.bias[:c_out]
        return F.linear(x, weight, bias)


class SlimBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` over the first ``x.shape[1]`` channels (running statistics updated in place)."""

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1]
        if c == self.num_features:
            return super().forward(x)
        momentum = self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked)
        use_batch_stats = self.training or self.running_mean is None
        return F.batch_norm(
            x,
            None if self.running_mean is None else self.running_mean[:c],
            None if self.running_var is None else self.running_var[:c],
            None if self.weight is None else self.weight[:c],
            None if self.bias is None else self.bias[:c],
            use_batch_stats,
            0.0 if momentum is None else momentum,
            self.eps,
        )


class SlimLayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` over the last dimension, using the first ``x.shape[-1]`` affine entries."""

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[-1]
        if c == self.normalized_shape[0]:
            return super().forward(x)
        return F.layer_norm(x, (c,), self.weight[:c], self.bias[:c], self.eps)


class ConvBNAct(nn.Module):
    """``k x k`` slimmable convolution (no bias) + batch norm + optional ReLU."""

    def __init__(
        self, c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1, act: bool = True
    ) -> None:
        super().__init__()
        self.conv = SlimConv2d(c_in, c_out, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn = SlimBatchNorm2d(c_out)
        self.act = act

    def forward(self, x: Tensor, c_out: int | None = None) -> Tensor:
        x = self.bn(self.conv(x, c_out))
        return F.relu(x) if self.act else x


@torch.no_grad()
def load_leading_slices(dst: nn.Module, src: nn.Module) -> None:
    """Copy into every parameter/buffer of ``dst`` the leading slice of the same-named tensor of ``src``."""
    src_state = src.state_dict()
    for name, tensor in dst.state_dict().items():
        if name not in src_state:
            raise KeyError(f"source module has no tensor {name!r}")
        source = src_state[name]
        if source.dim() != tensor.dim() or any(
            s < d for s, d in zip(source.shape, tensor.shape, strict=True)
        ):
            raise ValueError(f"cannot slice {name!r} of shape {tuple(source.shape)} to {tuple(tensor.shape)}")
        tensor.copy_(source[tuple(slice(0, n) for n in tensor.shape)])
