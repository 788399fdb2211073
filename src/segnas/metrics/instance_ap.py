"""Instance AP: COCO-style mask AP of the thing segments of COCO-panoptic-format predictions.

Panoptic-DeepLab reports the instance segmentation it gets as a by-product of its panoptic output
(Table 4 of HyCTAS, "AP"): every predicted thing segment is an instance mask with a confidence score
(:func:`segnas.models.panoptic_postprocess.instance_scores`, stored as ``score`` in ``segments_info``).
Ground-truth thing segments are the instances; crowd segments (``iscrowd``) are COCO's crowd regions
(a detection on them is neither a true nor a false positive). Matching and averaging are pycocotools'
``COCOeval(iouType="segm")``: AP averaged over IoU 0.50:0.05:0.95 and the thing categories that have
ground truth, 101-point interpolated precision, ``max_dets`` detections per image.

Difference from the numbers Panoptic-DeepLab publishes for Cityscapes: those come from cityscapesScripts'
``evalInstanceLevelSemanticLabeling`` (same IoU thresholds, but no 101-point interpolation, ground-truth
instances under 100 px ignored, and unmatched predictions mostly on void/ignored pixels not counted as
false positives), so the two differ by small amounts; the COCO rules are the ones used here.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from segnas.metrics.panoptic import _load_json, read_panoptic_png


def _rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO RLE of a boolean (H, W) mask, with the counts as text (JSON-safe)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def thing_instances(ids: np.ndarray, segments: list[Mapping[str, Any]],
                    things: set[int]) -> Iterator[tuple[Mapping[str, Any], dict[str, Any]]]:
    """``(segment, RLE)`` of every thing segment of one image's segment-id map."""
    for seg in segments:
        if int(seg["category_id"]) in things:
            yield seg, _rle(ids == int(seg["id"]))


def coco_instances(gt_json: Path, gt_folder: Path, pred_json: Path,
                   pred_folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """COCO instance ground truth (dataset dict) and detections (result list) of the thing segments of two
    COCO-panoptic files; predicted thing segments need a ``score``."""
    gt = _load_json(gt_json, ("annotations", "categories"))
    pred = _load_json(pred_json, ("annotations",))
    things = {int(c["id"]) for c in gt["categories"] if c["isthing"]}
    predictions = {ann["image_id"]: ann for ann in pred["annotations"]}
    dataset: dict[str, Any] = {"images": [], "annotations": [],
                               "categories": [{"id": c} for c in sorted(things)]}
    detections: list[dict[str, Any]] = []
    for number, gt_ann in enumerate(gt["annotations"], start=1):
        image_id = gt_ann["image_id"]
        if image_id not in predictions:
            raise KeyError(f"{pred_json} has no prediction for image_id {image_id!r} of {gt_json}")
        ids = read_panoptic_png(gt_folder / gt_ann["file_name"])
        dataset["images"].append({"id": number, "height": ids.shape[0], "width": ids.shape[1]})
        for seg, rle in thing_instances(ids, gt_ann["segments_info"], things):
            dataset["annotations"].append({
                "id": len(dataset["annotations"]) + 1, "image_id": number, "category_id": int(seg["category_id"]),
                "segmentation": rle, "area": float(mask_utils.area(rle)), "iscrowd": int(seg.get("iscrowd", 0)),
            })
        pred_ids = read_panoptic_png(pred_folder / predictions[image_id]["file_name"])
        for seg, rle in thing_instances(pred_ids, predictions[image_id]["segments_info"], things):
            if "score" not in seg:
                raise KeyError(f"{pred_json}: thing segment {seg['id']} of image_id {image_id!r} has no 'score' "
                               "(instance AP needs one per predicted instance)")
            detections.append({"image_id": number, "category_id": int(seg["category_id"]),
                               "segmentation": rle, "score": float(seg["score"])})
    return dataset, detections


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def coco_mask_ap(dataset: dict[str, Any], detections: list[dict[str, Any]],
                 max_dets: int = 100) -> dict[str, Any]:
    """``AP``, ``AP50``, ``AP75`` (%) and per-category AP of ``detections`` by pycocotools' COCOeval (segm);
    categories without non-crowd ground truth are left out (AP is NaN when none has any)."""
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco_gt = COCO()
        coco_gt.dataset = dataset
        coco_gt.createIndex()
        # loadRes cannot take an empty list; with no detection every evaluated category scores 0
        coco_dt = coco_gt.loadRes(detections) if detections else COCO()
        evaluator = COCOeval(coco_gt, coco_dt, iouType="segm")
        evaluator.params.maxDets = [1, 10, max_dets]
        evaluator.params.areaRng, evaluator.params.areaRngLbl = [[0, 1e10]], ["all"]
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"][:, :, :, 0, -1]  # (IoU, recall, category) at max_dets
    per_class, at_iou = {}, {0: [], 5: []}  # IoU-threshold index 0: 0.50, 5: 0.75
    for k, category in enumerate(evaluator.params.catIds):
        values = precision[:, :, k]
        if (values > -1).any():
            per_class[category] = 100 * float(np.maximum(values, 0).mean())
            for index, found in at_iou.items():
                found.append(100 * float(np.maximum(values[index], 0).mean()))
    return {"AP": _mean(list(per_class.values())), "AP50": _mean(at_iou[0]), "AP75": _mean(at_iou[5]),
            "per_class": per_class}


def instance_ap(gt_json: str | Path, gt_folder: str | Path, pred_json: str | Path, pred_folder: str | Path,
                max_dets: int = 100) -> dict[str, Any]:
    """COCO mask AP (%) of the thing segments of COCO-panoptic predictions against panoptic ground truth;
    see the module docstring for the rules."""
    dataset, detections = coco_instances(Path(gt_json), Path(gt_folder), Path(pred_json), Path(pred_folder))
    return coco_mask_ap(dataset, detections, max_dets)
