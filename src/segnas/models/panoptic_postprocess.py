"""Panoptic-DeepLab post-processing and a writer of predictions in COCO panoptic format.

Steps (single image): semantic argmax; centers = heatmap values above a threshold that equal the
max-pool of their ``nms_kernel`` neighbourhood, best ``top_k`` kept; every thing pixel goes to the
detected center nearest to ``pixel + offset``; each instance takes the majority semantic class of its
thing pixels and the id ``class * label_divisor + k`` (k = 1, 2, ... per class); stuff classes fill the
pixels not covered by instances when their area reaches ``stuff_area``; the rest is ``void_label``.
Unlike the reference code, ``top_k`` keeps the highest-scoring centers (the reference ranks by
coordinates) and majority-vote ties go to the smaller class id.

For instance AP, :func:`instance_scores` gives each thing segment Panoptic-DeepLab's confidence
(paper §3.3, "Score(Objectness) x Score(Class)"), as the authors' detectron2 code computes it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.ndimage import find_objects

from segnas.metrics.panoptic import id2rgb


def find_instance_centers(center: torch.Tensor, threshold: float = 0.1, nms_kernel: int = 7,
                          top_k: int = 200) -> torch.Tensor:
    """``(K, 2)`` int64 (y, x) of center-heatmap peaks, best score first; ``center`` is (H, W) or (1, H, W)."""
    heat = center.reshape(center.shape[-2:]).float()
    heat = torch.where(heat > threshold, heat, torch.full_like(heat, -1.0))
    pooled = F.max_pool2d(heat[None, None], kernel_size=nms_kernel, stride=1, padding=nms_kernel // 2)[0, 0]
    ys, xs = torch.nonzero((heat == pooled) & (heat > threshold), as_tuple=True)
    order = torch.argsort(heat[ys, xs], descending=True, stable=True)[:top_k]
    return torch.stack([ys[order], xs[order]], dim=1)


def group_pixels(centers: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor,
                 chunk_elements: int = 1 << 22) -> torch.Tensor:
    """``(H, W)`` int64 instance ids: pixel in ``mask`` -> 1 + index of the center nearest to pixel + offset.

    ``offset`` is (2, H, W) as (dy, dx); pixels outside ``mask`` (or all, without centers) get 0.
    """
    height, width = offset.shape[-2:]
    instance = torch.zeros((height, width), dtype=torch.long, device=offset.device)
    ys, xs = torch.nonzero(mask, as_tuple=True)
    if len(centers) == 0 or len(ys) == 0:
        return instance
    votes = torch.stack([ys + offset[0, ys, xs], xs + offset[1, ys, xs]], dim=1).float()
    ctr = centers.to(votes)
    step = max(1, chunk_elements // len(ctr))
    nearest = [torch.cdist(votes[i:i + step], ctr, compute_mode="donot_use_mm_for_euclid_dist").argmin(dim=1)
               for i in range(0, len(votes), step)]
    instance[ys, xs] = torch.cat(nearest) + 1
    return instance


def merge_semantic_and_instance(semantic: torch.Tensor, instance: torch.Tensor, thing_ids: Sequence[int],
                                label_divisor: int = 1000, stuff_area: int = 2048,
                                void_label: int = -1) -> torch.Tensor:
    """``(H, W)`` panoptic ids ``class * label_divisor + instance`` (0 for stuff) from semantic + instance maps."""
    things = torch.as_tensor(sorted(thing_ids), dtype=semantic.dtype, device=semantic.device)
    is_thing_class = torch.isin(semantic, things)
    panoptic = torch.full_like(semantic, void_label)
    next_index: dict[int, int] = {}
    for ins_id in torch.unique(instance).tolist():
        if ins_id == 0:
            continue
        mask = (instance == ins_id) & is_thing_class
        if not mask.any():
            continue
        cls = int(torch.bincount(semantic[mask]).argmax())
        next_index[cls] = next_index.get(cls, 0) + 1
        panoptic[mask] = cls * label_divisor + next_index[cls]
    free = instance == 0
    for cls in torch.unique(semantic).tolist():
        if cls in thing_ids:
            continue
        mask = (semantic == cls) & free
        if int(mask.sum()) >= stuff_area:
            panoptic[mask] = cls * label_divisor
    return panoptic


def instance_scores(panoptic: torch.Tensor, semantic: torch.Tensor, center: torch.Tensor,
                    thing_ids: Sequence[int], label_divisor: int = 1000) -> dict[int, float]:
    """Confidence of every thing segment of a panoptic map (H, W): mean softmax probability of its class
    over its pixels x center heatmap at its centroid (coordinates truncated), as detectron2's
    Panoptic-DeepLab ``get_instance_predictions``; ``semantic`` is (C, H, W) logits, ``center`` (1, H, W)."""
    probs = semantic.float().softmax(dim=0)
    heat = center.reshape(center.shape[-2:]).float()
    scores = {}
    for label in torch.unique(panoptic).tolist():
        cls = label // label_divisor
        if label < 0 or cls not in thing_ids:
            continue
        mask = panoptic == label
        ys, xs = torch.nonzero(mask, as_tuple=True)
        centroid_y, centroid_x = int(ys.float().mean()), int(xs.float().mean())
        scores[label] = float(probs[cls][mask].mean() * heat[centroid_y, centroid_x])
    return scores


@dataclass
class PanopticPostProcessor:
    """Panoptic-DeepLab inference on one image's head outputs (train ids, label-divisor ids)."""

    thing_ids: Sequence[int]
    label_divisor: int = 1000
    stuff_area: int = 2048
    center_threshold: float = 0.1
    nms_kernel: int = 7
    top_k: int = 200
    void_label: int = -1

    def __post_init__(self) -> None:
        self.thing_ids = sorted(int(t) for t in self.thing_ids)
        if self.top_k >= self.label_divisor:
            raise ValueError(f"top_k ({self.top_k}) must be below label_divisor ({self.label_divisor})")
        if self.nms_kernel % 2 == 0:
            raise ValueError(f"nms_kernel must be odd, got {self.nms_kernel}")

    def __call__(self, semantic: torch.Tensor, center: torch.Tensor,
                 offset: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Panoptic map (H, W) and detected centers (K, 2) from semantic logits (C, H, W) or labels (H, W),
        center heatmap (1, H, W) and offsets (2, H, W)."""
        labels = semantic.argmax(dim=0) if semantic.dim() == 3 else semantic.long()
        centers = find_instance_centers(center, self.center_threshold, self.nms_kernel, self.top_k)
        things = torch.as_tensor(self.thing_ids, dtype=labels.dtype, device=labels.device)
        instance = group_pixels(centers, offset, torch.isin(labels, things))
        panoptic = merge_semantic_and_instance(labels, instance, self.thing_ids, self.label_divisor,
                                               self.stuff_area, self.void_label)
        return panoptic, centers


def panoptic_to_segments(panoptic: torch.Tensor | np.ndarray, category_ids: Sequence[int],
                         label_divisor: int = 1000, void_label: int = -1,
                         scores: Mapping[int, float] | None = None) -> tuple[np.ndarray, list[dict]]:
    """COCO-panoptic form of a label-divisor map: segment ids 1..N (0 = void) and ``segments_info``.

    ``category_ids[train_id]`` is the dataset category id written for each train id; a segment whose
    label-divisor id has an entry in ``scores`` also gets that ``score`` (instance AP).
    """
    pan = panoptic.cpu().numpy() if isinstance(panoptic, torch.Tensor) else np.asarray(panoptic)
    values, inverse, areas = np.unique(pan, return_inverse=True, return_counts=True)
    keep = values != void_label
    new_id = np.zeros(len(values), dtype=np.int64)
    new_id[keep] = np.arange(1, int(keep.sum()) + 1)
    ids = new_id[inverse.reshape(pan.shape)]
    segments = []
    boxes = find_objects(ids)
    for value, seg_id, area in zip(values[keep], new_id[keep], areas[keep], strict=True):
        rows, cols = boxes[seg_id - 1]
        segments.append({
            "id": int(seg_id),
            "category_id": int(category_ids[int(value) // label_divisor]),
            "iscrowd": 0,
            "area": int(area),
            "bbox": [cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start],
        })
        if scores is not None and int(value) in scores:
            segments[-1]["score"] = scores[int(value)]
    return ids, segments


class PanopticPredictionWriter:
    """Writes predictions in COCO panoptic format: ``<out_dir>/<name>/*.png`` and ``<out_dir>/<name>.json``."""

    def __init__(self, out_dir: str | Path, categories: Sequence[Mapping[str, Any]], name: str = "panoptic_pred"):
        self.folder = Path(out_dir) / name
        self.json_path = Path(out_dir) / f"{name}.json"
        self.categories = [dict(c) for c in categories]
        self.annotations: list[dict[str, Any]] = []
        self.folder.mkdir(parents=True, exist_ok=True)

    def add(self, image_id: Any, file_name: str, ids: np.ndarray, segments_info: list[dict]) -> Path:
        """Write one image's segment-id map as ``<stem of file_name>.png`` and remember its segments."""
        png_name = Path(file_name).with_suffix(".png").name
        path = self.folder / png_name
        Image.fromarray(id2rgb(ids)).save(path)
        self.annotations.append({"image_id": image_id, "file_name": png_name, "segments_info": segments_info})
        return path

    def write(self) -> Path:
        """Write the JSON with every added image (call once, after the last ``add``)."""
        self.json_path.write_text(json.dumps({"annotations": self.annotations, "categories": self.categories}))
        return self.json_path
