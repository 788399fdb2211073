"""Panoptic-DeepLab post-processing: hand-made cases per step, and the round trip
targets -> perfect predictions -> post-processing -> PQ 1.0 (synthetic and the real COCO sample)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segnas.data.panoptic_targets import PanopticTargetGenerator
from segnas.metrics import pq_compute
from segnas.metrics.panoptic import PanopticQuality, rgb2id
from segnas.models.panoptic_postprocess import (
    PanopticPostProcessor,
    PanopticPredictionWriter,
    find_instance_centers,
    group_pixels,
    merge_semantic_and_instance,
    panoptic_to_segments,
)

COCO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco_panoptic" / "annotations"


def test_center_threshold_nms_and_top_k():
    heat = torch.zeros(1, 20, 20)
    heat[0, 5, 5] = 0.9
    heat[0, 5, 8] = 0.3  # 3 px from the 0.9 peak: inside its 7 x 7 window -> suppressed
    heat[0, 5, 14] = 0.5
    heat[0, 15, 5] = 0.3
    heat[0, 15, 15] = 0.1  # not above the 0.1 threshold
    heat[0, 10, 10] = 0.12
    centers = find_instance_centers(heat)
    assert centers.tolist() == [[5, 5], [5, 14], [15, 5], [10, 10]]  # best score first
    assert find_instance_centers(heat, nms_kernel=3).tolist() == [[5, 5], [5, 14], [5, 8], [15, 5], [10, 10]]
    assert find_instance_centers(heat, top_k=2).tolist() == [[5, 5], [5, 14]]
    assert find_instance_centers(torch.zeros(4, 4)).shape == (0, 2)


def test_group_pixels_by_nearest_voted_center():
    centers = torch.tensor([[0, 0], [0, 9]])
    offset = torch.zeros(2, 1, 10)
    mask = torch.ones(1, 10, dtype=torch.bool)
    mask[0, 3] = False
    # without offsets pixels 0-4 are nearer to column 0 (pixel 4: 4 vs 5), 5-9 to column 9
    assert group_pixels(centers, offset, mask).tolist() == [[1, 1, 1, 0, 1, 2, 2, 2, 2, 2]]
    offset[1, 0, 7] = -7.0  # pixel 7 votes for column 0
    offset[0, 0, 1] = 100.0  # pixel 1 votes for (100, 1): still nearer to (0, 0) than to (0, 9)
    assert group_pixels(centers, offset, mask, chunk_elements=3).tolist() == [[1, 1, 1, 0, 1, 2, 2, 1, 2, 2]]
    assert group_pixels(centers[:0], offset, mask).eq(0).all()


def test_merge_majority_vote_running_index_and_stuff_area():
    semantic = torch.tensor([
        [0, 0, 0, 2, 2, 2, 2, 2],
        [0, 0, 0, 2, 2, 2, 2, 2],
        [1, 1, 1, 1, 3, 3, 2, 2],
        [1, 1, 1, 1, 3, 3, 2, 2],
    ])
    instance = torch.tensor([
        [0, 0, 0, 5, 5, 5, 9, 9],
        [0, 0, 0, 5, 5, 5, 9, 9],
        [0, 0, 0, 0, 5, 7, 9, 9],
        [0, 0, 0, 0, 7, 7, 9, 9],
    ])
    # instance 5: six class-2 px and one class-3 px -> class 2, first of its class -> 2001 on all 7 px;
    # instance 7 -> 3001; instance 9 -> second class-2 instance -> 2002.
    # stuff: class 0 has 6 px < 7 -> void (-1); class 1 has 8 px -> 1000
    pan = merge_semantic_and_instance(semantic, instance, thing_ids=[2, 3], stuff_area=7)
    assert pan.tolist() == [
        [-1, -1, -1, 2001, 2001, 2001, 2002, 2002],
        [-1, -1, -1, 2001, 2001, 2001, 2002, 2002],
        [1000, 1000, 1000, 1000, 2001, 3001, 2002, 2002],
        [1000, 1000, 1000, 1000, 3001, 3001, 2002, 2002],
    ]
    # a 2-2 vote goes to the smaller class
    tie = merge_semantic_and_instance(torch.tensor([[3, 3, 2, 2]]), torch.tensor([[1, 1, 1, 1]]), [2, 3])
    assert tie.tolist() == [[2001, 2001, 2001, 2001]]


def test_panoptic_to_segments():
    pan = np.array([[-1, 1000, 1000], [2001, 2001, 0]])
    ids, segments = panoptic_to_segments(pan, category_ids=[10, 20, 30])
    # sorted values -1 (void), 0, 1000, 2001 -> ids 0, 1, 2, 3
    assert ids.tolist() == [[0, 2, 2], [3, 3, 1]]
    assert segments == [
        {"id": 1, "category_id": 10, "iscrowd": 0, "area": 1, "bbox": [2, 1, 1, 1]},
        {"id": 2, "category_id": 20, "iscrowd": 0, "area": 2, "bbox": [1, 0, 2, 1]},
        {"id": 3, "category_id": 30, "iscrowd": 0, "area": 2, "bbox": [0, 1, 2, 1]},
    ]


def test_postprocessor_rejects_bad_settings():
    with pytest.raises(ValueError, match="top_k"):
        PanopticPostProcessor(thing_ids=[1], top_k=1000)
    with pytest.raises(ValueError, match="odd"):
        PanopticPostProcessor(thing_ids=[1], nms_kernel=6)


# train ids: sky 0, road 1 (stuff), car 2, person 3 (things); dataset category ids 5, 6, 10, 11
CATEGORIES = [
    {"id": 5, "name": "sky", "isthing": 0},
    {"id": 6, "name": "road", "isthing": 0},
    {"id": 10, "name": "car", "isthing": 1},
    {"id": 11, "name": "person", "isthing": 1},
]


def synthetic_panoptic() -> tuple[np.ndarray, list[dict]]:
    """64 x 96: a big car touching a thin car, an L-shaped person, a person on the sky, a person crowd, void."""
    ids = np.full((64, 96), 1, dtype=np.int64)
    ids[25:] = 2
    ids[30:40, 10:50] = 100  # big car
    ids[30:40, 50:54] = 101  # thin car right next to it
    ids[45:60, 60:65] = 200  # L-shaped person
    ids[55:60, 65:80] = 200
    ids[5:15, 80:86] = 201
    ids[45:55, 20:40] = 202  # crowd
    ids[60:] = 0  # void
    segments = [
        {"id": 1, "category_id": 5, "iscrowd": 0},
        {"id": 2, "category_id": 6, "iscrowd": 0},
        {"id": 100, "category_id": 10, "iscrowd": 0},
        {"id": 101, "category_id": 10, "iscrowd": 0},
        {"id": 200, "category_id": 11, "iscrowd": 0},
        {"id": 201, "category_id": 11, "iscrowd": 0},
        {"id": 202, "category_id": 11, "iscrowd": 1},
    ]
    return ids, segments


def perfect_prediction(ids, segments, categories, **post_kwargs):
    """Post-process targets made from the ground truth, with void pixels given to the first stuff class."""
    gen = PanopticTargetGenerator.from_categories(categories)
    t = gen(ids, segments)
    stuff = min(set(range(len(gen.category_ids))) - gen.thing_ids)
    labels = torch.where(t["semantic"] == gen.ignore_label, stuff, t["semantic"])
    logits = torch.nn.functional.one_hot(labels, len(gen.category_ids)).permute(2, 0, 1).float()
    post = PanopticPostProcessor(thing_ids=sorted(gen.thing_ids), **post_kwargs)
    return gen, t, logits, post


def test_round_trip_synthetic_gives_pq_one_and_needs_the_offsets(tmp_path):
    ids, segments = synthetic_panoptic()
    gen, t, logits, post = perfect_prediction(ids, segments, CATEGORIES, stuff_area=64)
    pan, centers = post(logits, t["center"], t["offset"])
    assert len(centers) == 5  # four instances and the crowd
    pred_ids, pred_segments = panoptic_to_segments(pan, gen.category_ids)
    metric = PanopticQuality(CATEGORIES)
    metric.update(ids, segments, pred_ids, pred_segments)
    res = metric.compute()
    assert res["All"] == {"pq": 1.0, "sq": 1.0, "rq": 1.0, "n": 4}
    assert res["per_class"][10]["tp"] == 2 and res["per_class"][11]["tp"] == 2

    # without offsets, the right end of the big car is nearer to the thin car's center: the thin car is lost
    pan0, _ = post(logits, t["center"], torch.zeros_like(t["offset"]))
    metric = PanopticQuality(CATEGORIES)
    metric.update(ids, segments, *panoptic_to_segments(pan0, gen.category_ids))
    assert metric.compute()["per_class"][10]["fn"] == 1

    # the same prediction through the COCO-format writer and the file-based evaluation
    gt_writer = PanopticPredictionWriter(tmp_path, CATEGORIES, name="gt")
    gt_writer.add("img0", "img0.jpg", ids, segments)
    pred_writer = PanopticPredictionWriter(tmp_path, CATEGORIES)
    png = pred_writer.add("img0", "img0.jpg", pred_ids, pred_segments)
    assert png == tmp_path / "panoptic_pred" / "img0.png"
    assert np.array_equal(rgb2id(np.asarray(Image.open(png))), pred_ids)
    res = pq_compute(gt_writer.write(), gt_writer.folder, pred_writer.write(), pred_writer.folder)
    assert res["All"]["pq"] == 1.0 and res["Things"]["n"] == 2 and res["Stuff"]["n"] == 2


def test_round_trip_on_real_coco_sample():
    gt_json = COCO / "panoptic_val2017.json"
    if not gt_json.is_file():
        pytest.skip(f"real COCO panoptic sample not found under {COCO}")
    gt = json.loads(gt_json.read_text())
    metric = PanopticQuality(gt["categories"])
    for ann in gt["annotations"]:
        ids = rgb2id(np.asarray(Image.open(COCO / "panoptic_val2017" / ann["file_name"])))
        gen, t, logits, post = perfect_prediction(ids, ann["segments_info"], gt["categories"])
        pan, _ = post(logits, t["center"], t["offset"])
        metric.update(ids, ann["segments_info"], *panoptic_to_segments(pan, gen.category_ids))
    res = metric.compute()
    assert res["All"] == {"pq": 1.0, "sq": 1.0, "rq": 1.0, "n": 8}
