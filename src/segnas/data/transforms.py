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
) -> A.Compose:
    """Random scale, pad (image 0, label ``ignore_index``), random crop, flip, photometric jitter, normalise.

    ``crop_size`` is ``(height, width)``; ``scale_range`` the min/max resize factor; ``jitter`` the colour
    jitter strength (brightness, contrast, saturation; hue a quarter of it), 0 for none (Panoptic-DeepLab).
    """
    height, width = (int(s) for s in crop_size)
    low, high = scale_range
    steps: list[A.BasicTransform] = [
        A.RandomScale(scale_limit=(low - 1.0, high - 1.0), interpolation=cv2.INTER_LINEAR, p=1.0),
        A.PadIfNeeded(height, width, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=ignore_index),
        A.RandomCrop(height, width),
    ]
    if hflip:
        steps.append(A.HorizontalFlip(p=0.5))
    if jitter > 0:
        steps.append(A.ColorJitter(jitter, jitter, jitter, min(jitter / 4, 0.5), p=0.8))
    steps.append(A.Normalize(mean=mean, std=std))
    return A.Compose(steps, additional_targets={"instance": "mask"})


def eval_transform(
    mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> A.Compose:
    """Normalisation only: evaluation runs on the whole (optionally pre-scaled) image."""
    return A.Compose([A.Normalize(mean=mean, std=std)], additional_targets={"instance": "mask"})
