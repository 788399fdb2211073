"""Network pieces around the cells: stem, cross-branch fusion edge and the output aggregation head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segnas.nn.slim import ConvBNAct, SlimConv2d


def resize(x: Tensor, size: Sequence[int]) -> Tensor:
    """Bilinear resize (``align_corners=False``) to ``size``; no-op when the size already matches."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def adaptive_avg_pool(x: Tensor, size: Sequence[int]) -> Tensor:
    """``F.adaptive_avg_pool2d(x, size)``; in an ONNX export, the same window means as two averaging matrices
    (ONNX pools only to constant sizes that divide the input's, which cross-branch fusion sizes need not)."""
    if not torch.onnx.is_in_onnx_export():
        return F.adaptive_avg_pool2d(x, tuple(size))
    return _window_means(size[0], x.shape[-2], x) @ x @ _window_means(size[1], x.shape[-1], x).transpose(0, 1)


def _window_means(n_out: int | Tensor, n_in: int | Tensor, like: Tensor) -> Tensor:
    """``(n_out, n_in)`` matrix whose row ``i`` averages adaptive pooling's window ``i``:
    ``[floor(i * n_in / n_out), ceil((i + 1) * n_in / n_out))`` (sizes may be traced tensors)."""
    i = torch.arange(n_out, device=like.device).unsqueeze(1)
    j = torch.arange(n_in, device=like.device).unsqueeze(0)
    inside = (j >= i * n_in // n_out) & (j < ((i + 1) * n_in + n_out - 1) // n_out)
    weights = inside.to(like.dtype)
    return weights / weights.sum(1, keepdim=True)


class WithAuxHeads(nn.Module):
    """Base of a network wrapped with auxiliary heads for training: ``net`` is the inference network, whose
    output the wrapper returns unchanged in eval mode (:func:`segnas.models.deploy_net` unwraps it)."""

    net: nn.Module


class Stem(nn.Module):
    """Output-stride-8 stem that also returns its stride-4 feature.

    3x3 s2 conv (3 -> 4F) -> 3x3 s2 conv (4F -> 8F) -> 3x3 conv = stride-4 feature (8F channels);
    3x3 s2 conv -> 3x3 conv = stride-8 feature (8F channels). Every conv is conv-BN-ReLU, except the first
    one without ReLU when ``first_act=False`` (the reference code's stem).
    """

    def __init__(self, filter_multiplier: int, in_channels: int = 3, first_act: bool = True) -> None:
        super().__init__()
        c = 8 * filter_multiplier
        self.stem4 = nn.Sequential(
            ConvBNAct(in_channels, 4 * filter_multiplier, 3, 2, act=first_act),
            ConvBNAct(4 * filter_multiplier, c, 3, 2),
            ConvBNAct(c, c, 3),
        )
        self.stem8 = nn.Sequential(ConvBNAct(c, c, 3, 2), ConvBNAct(c, c, 3))
        self.out_channels = c

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return the stride-4 and stride-8 features."""
        x4 = self.stem4(x)
        return x4, self.stem8(x4)


class FuseEdge(nn.Module):
    """Carries a branch feature to another resolution for cross-branch fusion.

    Downsampling: average pooling to the target size, then slimmable 1x1 conv + BN; upsampling or same
    size: 1x1 conv + BN, then bilinear resize.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.proj = ConvBNAct(c_in, c_out, 1, act=False)

    def forward(self, x: Tensor, size: Sequence[int], c_out: int | None = None) -> Tensor:
        if x.shape[-2] > size[0]:
            return self.proj(adaptive_avg_pool(x, size), c_out)
        return resize(self.proj(x, c_out), size)


class AggregationHead(nn.Module):
    """Output head for one combination of branch output strides (the paper's head ``F_theta``).

    Each branch output is adapted by a slimmable 1x1 conv-BN-ReLU to ``width`` channels and bilinearly
    upsampled to stride 8; the maps are concatenated and fused by a 3x3 conv-BN-ReLU. With output
    stride 4 the stem's stride-4 feature is projected to ``low_width`` channels (1x1 conv-BN-ReLU),
    concatenated with the upsampled fused map and fused by another 3x3 conv-BN-ReLU. A 1x1 classifier
    (with bias) predicts ``num_classes`` logits, upsampled to the input size.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        width: int,
        num_classes: int,
        output_stride: int = 8,
        low_channels: int = 0,
        low_width: int = 48,
    ) -> None:
        super().__init__()
        if output_stride not in (4, 8):
            raise ValueError(f"output_stride must be 4 or 8, got {output_stride}")
        self.adapt = nn.ModuleList(ConvBNAct(c, width, 1) for c in in_channels)
        self.fuse = ConvBNAct(width * len(in_channels), width, 3)
        self.low = ConvBNAct(low_channels, low_width, 1) if output_stride == 4 else None
        self.fuse_low = ConvBNAct(width + low_width, width, 3) if output_stride == 4 else None
        self.classifier = SlimConv2d(width, num_classes, 1)

    def forward(self, features: Sequence[Tensor], x4: Tensor, out_size: Sequence[int]) -> Tensor:
        """Logits at ``out_size`` from the branch outputs (ordered by stride) and the stride-4 feature."""
        size8 = ((x4.shape[-2] + 1) // 2, (x4.shape[-1] + 1) // 2)
        y = torch.cat([resize(adapt(f), size8) for adapt, f in zip(self.adapt, features, strict=True)], 1)
        y = self.fuse(y)
        if self.low is not None and self.fuse_low is not None:
            y = self.fuse_low(torch.cat([resize(y, x4.shape[-2:]), self.low(x4)], 1))
        return resize(self.classifier(y), out_size)
