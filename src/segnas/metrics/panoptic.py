"""Panoptic quality (PQ, SQ, RQ) with exactly the rules of panopticapi's ``pq_compute``.

Per image, ground-truth and predicted segments of the same category match when their IoU is > 0.5,
where the union leaves out the prediction's pixels on ground-truth VOID (id 0). Unmatched non-crowd
ground truth counts as a false negative; crowd ground truth never does. An unmatched prediction is a
false positive unless more than half of it lies on VOID plus the crowd region of its own category.
Per category: PQ = sum IoU / (TP + FP/2 + FN/2), SQ = sum IoU / TP, RQ = TP / (TP + FP/2 + FN/2);
categories with TP + FP + FN = 0 are left out of the averages.

Differences from panopticapi; none changes a result on valid COCO or Cityscapes ground truth:
ground-truth PNGs are checked as strictly as predictions (an id in the PNG but not in the JSON is an
error, not skipped); ground-truth areas are counted from the PNG (panopticapi reads the JSON ``area``);
all crowd segments of a category in an image count (panopticapi keeps the last; COCO has at most one);
an empty average gives 0 with ``n = 0`` instead of raising ``ZeroDivisionError``; ``per_class`` lists
only evaluated categories (panopticapi adds zeros for the others), with their tp/fp/fn counts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

VOID = 0
OFFSET = 256**3  # segment ids must fit in 24 bits (three 8-bit channels)
_FIELDS = ("iou", "tp", "fp", "fn")


def rgb2id(color: np.ndarray) -> np.ndarray:
    """Decode an ``(H, W, 3)`` panoptic PNG array to segment ids: ``R + 256 G + 256^2 B`` (int64)."""
    color = np.asarray(color)
    if color.ndim != 3 or color.shape[2] != 3:
        raise ValueError(f"rgb2id expects an (H, W, 3) array, got shape {color.shape}")
    color = color.astype(np.int64)
    return color[..., 0] + 256 * color[..., 1] + 256 * 256 * color[..., 2]


def id2rgb(ids: np.ndarray) -> np.ndarray:
    """Encode segment ids (0 <= id < 256^3) as an ``(H, W, 3)`` uint8 array, the inverse of :func:`rgb2id`."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= OFFSET):
        raise ValueError(f"segment ids must lie in [0, {OFFSET}), got [{ids.min()}, {ids.max()}]")
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)


def _segments_by_id(segments: Iterable[Mapping[str, Any]], where: str) -> dict[int, Mapping[str, Any]]:
    out: dict[int, Mapping[str, Any]] = {}
    for seg in segments:
        seg_id = int(seg["id"])
        if seg_id == VOID:
            raise ValueError(f"{where}: segment id 0 is reserved for VOID and cannot be listed in segments_info")
        if seg_id in out:
            raise ValueError(f"{where}: segment id {seg_id} is listed twice in segments_info")
        out[seg_id] = seg
    return out


def _areas(ids: np.ndarray, segments: Mapping[int, Mapping[str, Any]], categories: Mapping[int, Any],
           where: str) -> dict[int, int]:
    """Pixel count per listed segment, after checking PNG ids, JSON ids and categories agree."""
    labels, counts = np.unique(ids, return_counts=True)
    areas = {int(k): int(c) for k, c in zip(labels, counts, strict=True) if k != VOID}
    not_listed = sorted(set(areas) - set(segments))
    if not_listed:
        raise KeyError(f"{where}: segment ids {not_listed} are in the PNG but not in segments_info")
    not_drawn = sorted(set(segments) - set(areas))
    if not_drawn:
        raise KeyError(f"{where}: segment ids {not_drawn} are in segments_info but not in the PNG")
    for seg_id, seg in segments.items():
        if int(seg["category_id"]) not in categories:
            raise KeyError(f"{where}: segment {seg_id} has unknown category_id {seg['category_id']}")
    return areas


class PanopticQuality:
    """Per-category PQ sums (IoU, TP, FP, FN) accumulated image by image from segment-id maps.

    ``categories`` are COCO-style dicts with ``id`` and ``isthing``. ``sums`` is a plain
    ``(num_categories, 4)`` float array, so partial results can be added (``+=``) or all-reduced.
    """

    def __init__(self, categories: Iterable[Mapping[str, Any]]) -> None:
        self.categories = {int(c["id"]): bool(c["isthing"]) for c in categories}
        self._row = {cat_id: i for i, cat_id in enumerate(self.categories)}
        self.sums = np.zeros((len(self._row), len(_FIELDS)), dtype=np.float64)

    def __iadd__(self, other: PanopticQuality) -> PanopticQuality:
        if other.categories != self.categories:
            raise ValueError("cannot add PanopticQuality sums over different categories")
        self.sums += other.sums
        return self

    def _add(self, category_id: int, field: str, value: float) -> None:
        self.sums[self._row[category_id], _FIELDS.index(field)] += value

    def update(self, gt_ids: np.ndarray, gt_segments: Iterable[Mapping[str, Any]],
               pred_ids: np.ndarray, pred_segments: Iterable[Mapping[str, Any]], where: str = "image",
               gt_source: str = "ground truth", pred_source: str = "prediction") -> None:
        """Add one image: segment-id maps (0 = VOID) and their ``segments_info`` lists.

        Ground-truth segments need ``id``, ``category_id`` and ``iscrowd``; predictions ``id`` and
        ``category_id``. ``where``, ``gt_source`` and ``pred_source`` name the image and files in errors.
        """
        gt_ids, pred_ids = np.asarray(gt_ids), np.asarray(pred_ids)
        if gt_ids.shape != pred_ids.shape:
            raise ValueError(f"{where}: ground truth is {gt_ids.shape} but prediction is {pred_ids.shape}")
        for name, ids in ((gt_source, gt_ids), (pred_source, pred_ids)):
            if ids.size and (ids.min() < 0 or ids.max() >= OFFSET):
                raise ValueError(f"{where}: {name} segment ids must lie in [0, 256^3)")
        gt_where, pred_where = f"{where}, {gt_source}", f"{where}, {pred_source}"
        gt_segs = _segments_by_id(gt_segments, gt_where)
        pred_segs = _segments_by_id(pred_segments, pred_where)
        gt_area = _areas(gt_ids, gt_segs, self.categories, gt_where)
        pred_area = _areas(pred_ids, pred_segs, self.categories, pred_where)

        joint = gt_ids.astype(np.uint64).ravel() * np.uint64(OFFSET) + pred_ids.astype(np.uint64).ravel()
        labels, counts = np.unique(joint, return_counts=True)
        overlap = {(int(k) // OFFSET, int(k) % OFFSET): int(c) for k, c in zip(labels, counts, strict=True)}

        gt_matched, pred_matched = set(), set()
        for (gt_id, pred_id), inter in overlap.items():
            if gt_id == VOID or pred_id == VOID or gt_segs[gt_id].get("iscrowd", 0) == 1:
                continue
            category = int(gt_segs[gt_id]["category_id"])
            if category != int(pred_segs[pred_id]["category_id"]):
                continue
            union = pred_area[pred_id] + gt_area[gt_id] - inter - overlap.get((VOID, pred_id), 0)
            iou = inter / union
            if iou > 0.5:
                self._add(category, "tp", 1)
                self._add(category, "iou", iou)
                gt_matched.add(gt_id)
                pred_matched.add(pred_id)

        crowd: dict[int, list[int]] = {}
        for gt_id, seg in gt_segs.items():
            if gt_id in gt_matched:
                continue
            if seg.get("iscrowd", 0) == 1:
                crowd.setdefault(int(seg["category_id"]), []).append(gt_id)
                continue
            self._add(int(seg["category_id"]), "fn", 1)

        for pred_id, seg in pred_segs.items():
            if pred_id in pred_matched:
                continue
            category = int(seg["category_id"])
            ignored = overlap.get((VOID, pred_id), 0)
            ignored += sum(overlap.get((crowd_id, pred_id), 0) for crowd_id in crowd.get(category, []))
            if ignored / pred_area[pred_id] > 0.5:
                continue
            self._add(category, "fp", 1)

    def compute(self) -> dict[str, Any]:
        """``{"All"|"Things"|"Stuff": {"pq", "sq", "rq", "n"}, "per_class": {category_id: {...}}}``, fractions 0-1.

        ``per_class`` lists the evaluated categories (TP + FP + FN > 0) with their pq, sq, rq, tp, fp, fn.
        """
        per_class: dict[int, dict[str, float]] = {}
        for cat_id, row in self._row.items():
            iou, tp, fp, fn = (float(v) for v in self.sums[row])
            if tp + fp + fn == 0:
                continue
            denom = tp + 0.5 * fp + 0.5 * fn
            per_class[cat_id] = {"pq": iou / denom, "sq": iou / tp if tp else 0.0, "rq": tp / denom,
                                 "tp": int(tp), "fp": int(fp), "fn": int(fn)}
        results: dict[str, Any] = {}
        for name, isthing in (("All", None), ("Things", True), ("Stuff", False)):
            chosen = [v for k, v in per_class.items() if isthing is None or self.categories[k] == isthing]
            n = len(chosen)
            results[name] = {key: sum(v[key] for v in chosen) / n if n else 0.0 for key in ("pq", "sq", "rq")}
            results[name]["n"] = n
        results["per_class"] = per_class
        return results


def pq_percent(result: Mapping[str, Any]) -> dict[str, float]:
    """``PQ``, ``SQ``, ``RQ`` overall and with ``_th`` / ``_st`` suffixes for things / stuff, in percent."""
    groups = {"": "All", "_th": "Things", "_st": "Stuff"}
    return {f"{m.upper()}{suffix}": 100 * result[g][m] for suffix, g in groups.items() for m in ("pq", "sq", "rq")}


def _load_json(path: Path, keys: Sequence[str]) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"panoptic JSON {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    missing = [k for k in keys if k not in data]
    if missing:
        raise KeyError(f"{path} lacks the COCO panoptic keys {missing} (expected {list(keys)})")
    return data


def read_panoptic_png(path: Path) -> np.ndarray:
    """Segment-id map of a COCO-panoptic RGB PNG (error naming the file when missing or not RGB)."""
    if not path.is_file():
        raise FileNotFoundError(f"panoptic PNG {path} does not exist")
    with Image.open(path) as img:
        if img.mode != "RGB":
            raise ValueError(f"{path} has mode {img.mode}; a panoptic PNG must be RGB (id = R + 256 G + 256^2 B)")
        return rgb2id(np.asarray(img))


def pq_compute(gt_json: str | Path, gt_folder: str | Path, pred_json: str | Path,
               pred_folder: str | Path) -> dict[str, Any]:
    """PQ/SQ/RQ (All, Things, Stuff, per class) of COCO-panoptic-format predictions against ground truth.

    Categories come from the ground-truth JSON; every ground-truth image needs a prediction (matched by
    ``image_id``), and PNGs are read as ``folder / annotation["file_name"]``.
    """
    gt_json, pred_json = Path(gt_json), Path(pred_json)
    gt_folder, pred_folder = Path(gt_folder), Path(pred_folder)
    gt = _load_json(gt_json, ("annotations", "categories"))
    pred = _load_json(pred_json, ("annotations",))
    for folder in (gt_folder, pred_folder):
        if not folder.is_dir():
            raise FileNotFoundError(f"panoptic PNG folder {folder} does not exist")
    predictions = {ann["image_id"]: ann for ann in pred["annotations"]}
    metric = PanopticQuality(gt["categories"])
    for gt_ann in gt["annotations"]:
        image_id = gt_ann["image_id"]
        if image_id not in predictions:
            raise KeyError(f"{pred_json} has no prediction for image_id {image_id!r} of {gt_json}")
        pred_ann = predictions[image_id]
        gt_png, pred_png = gt_folder / gt_ann["file_name"], pred_folder / pred_ann["file_name"]
        metric.update(read_panoptic_png(gt_png), gt_ann["segments_info"],
                      read_panoptic_png(pred_png), pred_ann["segments_info"],
                      where=f"image_id {image_id!r}", gt_source=f"ground truth {gt_png}",
                      pred_source=f"prediction {pred_png}")
    return metric.compute()
