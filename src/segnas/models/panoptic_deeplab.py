"""Panoptic-DeepLab-style network on a searched HyCTAS backbone, without ASPP (paper §4.3, Table 4/6).

The backbone is the genotype's stem and cells. Two decoders share its outputs, as in Panoptic-DeepLab:
a semantic decoder (the HyCTAS aggregation head: branch outputs fused at stride 8, then with the stem's
stride-4 feature, then a classifier) and an instance decoder of the same structure whose stride-4 feature
feeds a center head (1 channel) and an offset head (2 channels: dy, dx in input pixels). The heads
predict at stride 4 and are upsampled bilinearly; offsets are multiplied by the upsampling factor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from segnas.nn import AggregationHead, ConvBNAct
from segnas.nn.heads import resize
from segnas.spaces import as_genotype
from segnas.spaces.hyctas import HyCTASGenotype, HyCTASNet
from segnas.spaces.hyctas.aux import backbone_features


class InstanceDecoder(nn.Module):
    """Branch outputs -> ``width`` channels at stride 8 (1x1 adapt, concat, 3x3 fuse) -> concat with the
    projected stride-4 feature (``low_width`` channels) -> 3x3 fuse: ``width`` channels at stride 4."""

    def __init__(
        self, in_channels: Sequence[int], width: int, low_channels: int, low_width: int = 32
    ) -> None:
        super().__init__()
        self.adapt = nn.ModuleList(ConvBNAct(c, width, 1) for c in in_channels)
        self.fuse = ConvBNAct(width * len(in_channels), width, 3)
        self.low = ConvBNAct(low_channels, low_width, 1)
        self.fuse_low = ConvBNAct(width + low_width, width, 3)

    def forward(self, features: Sequence[Tensor], x4: Tensor) -> Tensor:
        size8 = ((x4.shape[-2] + 1) // 2, (x4.shape[-1] + 1) // 2)
        y = self.fuse(torch.cat([resize(a(f), size8) for a, f in zip(self.adapt, features, strict=True)], 1))
        return self.fuse_low(torch.cat([resize(y, x4.shape[-2:]), self.low(x4)], 1))


class PredictionHead(nn.Module):
    """3x3 conv-BN-ReLU to ``width`` channels, then a 1x1 predictor with bias, initialised N(0, 0.001) and 0
    as in Panoptic-DeepLab (so the first center predictions are near 0 and the x200 loss starts small)."""

    def __init__(self, in_channels: int, width: int, out_channels: int) -> None:
        super().__init__()
        self.conv = ConvBNAct(in_channels, width, 3)
        self.predictor = nn.Conv2d(width, out_channels, 1)
        nn.init.normal_(self.predictor.weight, std=0.001)
        nn.init.zeros_(self.predictor.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.predictor(self.conv(x))


class PanopticHyCTAS(nn.Module):
    """HyCTAS backbone + semantic decoder + instance decoder (center and offset heads).

    ``forward`` returns ``{"semantic": (B, C, H, W) logits, "center": (B, 1, H, W) heatmap,
    "offset": (B, 2, H, W) (dy, dx) in pixels}`` at the input size.
    """

    def __init__(
        self,
        genotype: HyCTASGenotype,
        num_classes: int,
        filter_multiplier: int = 12,
        instance_width: int | None = None,
        head_width: int = 32,
    ) -> None:
        super().__init__()
        trunk = HyCTASNet(genotype, num_classes, filter_multiplier, output_stride=4)
        self.genotype = genotype
        self.plan, self.stem, self.cells, self.fuse = trunk.plan, trunk.stem, trunk.cells, trunk.fuse
        width = self.stem.out_channels
        self.semantic_head = AggregationHead(
            self.plan.out_channels, width, num_classes, 4, low_channels=width
        )
        instance_width = instance_width or width // 2
        self.instance_decoder = InstanceDecoder(self.plan.out_channels, instance_width, width)
        self.center_head = PredictionHead(instance_width, head_width, 1)
        self.offset_head = PredictionHead(instance_width, head_width, 2)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        size = x.shape[-2:]
        x4, feats = backbone_features(self, x)
        instance = self.instance_decoder(feats, x4)
        scale = torch.tensor([size[0] / x4.shape[-2], size[1] / x4.shape[-1]], dtype=x.dtype, device=x.device)
        return {
            "semantic": self.semantic_head(feats, x4, size),
            "center": resize(self.center_head(instance), size),
            "offset": resize(self.offset_head(instance), size) * scale.view(1, 2, 1, 1),
        }


def build_panoptic_hyctas(
    genotype: str | Mapping[str, Any] | HyCTASGenotype,
    num_classes: int = 19,
    filter_multiplier: int = 12,
    instance_width: int | None = None,
    head_width: int = 32,
) -> PanopticHyCTAS:
    """:class:`PanopticHyCTAS` from a genotype (path, ``pkg://NAME`` or dict), for ``_target_`` configs."""
    genotype = as_genotype(genotype, "hyctas")
    return PanopticHyCTAS(genotype, num_classes, filter_multiplier, instance_width, head_width)
