"""Panoptic-DeepLab training targets from a segment-id map and its ``segments_info``.

Follows ``PanopticTargetGenerator`` of the Panoptic-DeepLab reference code: semantic labels, a
Gaussian center heatmap per thing instance (drawn in a (6 sigma + 3)^2 window and max-combined),
offsets ``(dy, dx) = center - pixel`` on thing pixels, center/offset loss weights (0 on void and
crowd, offsets also 0 on stuff when ``ignore_stuff_in_offset``) and a larger semantic weight on
small instances. As in the reference, crowd thing segments still get a center and offsets (their own
weights are 0), and instance centers are centres of mass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


def contiguous_categories(categories: Iterable[Mapping[str, Any]]) -> tuple[list[int], frozenset[int]]:
    """Dataset category ids in ascending order (list index = contiguous train id) and the thing train ids."""
    ordered = sorted(categories, key=lambda c: int(c["id"]))
    ids = [int(c["id"]) for c in ordered]
    if len(set(ids)) != len(ids):
        raise ValueError(f"category ids are not unique: {ids}")
    return ids, frozenset(i for i, c in enumerate(ordered) if c["isthing"])


def segments_from_labels(semantic: np.ndarray, instance: np.ndarray, thing_ids: Iterable[int],
                         ignore_label: int = 255, label_divisor: int = 1000) -> tuple[np.ndarray, list[dict]]:
    """Segment-id map (0 = void) and ``segments_info`` (category = train id) from semantic + instance maps.

    Stuff pixels form one segment per class; thing pixels one segment per (class, instance id), where
    instance id 0 on a thing class marks a crowd region (``iscrowd`` 1), as in Cityscapes ``instanceIds``.
    """
    semantic, instance = np.asarray(semantic, dtype=np.int64), np.asarray(instance, dtype=np.int64)
    if semantic.shape != instance.shape:
        raise ValueError(f"semantic {semantic.shape} and instance {instance.shape} maps differ in shape")
    if instance.size and (instance.min() < 0 or instance.max() >= label_divisor):
        raise ValueError(f"instance ids must lie in [0, {label_divisor})")
    things = {int(t) for t in thing_ids}
    is_thing = np.isin(semantic, list(things))
    ids = np.where(semantic == ignore_label, 0, 1 + semantic * label_divisor + np.where(is_thing, instance, 0))
    segments = [
        {"id": int(seg_id), "category_id": int(seg_id - 1) // label_divisor,
         "iscrowd": int((seg_id - 1) // label_divisor in things and (seg_id - 1) % label_divisor == 0)}
        for seg_id in np.unique(ids) if seg_id != 0
    ]
    return ids, segments


@dataclass
class PanopticTargetGenerator:
    """Turns ``(segment id map, segments_info)`` into Panoptic-DeepLab targets (torch tensors).

    ``thing_ids`` are train ids; ``category_ids[train_id]`` is the dataset category id of each train
    id (``None``: category ids already are train ids). Pixels of segments not listed are ``ignore_label``.
    """

    thing_ids: frozenset[int]
    category_ids: Sequence[int] | None = None
    ignore_label: int = 255
    sigma: float = 8.0
    ignore_stuff_in_offset: bool = True
    small_instance_area: int = 4096
    small_instance_weight: float = 3.0
    ignore_crowd_in_semantic: bool = False
    _to_train: dict[int, int] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.thing_ids = frozenset(int(t) for t in self.thing_ids)
        if self.sigma <= 0:
            raise ValueError(f"sigma must be positive, got {self.sigma}")
        self._to_train = None if self.category_ids is None else {int(c): i for i, c in enumerate(self.category_ids)}

    @classmethod
    def from_categories(cls, categories: Iterable[Mapping[str, Any]], **kwargs: Any) -> PanopticTargetGenerator:
        """A generator for COCO-style categories (``id``, ``isthing``), mapped to contiguous train ids."""
        category_ids, thing_ids = contiguous_categories(categories)
        return cls(thing_ids=thing_ids, category_ids=category_ids, **kwargs)

    def train_id(self, category_id: int) -> int:
        """Contiguous train id of a dataset category id."""
        if self._to_train is None:
            return int(category_id)
        if int(category_id) not in self._to_train:
            raise KeyError(f"category_id {category_id} is not one of the known categories {sorted(self._to_train)}")
        return self._to_train[int(category_id)]

    def _draw_center(self, heatmap: np.ndarray, cy: float, cx: float) -> None:
        """Max-combine a Gaussian peaking (value 1) at the integer pixel ``(int(cy), int(cx))``."""
        height, width = heatmap.shape
        y, x = int(cy), int(cx)
        radius = round(3 * self.sigma + 1)
        y0, y1 = max(0, y - radius), min(height, y + radius + 1)
        x0, x1 = max(0, x - radius), min(width, x + radius + 1)
        dy = np.arange(y0, y1, dtype=np.float64)[:, None] - y
        dx = np.arange(x0, x1, dtype=np.float64)[None, :] - x
        gauss = np.exp(-(dy**2 + dx**2) / (2 * self.sigma**2))
        np.maximum(heatmap[y0:y1, x0:x1], gauss.astype(np.float32), out=heatmap[y0:y1, x0:x1])

    def __call__(self, ids: np.ndarray, segments_info: Iterable[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Targets of one image: ``semantic``, ``foreground`` (H, W) int64; ``center`` (1, H, W);
        ``offset`` (2, H, W) as (dy, dx); ``semantic_weights``, ``center_weights``, ``offset_weights`` (H, W)."""
        ids = np.asarray(ids)
        if ids.ndim != 2:
            raise ValueError(f"expected an (H, W) segment-id map, got shape {ids.shape}")
        height, width = ids.shape
        uniq, inverse = np.unique(ids, return_inverse=True)
        inverse = inverse.reshape(height, width)
        flat = inverse.ravel()
        yy, xx = np.indices((height, width))
        count = np.bincount(flat, minlength=len(uniq)).astype(np.float64)
        mean_y = np.bincount(flat, weights=yy.ravel(), minlength=len(uniq)) / count
        mean_x = np.bincount(flat, weights=xx.ravel(), minlength=len(uniq)) / count

        n = len(uniq)
        semantic = np.full(n, self.ignore_label, dtype=np.int64)
        thing = np.zeros(n, dtype=bool)
        semantic_w = np.ones(n, dtype=np.float32)
        center_w = np.zeros(n, dtype=np.float32)
        offset_w = np.zeros(n, dtype=np.float32)
        heatmap = np.zeros((height, width), dtype=np.float32)
        position = {int(u): i for i, u in enumerate(uniq)}
        for seg in segments_info:
            train_id = self.train_id(seg["category_id"])
            i = position.get(int(seg["id"]))
            if i is None:  # the segment lies outside this (cropped) map
                continue
            crowd = bool(seg.get("iscrowd", 0))
            is_thing = train_id in self.thing_ids
            semantic[i] = self.ignore_label if crowd and self.ignore_crowd_in_semantic else train_id
            if not crowd:
                center_w[i] = 1.0
                offset_w[i] = 1.0 if is_thing or not self.ignore_stuff_in_offset else 0.0
            if is_thing:
                thing[i] = True
                if count[i] < self.small_instance_area:
                    semantic_w[i] = self.small_instance_weight
                self._draw_center(heatmap, mean_y[i], mean_x[i])

        is_thing_px = thing[inverse]
        offset = np.zeros((2, height, width), dtype=np.float32)
        offset[0] = np.where(is_thing_px, mean_y[inverse] - yy, 0.0)
        offset[1] = np.where(is_thing_px, mean_x[inverse] - xx, 0.0)
        return {
            "semantic": torch.from_numpy(semantic[inverse]),
            "foreground": torch.from_numpy(is_thing_px.astype(np.int64)),
            "center": torch.from_numpy(heatmap[None]),
            "offset": torch.from_numpy(offset),
            "semantic_weights": torch.from_numpy(semantic_w[inverse]),
            "center_weights": torch.from_numpy(center_w[inverse]),
            "offset_weights": torch.from_numpy(offset_w[inverse]),
        }
