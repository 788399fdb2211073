"""Procedurally generated street-like scenes with semantic and instance labels.

Each scene has two stuff classes (``sky`` above a random horizon, ``ground`` below) and
instances of thing classes drawn as coloured shapes with noise. The last two classes form a
*context pair*: their objects look identical and sit low in the image; only a thin signal bar
along the top edge (red or blue, far away from the objects) tells which of the two they are.
A network needs a receptive field spanning the image, e.g. global attention, to separate them.

Scenes are a pure function of ``(seed, split, index)``, so any subset is reproducible.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import albumentations as A
import numpy as np

from segnas.data.base import Sample, SegmentationDataModule, SegmentationDataset

SHAPES = ("disc", "box", "triangle", "ring", "cross")
SPLIT_OFFSETS = {"train": 0, "val": 1, "test": 2}
SIGNAL_COLOURS = ((200, 40, 40), (40, 60, 200))  # decides context class A (red) or B (blue)
CONTEXT_COLOUR = (150, 150, 150)
CONTEXT_SHAPE = "box"
SIGNAL_ROWS = 3
MIN_CLASSES, MAX_CLASSES = 4, 255  # uint8 label maps: class ids 0..254, 255 = ignore


def synthetic_class_names(num_classes: int) -> list[str]:
    """Class names: ``sky``, ``ground``, one ``<shape>_<k>`` per plain thing class, ``context_a/b``."""
    if not MIN_CLASSES <= num_classes <= MAX_CLASSES:
        raise ValueError(f"data.num_classes must be in {MIN_CLASSES}..{MAX_CLASSES} (2 stuff + 2 context classes; "
                         f"labels are uint8 with 255 = ignore), got {num_classes}")
    things = [f"{SHAPES[i % len(SHAPES)]}_{i}" for i in range(num_classes - 4)]
    return ["sky", "ground", *things, "context_a", "context_b"]


def _thing_colour(k: int, n: int) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((k + 0.5) / max(n, 1), 0.8, 0.9)
    return int(r * 255), int(g * 255), int(b * 255)


def _shape_mask(shape: str, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, r: float) -> np.ndarray:
    dy, dx = yy - cy, xx - cx
    if shape == "disc":
        return dy**2 + dx**2 <= r**2
    if shape == "box":
        return (np.abs(dy) <= r * 0.8) & (np.abs(dx) <= r)
    if shape == "triangle":
        return (dy <= r * 0.7) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    if shape == "ring":
        d2 = dy**2 + dx**2
        return (d2 <= r**2) & (d2 >= (0.55 * r) ** 2)
    if shape == "cross":
        return ((np.abs(dy) <= r * 0.3) & (np.abs(dx) <= r)) | ((np.abs(dx) <= r * 0.3) & (np.abs(dy) <= r))
    raise ValueError(f"unknown shape {shape!r}")


def render_scene(
    rng: np.random.Generator, height: int, width: int, num_classes: int, max_objects: int = 6, noise: float = 12.0
) -> Sample:
    """Draw one scene: ``image`` (HxWx3 uint8), ``mask`` (class ids) and ``instance`` (0 = stuff)."""
    n_plain = num_classes - 4
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    horizon = rng.uniform(0.3, 0.5) * height
    sky_col = np.array([110, 160, 210]) + rng.integers(-25, 26, 3)
    ground_col = np.array([90, 85, 70]) + rng.integers(-20, 21, 3)
    is_sky = yy < horizon
    image = np.where(is_sky[..., None], sky_col, ground_col).astype(np.float32)
    image += 15 * np.sin(xx / rng.uniform(4, 12) + yy / rng.uniform(6, 20))[..., None]
    mask = np.where(is_sky, 0, 1).astype(np.uint8)
    instance = np.zeros((height, width), np.int32)

    context = int(rng.integers(2))
    image[:SIGNAL_ROWS] = SIGNAL_COLOURS[context]
    mask[:SIGNAL_ROWS] = 0

    n_objects = int(rng.integers(2, max_objects + 1))
    for inst_id in range(1, n_objects + 1):
        radius = rng.uniform(0.06, 0.14) * min(height, width)
        if rng.random() < 0.4:  # a context object, low in the image, far from the signal bar
            cls = num_classes - 2 + context
            shape, colour = CONTEXT_SHAPE, np.array(CONTEXT_COLOUR, np.float32)
            cy = rng.uniform(max(0.65 * height, horizon + radius), height - radius)
        else:
            k = int(rng.integers(n_plain)) if n_plain else None
            if k is None:
                continue
            cls = 2 + k
            shape, colour = SHAPES[k % len(SHAPES)], np.array(_thing_colour(k, n_plain), np.float32)
            cy = rng.uniform(horizon * 0.5 + SIGNAL_ROWS + radius, height - radius)
        cx = rng.uniform(radius, width - radius)
        obj = _shape_mask(shape, yy, xx, cy, cx, radius)
        obj[:SIGNAL_ROWS] = False
        image[obj] = colour + rng.integers(-20, 21, 3)
        mask[obj] = cls
        instance[obj] = inst_id

    image += rng.normal(0.0, noise, image.shape)
    return {"image": np.clip(image, 0, 255).astype(np.uint8), "mask": mask, "instance": instance}


class SyntheticDataset(SegmentationDataset):
    """``num_samples`` deterministic scenes of one split."""

    def __init__(
        self,
        num_samples: int,
        height: int = 128,
        width: int = 128,
        num_classes: int = 6,
        max_objects: int = 6,
        seed: int = 0,
        split: str = "train",
        transform: A.Compose | None = None,
    ) -> None:
        super().__init__(transform)
        if split not in SPLIT_OFFSETS:
            raise ValueError(f"synthetic split must be one of {sorted(SPLIT_OFFSETS)}, got {split!r}")
        synthetic_class_names(num_classes)
        self.num_samples = num_samples
        self.height, self.width = height, width
        self.num_classes = num_classes
        self.max_objects = max_objects
        self.seed = seed
        self.split = split

    def __len__(self) -> int:
        return self.num_samples

    def load(self, index: int) -> Sample:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        rng = np.random.default_rng([self.seed, SPLIT_OFFSETS[self.split], index])
        return render_scene(rng, self.height, self.width, self.num_classes, self.max_objects)


class SyntheticDataModule(SegmentationDataModule):
    """``data=synthetic``: the default dataset, small enough to train on a laptop CPU in minutes."""

    def __init__(
        self,
        num_train: int = 320,
        num_val: int = 64,
        height: int = 128,
        width: int = 128,
        num_classes: int = 6,
        max_objects: int = 6,
        data_seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.class_names = synthetic_class_names(num_classes)
        self.num_classes = num_classes
        self.sizes = {"train": num_train, "val": num_val, "test": num_val}
        self.scene = {"height": height, "width": width, "num_classes": num_classes, "max_objects": max_objects}
        self.data_seed = data_seed

    @property
    def thing_classes(self) -> Sequence[int]:
        """Class ids that carry instances (everything but ``sky`` and ``ground``)."""
        return list(range(2, self.num_classes))

    def build_dataset(self, split: str, transform: A.Compose | None) -> SyntheticDataset:
        if split not in self.sizes:
            raise ValueError(f"synthetic split must be one of {sorted(self.sizes)}, got {split!r}")
        return SyntheticDataset(self.sizes[split], seed=self.data_seed, split=split, transform=transform, **self.scene)
