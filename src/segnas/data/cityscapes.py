"""Cityscapes (gtFine): 19 train classes mapped from ``labelIds`` in code, and the cityscapesScripts
panoptic format, created from the ``instanceIds`` files when missing.

``python -m segnas.data.cityscapes ROOT [--splits train val]`` writes
``ROOT/gtFine/cityscapes_panoptic_{split}.json`` and ``ROOT/gtFine/cityscapes_panoptic_{split}/``
exactly as cityscapesScripts' ``createPanopticImgs.py`` does (label ids as category ids).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
from PIL import Image
from scipy.ndimage import find_objects

from segnas.data.base import FolderDataModule, Sample, SegmentationDataset, read_image, read_label
from segnas.data.coco_panoptic import PanopticDataset, PanopticRecord, load_panoptic_json
from segnas.metrics.panoptic import id2rgb

# (name, label id, category, colour, has instances) of the 19 evaluated classes, in train-id order
CITYSCAPES_EVAL_LABELS: tuple[tuple[str, int, str, tuple[int, int, int], bool], ...] = (
    ("road", 7, "flat", (128, 64, 128), False),
    ("sidewalk", 8, "flat", (244, 35, 232), False),
    ("building", 11, "construction", (70, 70, 70), False),
    ("wall", 12, "construction", (102, 102, 156), False),
    ("fence", 13, "construction", (190, 153, 153), False),
    ("pole", 17, "object", (153, 153, 153), False),
    ("traffic light", 19, "object", (250, 170, 30), False),
    ("traffic sign", 20, "object", (220, 220, 0), False),
    ("vegetation", 21, "nature", (107, 142, 35), False),
    ("terrain", 22, "nature", (152, 251, 152), False),
    ("sky", 23, "sky", (70, 130, 180), False),
    ("person", 24, "human", (220, 20, 60), True),
    ("rider", 25, "human", (255, 0, 0), True),
    ("car", 26, "vehicle", (0, 0, 142), True),
    ("truck", 27, "vehicle", (0, 0, 70), True),
    ("bus", 28, "vehicle", (0, 60, 100), True),
    ("train", 31, "vehicle", (0, 80, 100), True),
    ("motorcycle", 32, "vehicle", (0, 0, 230), True),
    ("bicycle", 33, "vehicle", (119, 11, 32), True),
)
CITYSCAPES_CLASSES = tuple(label[0] for label in CITYSCAPES_EVAL_LABELS)
CITYSCAPES_LABEL_IDS = [label[1] for label in CITYSCAPES_EVAL_LABELS]
CITYSCAPES_THING_IDS = frozenset(i for i, label in enumerate(CITYSCAPES_EVAL_LABELS) if label[4])
CITYSCAPES_LAYOUT = """\
expected the Cityscapes layout:
  ROOT/leftImg8bit/{split}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
  ROOT/gtFine/{split}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png      (labelTrainIds files are not needed)
  ROOT/gtFine/{split}/<city>/<city>_<seq>_<frame>_gtFine_instanceIds.png   (panoptic: to create the files below)
  ROOT/gtFine/cityscapes_panoptic_{split}.json + ROOT/gtFine/cityscapes_panoptic_{split}/*_gtFine_panoptic.png
    (panoptic; created by `python -m segnas.data.cityscapes ROOT` when missing)"""


def _layout(root: Path) -> str:
    return CITYSCAPES_LAYOUT.replace("ROOT", str(root))


def label_to_train_lut(ignore_index: int = 255) -> np.ndarray:
    """A 256-entry table from Cityscapes label ids (0-33) to train ids (0-18); the rest -> ``ignore_index``."""
    lut = np.full(256, ignore_index, dtype=np.uint8)
    lut[CITYSCAPES_LABEL_IDS] = np.arange(len(CITYSCAPES_LABEL_IDS))
    return lut


def cityscapes_categories() -> list[dict[str, Any]]:
    """COCO-style categories of the 19 evaluated classes with label ids as ids (as createPanopticImgs)."""
    return [{"id": label_id, "name": name, "color": list(color), "supercategory": category, "isthing": int(thing)}
            for name, label_id, category, color, thing in CITYSCAPES_EVAL_LABELS]


def train_to_label_ids(train_ids: np.ndarray, void_id: int = 0) -> np.ndarray:
    """Cityscapes label ids (uint8, what the benchmark scores) of a train-id map (0..18; other values up to
    255, e.g. the ignore index, -> ``void_id``, 0 = "unlabeled"); the inverse of :func:`label_to_train_lut`."""
    train_ids = np.asarray(train_ids)
    if train_ids.size and (train_ids.min() < 0 or train_ids.max() > 255):
        raise ValueError(f"train ids must lie in 0..255, got [{train_ids.min()}, {train_ids.max()}]")
    lut = np.full(256, void_id, dtype=np.uint8)
    lut[: len(CITYSCAPES_LABEL_IDS)] = CITYSCAPES_LABEL_IDS
    return lut[train_ids]


def list_images(root: Path, split: str) -> list[Path]:
    """``ROOT/leftImg8bit/{split}/<city>/*_leftImg8bit.png``, sorted; a missing folder or none raises."""
    image_dir = root / "leftImg8bit" / split
    if not image_dir.is_dir():
        raise FileNotFoundError(f"Cityscapes folder {image_dir} does not exist; {_layout(root)}")
    images = sorted(image_dir.glob("*/*_leftImg8bit.png"))
    if not images:
        raise FileNotFoundError(f"no */*_leftImg8bit.png images in {image_dir}; {_layout(root)}")
    return images


def list_frames(root: Path, split: str, gt_suffix: str = "labelIds") -> list[tuple[Path, Path]]:
    """``(image, gtFine_<gt_suffix>.png)`` pairs of ``split``; missing folders or files raise naming them."""
    images = list_images(root, split)
    gt_dir = root / "gtFine" / split
    if not gt_dir.is_dir():
        raise FileNotFoundError(f"Cityscapes folder {gt_dir} does not exist; {_layout(root)}")
    pairs = []
    for image in images:
        gt = gt_dir / image.parent.name / image.name.replace("_leftImg8bit.png", f"_gtFine_{gt_suffix}.png")
        if not gt.is_file():
            raise FileNotFoundError(f"image {image} has no ground truth: expected {gt}; {_layout(root)}")
        pairs.append((image, gt))
    return pairs


class CityscapesDataset(SegmentationDataset):
    """Semantic Cityscapes: ``labelIds`` mapped to the 19 train ids (255 = ignore)."""

    def __init__(self, root: str | Path, split: str = "train", transform: A.Compose | None = None,
                 image_scale: float = 1.0, ignore_index: int = 255) -> None:
        super().__init__(transform, image_scale)
        self.pairs = list_frames(Path(root), split)
        self.lut = label_to_train_lut(ignore_index)

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> Sample:
        image_path, label_path = self.pairs[index]
        image = read_image(image_path)
        label = read_label(label_path)
        if label.shape != image.shape[:2]:
            raise ValueError(f"label {label_path} has size {label.shape[::-1]} but image {image_path} has "
                             f"{image.shape[1::-1]}")
        if label.max() > 33:
            raise ValueError(f"label {label_path} holds values up to {label.max()}; labelIds lie in 0..33")
        return {"image": image, "mask": self.lut[label]}


class CityscapesDataModule(FolderDataModule):
    """``data=cityscapes``: ``data.root`` holds ``leftImg8bit/`` and ``gtFine/``."""

    dataset_name = "Cityscapes"
    dataset_cls = CityscapesDataset
    num_classes = len(CITYSCAPES_CLASSES)
    class_names = CITYSCAPES_CLASSES

    def layout(self) -> str:
        return _layout(self.root)


def panoptic_paths(root: Path, split: str) -> tuple[Path, Path]:
    """``gtFine/cityscapes_panoptic_{split}.json`` and its PNG folder."""
    return root / "gtFine" / f"cityscapes_panoptic_{split}.json", root / "gtFine" / f"cityscapes_panoptic_{split}"


def create_panoptic(root: str | Path, split: str) -> Path:
    """Convert ``gtFine/{split}/*/*_instanceIds.png`` to the COCO panoptic format; returns the JSON path.

    As cityscapesScripts: ids >= 1000 are ``label * 1000 + k`` (not crowd), ids < 1000 are the label id
    (crowd for thing classes), classes ignored in evaluation become void.
    """
    root = Path(root)
    json_path, png_dir = panoptic_paths(root, split)
    files = sorted((root / "gtFine" / split).glob("*/*_gtFine_instanceIds.png"))
    if not files:
        raise FileNotFoundError(f"no */*_gtFine_instanceIds.png files in {root / 'gtFine' / split}; {_layout(root)}")
    png_dir.mkdir(parents=True, exist_ok=True)
    evaluated = {label[1]: label[4] for label in CITYSCAPES_EVAL_LABELS}
    images, annotations = [], []
    for path in files:
        original = read_label(path).astype(np.int64)
        image_id = path.name.replace("_gtFine_instanceIds.png", "")
        out_name = path.name.replace("_instanceIds.png", "_panoptic.png")
        values, inverse, areas = np.unique(original, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(original.shape)
        boxes = find_objects(inverse + 1)
        keep = np.zeros(len(values), dtype=bool)
        segments = []
        for i, value in enumerate(values.tolist()):
            label_id = value if value < 1000 else value // 1000
            if label_id not in evaluated:
                continue
            keep[i] = True
            rows, cols = boxes[i]
            segments.append({"id": value, "category_id": label_id, "area": int(areas[i]),
                             "bbox": [cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start],
                             "iscrowd": int(value < 1000 and evaluated[label_id])})
        Image.fromarray(id2rgb(np.where(keep[inverse], original, 0))).save(png_dir / out_name)
        images.append({"id": image_id, "width": original.shape[1], "height": original.shape[0],
                       "file_name": f"{image_id}_leftImg8bit.png"})
        annotations.append({"image_id": image_id, "file_name": out_name, "segments_info": segments})
    json_path.write_text(json.dumps({"images": images, "annotations": annotations,
                                     "categories": cityscapes_categories()}))
    return json_path


def cityscapes_panoptic_records(root: Path, split: str) -> list[PanopticRecord]:
    """Records of ``split`` from ``gtFine/cityscapes_panoptic_{split}.json``; missing files raise naming them."""
    json_path, png_dir = panoptic_paths(root, split)
    data = load_panoptic_json(json_path, _layout(root))
    known = set(CITYSCAPES_LABEL_IDS)
    if {int(c["id"]) for c in data["categories"]} != known:
        raise ValueError(f"{json_path} must use the 19 evaluated label ids {sorted(known)} as category ids "
                         f"(a --use-train-id file is not supported)")
    images = {img["id"]: img for img in data["images"]}
    records = []
    for ann in data["annotations"]:
        image_id = ann["image_id"]
        if image_id not in images:
            raise KeyError(f"{json_path}: annotation {ann['file_name']} has image_id {image_id!r} not in 'images'")
        city = str(image_id).split("_")[0]
        image = root / "leftImg8bit" / split / city / images[image_id]["file_name"]
        record = PanopticRecord(image_id, image, png_dir / ann["file_name"], tuple(ann["segments_info"]))
        for path in (record.image, record.panoptic):
            if not path.is_file():
                raise FileNotFoundError(f"{path} (listed in {json_path}) does not exist; {_layout(root)}")
        records.append(record)
    return records


class CityscapesPanopticDataModule(CityscapesDataModule):
    """``data=cityscapes_panoptic``: COCO-format panoptic ground truth, created from ``instanceIds`` if missing."""

    thing_ids = CITYSCAPES_THING_IDS
    category_ids = CITYSCAPES_LABEL_IDS

    def prepare_data(self) -> None:
        """Create the panoptic JSON + PNGs of the train and val splits that have ``gtFine`` but no JSON yet."""
        for split in (self.train_split, self.val_split):
            if (self.root / "gtFine" / split).is_dir() and not panoptic_paths(self.root, split)[0].is_file():
                create_panoptic(self.root, split)

    def build_dataset(self, split: str, transform: A.Compose | None) -> PanopticDataset:
        return PanopticDataset(cityscapes_panoptic_records(self.root, split), self.category_ids, self.thing_ids,
                               transform, self.image_scale, self.ignore_index)

    def panoptic_files(self, split: str) -> tuple[Path, Path]:
        """Ground-truth JSON and PNG folder of ``split``, for :func:`segnas.metrics.pq_compute`."""
        return panoptic_paths(self.root, split)

    def metadata(self) -> dict[str, Any]:
        """Base metadata plus ``thing_ids`` (train ids), ``category_ids`` (train id -> label id), ``categories``."""
        return {**super().metadata(), "thing_ids": sorted(self.thing_ids), "category_ids": self.category_ids,
                "categories": cityscapes_categories()}


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: create the Cityscapes panoptic files of the given splits."""
    parser = argparse.ArgumentParser(description="Create gtFine/cityscapes_panoptic_{split}.json + PNGs")
    parser.add_argument("root", type=Path, help="Cityscapes root holding leftImg8bit/ and gtFine/")
    parser.add_argument("--splits", nargs="+", default=["train", "val"])
    args = parser.parse_args(argv)
    for split in args.splits:
        print(f"wrote {create_panoptic(args.root, split)}")


if __name__ == "__main__":
    main()
