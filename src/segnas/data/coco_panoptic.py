"""COCO panoptic (133 categories: 80 things + 53 stuff) and the COCO-panoptic-format dataset it shares
with Cityscapes panoptic.

Samples hold ``mask`` (contiguous train ids in ascending category-id order, 255 = void) and
``instance`` (1, 2, ... per non-crowd thing segment, 0 on stuff, void and crowd), so a thing pixel with
instance 0 is a crowd region: :func:`segnas.data.panoptic_targets.segments_from_labels` turns a
(cropped) sample back into segments for the panoptic targets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np

from segnas.data.base import Sample, SegmentationDataModule, SegmentationDataset, read_image
from segnas.data.panoptic_targets import contiguous_categories
from segnas.metrics.panoptic import read_panoptic_png

COCO_LAYOUT = """\
expected the COCO panoptic layout:
  ROOT/annotations/panoptic_{split}2017.json
  ROOT/annotations/panoptic_{split}2017/*.png   (or ROOT/panoptic_{split}2017/*.png, as detectron2 keeps it)
  ROOT/{split}2017/*.jpg
PNG segment id = R + 256 G + 256^2 B (0 = void), listed in the JSON's segments_info"""


@dataclass(frozen=True)
class PanopticRecord:
    """One image of a COCO-panoptic-format dataset."""

    image_id: Any
    image: Path
    panoptic: Path
    segments: tuple[Mapping[str, Any], ...]


def load_panoptic_json(path: Path, layout: str) -> dict[str, Any]:
    """Read a COCO panoptic JSON; a missing file or key raises naming the file and the expected layout."""
    if not path.is_file():
        raise FileNotFoundError(f"panoptic annotation file {path} does not exist; {layout}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); {layout}") from err
    missing = [key for key in ("images", "annotations", "categories") if key not in data]
    if missing:
        raise KeyError(f"{path} lacks the keys {missing}; {layout}")
    return data


class PanopticDataset(SegmentationDataset):
    """Images with COCO-format panoptic PNGs, loaded as train-id ``mask`` plus ``instance`` maps."""

    def __init__(self, records: Sequence[PanopticRecord], category_ids: Sequence[int], thing_ids: frozenset[int],
                 transform: A.Compose | None = None, image_scale: float = 1.0, ignore_index: int = 255) -> None:
        super().__init__(transform, image_scale)
        self.records = list(records)
        self.to_train = {int(c): i for i, c in enumerate(category_ids)}
        self.thing_ids = thing_ids
        self.ignore_index = ignore_index

    def __len__(self) -> int:
        return len(self.records)

    def files(self, index: int) -> tuple[Path, ...]:
        return self.records[index].image, self.records[index].panoptic

    def annotation(self, index: int) -> Any:
        return [dict(segment) for segment in self.records[index].segments]

    def load(self, index: int) -> Sample:
        rec = self.records[index]
        image = read_image(rec.image)
        ids = read_panoptic_png(rec.panoptic)
        if ids.shape != image.shape[:2]:
            raise ValueError(f"panoptic PNG {rec.panoptic} is {ids.shape[::-1]} but image {rec.image} is "
                             f"{image.shape[1::-1]} (W x H)")
        uniq, inverse = np.unique(ids, return_inverse=True)
        position = {int(u): i for i, u in enumerate(uniq)}
        listed = {int(s["id"]) for s in rec.segments}
        unlisted = sorted(set(position) - listed - {0})
        if unlisted:
            raise ValueError(f"panoptic PNG {rec.panoptic} holds segment ids {unlisted} missing from segments_info")
        semantic = np.full(len(uniq), self.ignore_index, dtype=np.uint8)
        instance = np.zeros(len(uniq), dtype=np.uint16)
        count = 0
        for seg in rec.segments:
            category = int(seg["category_id"])
            if category not in self.to_train:
                raise KeyError(f"segment {seg['id']} of {rec.panoptic} has unknown category_id {category}")
            if int(seg["id"]) not in position:
                raise ValueError(f"segment {seg['id']} of image {rec.image_id!r} is not in {rec.panoptic}")
            i, train_id = position[int(seg["id"])], self.to_train[category]
            semantic[i] = train_id
            if train_id in self.thing_ids and not seg.get("iscrowd", 0):
                count += 1
                instance[i] = count
        inverse = inverse.reshape(ids.shape)
        return {"image": image, "mask": semantic[inverse], "instance": instance[inverse]}


def coco_split_name(split: str) -> str:
    """``train``/``val`` -> ``train2017``/``val2017`` (names with a year pass through)."""
    return split if split[-4:].isdigit() else f"{split}2017"


def coco_panoptic_paths(root: Path, split: str) -> tuple[Path, Path]:
    """The panoptic JSON and PNG folder of ``split`` under ``root``."""
    name = coco_split_name(split)
    json_path = root / "annotations" / f"panoptic_{name}.json"
    for folder in (root / "annotations" / f"panoptic_{name}", root / f"panoptic_{name}"):
        if folder.is_dir():
            return json_path, folder
    layout = COCO_LAYOUT.replace("ROOT", str(root))
    raise FileNotFoundError(f"no panoptic PNG folder for split {split!r} under {root}; {layout}")


def coco_panoptic_records(root: Path, split: str) -> tuple[list[PanopticRecord], list[dict[str, Any]]]:
    """Records and categories of a COCO panoptic split; missing images or PNGs raise naming the file."""
    layout = COCO_LAYOUT.replace("ROOT", str(root))
    json_path, png_dir = coco_panoptic_paths(root, split)
    data = load_panoptic_json(json_path, layout)
    images = {img["id"]: img for img in data["images"]}
    image_dir = root / coco_split_name(split)
    records = []
    for ann in data["annotations"]:
        if ann["image_id"] not in images:
            raise KeyError(f"{json_path}: annotation {ann['file_name']} has image_id {ann['image_id']} "
                           f"not listed in 'images'")
        record = PanopticRecord(ann["image_id"], image_dir / images[ann["image_id"]]["file_name"],
                                png_dir / ann["file_name"], tuple(ann["segments_info"]))
        for path in (record.image, record.panoptic):
            if not path.is_file():
                raise FileNotFoundError(f"{path} (listed in {json_path}) does not exist; {layout}")
        records.append(record)
    if not records:
        raise FileNotFoundError(f"{json_path} lists no annotations; {layout}")
    return records, data["categories"]


class COCOPanopticDataModule(SegmentationDataModule):
    """``data=coco_panoptic``: ``data.root`` holds ``annotations/`` and the image folders.

    Categories are read from the JSON of the validation split (or the training split if that is all there is).
    """

    def __init__(self, root: str | Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        layout = COCO_LAYOUT.replace("ROOT", str(self.root))
        if not self.root.is_dir():
            raise FileNotFoundError(f"COCO root {self.root} (data.root) does not exist; {layout}")
        candidates = [self.root / "annotations" / f"panoptic_{coco_split_name(s)}.json"
                      for s in (self.val_split, self.train_split)]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"none of {[str(p) for p in candidates]} exists; {layout}")
        self.categories = sorted(load_panoptic_json(found, layout)["categories"], key=lambda c: int(c["id"]))
        self.category_ids, self.thing_ids = contiguous_categories(self.categories)
        self.num_classes = len(self.categories)
        self.class_names = [c["name"] for c in self.categories]

    def build_dataset(self, split: str, transform: A.Compose | None) -> PanopticDataset:
        records, categories = coco_panoptic_records(self.root, split)
        if sorted(int(c["id"]) for c in categories) != self.category_ids:
            raise ValueError(f"the categories of split {split!r} differ from those of the other split")
        return PanopticDataset(records, self.category_ids, self.thing_ids, transform, self.image_scale,
                               self.ignore_index)

    def panoptic_files(self, split: str) -> tuple[Path, Path]:
        """Ground-truth JSON and PNG folder of ``split``, for :func:`segnas.metrics.pq_compute`."""
        return coco_panoptic_paths(self.root, split)

    def metadata(self) -> dict[str, Any]:
        """Base metadata plus ``thing_ids`` (train ids), ``category_ids`` (train id -> category id), ``categories``."""
        return {**super().metadata(), "thing_ids": sorted(self.thing_ids), "category_ids": self.category_ids,
                "categories": self.categories}
