"""albumentations pipelines for training and evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def train_transform(
    crop_size: Sequence[int],
    scale_range: Sequence[float] = (0.5, 2.0),
    hflip: bool = True,
    jitter: float = 0.2,
    ignore_index: int = 255,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    scales: Sequence[float] | None = None,
) -> A.Compose:
    """Random scale, pad (image 0, label ``ignore_index``), random crop, flip, photometric jitter, normalise.

    ``crop_size`` is ``(height, width)``; ``scale_range`` the min/max resize factor (uniform in between), or
    ``scales`` a set of factors drawn with equal probability (FasterSeg: 0.75, 1, 1.25); ``jitter`` the colour
    jitter strength (brightness, contrast, saturation; hue a quarter of it), 0 for none (Panoptic-DeepLab).
    """
    height, width = (int(s) for s in crop_size)
    steps: list[A.BasicTransform] = [
        _random_scale(scale_range, scales),
        A.PadIfNeeded(height, width, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=ignore_index),
        A.RandomCrop(height, width),
    ]
    if hflip:
        steps.append(A.HorizontalFlip(p=0.5))
    if jitter > 0:
        steps.append(A.ColorJitter(jitter, jitter, jitter, min(jitter / 4, 0.5), p=0.8))
    steps.append(A.Normalize(mean=mean, std=std))
    return A.Compose(steps, additional_targets={"instance": "mask"})


def _random_scale(scale_range: Sequence[float], scales: Sequence[float] | None) -> A.BasicTransform:
    """A resize by a factor uniform in ``scale_range`` or, given ``scales``, one of them (equally likely)."""
    if not scales:
        low, high = scale_range
        return A.RandomScale(scale_limit=(low - 1.0, high - 1.0), interpolation=cv2.INTER_LINEAR, p=1.0)
    if min(scales) <= 0:
        raise ValueError(f"data.scales must be positive factors, got {list(scales)}")
    return A.OneOf([A.RandomScale(scale_limit=(s - 1.0, s - 1.0), interpolation=cv2.INTER_LINEAR, p=1.0)
                    for s in scales], p=1.0)


def eval_transform(
    mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> A.Compose:
    """Normalisation only: evaluation runs on the whole (optionally pre-scaled) image."""
    return A.Compose([A.Normalize(mean=mean, std=std)], additional_targets={"instance": "mask"})
