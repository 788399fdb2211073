"""ADE20K in the SceneParsing (``ADEChallengeData2016``) layout: 150 classes, annotation 0 -> ignore.

Annotation PNGs hold 0 ("other", ignored) and 1..150; train ids are the value minus 1 (mmseg's
``reduce_zero_label``), applied exactly once, here.
"""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import numpy as np

from segnas.data.base import FolderDataModule, Sample, SegmentationDataset, read_image, read_label

# first name of each class in objectInfo150.txt order (annotation value = index + 1)
ADE20K_CLASSES = (
    'wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road', 'bed', 'windowpane', 'grass',
    'cabinet', 'sidewalk', 'person', 'earth', 'door', 'table', 'mountain', 'plant', 'curtain', 'chair',
    'car', 'water', 'painting', 'sofa', 'shelf', 'house', 'sea', 'mirror', 'rug', 'field', 'armchair',
    'seat', 'fence', 'desk', 'rock', 'wardrobe', 'lamp', 'bathtub', 'railing', 'cushion', 'base', 'box',
    'column', 'signboard', 'chest of drawers', 'counter', 'sand', 'sink', 'skyscraper', 'fireplace',
    'refrigerator', 'grandstand', 'path', 'stairs', 'runway', 'case', 'pool table', 'pillow',
    'screen door', 'stairway', 'river', 'bridge', 'bookcase', 'blind', 'coffee table', 'toilet',
    'flower', 'book', 'hill', 'bench', 'countertop', 'stove', 'palm', 'kitchen island', 'computer',
    'swivel chair', 'boat', 'bar', 'arcade machine', 'hovel', 'bus', 'towel', 'light', 'truck', 'tower',
    'chandelier', 'awning', 'streetlight', 'booth', 'television', 'airplane', 'dirt track', 'apparel',
    'pole', 'land', 'bannister', 'escalator', 'ottoman', 'bottle', 'buffet', 'poster', 'stage', 'van',
    'ship', 'fountain', 'conveyer belt', 'canopy', 'washer', 'plaything', 'swimming pool', 'stool',
    'barrel', 'basket', 'waterfall', 'tent', 'bag', 'minibike', 'cradle', 'oven', 'ball', 'food',
    'step', 'tank', 'trade name', 'microwave', 'pot', 'animal', 'bicycle', 'lake', 'dishwasher',
    'screen', 'blanket', 'sculpture', 'hood', 'sconce', 'vase', 'traffic light', 'tray', 'ashcan',
    'fan', 'pier', 'crt screen', 'plate', 'monitor', 'bulletin board', 'shower', 'radiator', 'glass',
    'clock', 'flag',
)
ADE20K_SPLITS = {"train": "training", "val": "validation"}
ADE20K_LAYOUT = """\
expected the ADE20K SceneParsing layout:
  ROOT/images/{training,validation}/*.jpg
  ROOT/annotations/{training,validation}/*.png   (same stem; 8-bit, 0 = other/ignored, 1..150 = classes)
ROOT is the ADEChallengeData2016 folder; splits train/val name the training/validation folders"""


def _layout(root: Path) -> str:
    return ADE20K_LAYOUT.replace("ROOT", str(root))


def reduce_zero_label(label: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """ADE annotation values to train ids: 0 -> ``ignore_index``, k -> k - 1."""
    return np.where(label == 0, ignore_index, label.astype(np.int64) - 1).astype(np.uint8)


def list_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    """``(image, annotation)`` pairs of ``split`` (``train``/``val`` or the folder names)."""
    folder = ADE20K_SPLITS.get(split, split)
    image_dir, label_dir = root / "images" / folder, root / "annotations" / folder
    for path in (image_dir, label_dir):
        if not path.is_dir():
            raise FileNotFoundError(f"ADE20K folder {path} does not exist; {_layout(root)}")
    images = sorted(image_dir.glob("*.jpg"))
    if not images:
        raise FileNotFoundError(f"no .jpg images in {image_dir}; {_layout(root)}")
    pairs = []
    for image in images:
        label = label_dir / f"{image.stem}.png"
        if not label.is_file():
            raise FileNotFoundError(f"image {image} has no annotation: expected {label}; {_layout(root)}")
        pairs.append((image, label))
    return pairs


class ADE20KDataset(SegmentationDataset):
    """One split of ADE20K SceneParsing with train ids 0..149 and 255 = ignore."""

    def __init__(self, root: str | Path, split: str = "train", transform: A.Compose | None = None,
                 image_scale: float = 1.0, ignore_index: int = 255) -> None:
        super().__init__(transform, image_scale)
        self.pairs = list_pairs(Path(root), split)
        self.ignore_index = ignore_index

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> Sample:
        image_path, label_path = self.pairs[index]
        image = read_image(image_path)
        label = read_label(label_path)
        if label.shape != image.shape[:2]:
            raise ValueError(f"annotation {label_path} has size {label.shape[::-1]} but image {image_path} has "
                             f"{image.shape[1::-1]}")
        if label.max() > len(ADE20K_CLASSES):
            raise ValueError(f"annotation {label_path} holds values up to {label.max()}; expected 0..150")
        return {"image": image, "mask": reduce_zero_label(label, self.ignore_index)}


class ADE20KDataModule(FolderDataModule):
    """``data=ade20k``: ``data.root`` is the ``ADEChallengeData2016`` folder."""

    dataset_name = "ADE20K"
    dataset_cls = ADE20KDataset
    num_classes = len(ADE20K_CLASSES)
    class_names = ADE20K_CLASSES

    def layout(self) -> str:
        return _layout(self.root)
