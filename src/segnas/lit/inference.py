"""Test-time inference: trained checkpoints, single scale or multi-scale with horizontal flip
(probabilities averaged)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segnas.lit.segmentation import SegmentationModule


def load_checkpoint(path: str | Path | None) -> SegmentationModule:
    """Load a ``stage=train`` or ``stage=retrain`` checkpoint on the CPU (the network config travels inside)."""
    if not path:
        raise ValueError(
            "this stage needs ckpt_path=PATH (a checkpoint written by stage=train or stage=retrain)"
        )
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={path} does not exist")
    return SegmentationModule.load_from_checkpoint(path, map_location="cpu")


def scaled_size(size: Sequence[int], scale: float, multiple: int = 1) -> tuple[int, int]:
    """``size`` times ``scale``, rounded to the nearest multiple of ``multiple`` (at least ``multiple``)."""
    height, width = (max(multiple, round(s * scale / multiple) * multiple) for s in size)
    return height, width


@torch.no_grad()
def multi_scale_probs(
    net: nn.Module,
    images: Tensor,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    size_multiple: int = 32,
) -> Tensor:
    """Class probabilities ``(B, C, H, W)`` at the input size, averaged over ``scales`` (and flips).

    Each scaled input is resized bilinearly to a multiple of ``size_multiple`` (scale 1.0 keeps the input
    as is); the network's logits are resized back, soft-maxed and averaged.
    """
    if not scales:
        raise ValueError("multi_scale_probs needs at least one scale")
    height, width = images.shape[-2:]
    total = None
    for scale in scales:
        size = (height, width) if scale == 1.0 else scaled_size((height, width), scale, size_multiple)
        x = (
            images
            if size == (height, width)
            else F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        )
        views = [(x, False), (x.flip(-1), True)] if flip else [(x, False)]
        for view, flipped in views:
            logits = net(view)
            if flipped:
                logits = logits.flip(-1)
            logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
            probs = logits.softmax(1)
            total = probs if total is None else total + probs
    return total / (len(scales) * (2 if flip else 1))
