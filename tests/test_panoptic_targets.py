"""Panoptic-DeepLab targets on a hand-made map (values computed by hand) and on the real COCO sample."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segnas.data.panoptic_targets import PanopticTargetGenerator, contiguous_categories, segments_from_labels
from segnas.metrics.panoptic import rgb2id

COCO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco_panoptic" / "annotations"


def hand_map() -> tuple[np.ndarray, list[dict]]:
    """8 x 12 map: road (category 7) everywhere, car (26) id 2 on rows 1-2 x cols 1-2, a crowd of cars id 3
    on rows 4-5 x cols 5-7, void (0) at (0, 11) and an unlisted id 9 at (7, 11)."""
    ids = np.ones((8, 12), dtype=np.int64)
    ids[1:3, 1:3] = 2
    ids[4:6, 5:8] = 3
    ids[0, 11] = 0
    ids[7, 11] = 9
    segments = [
        {"id": 1, "category_id": 7, "iscrowd": 0},
        {"id": 2, "category_id": 26, "iscrowd": 0},
        {"id": 3, "category_id": 26, "iscrowd": 1},
        {"id": 4, "category_id": 26, "iscrowd": 0},  # listed but cropped away: skipped
    ]
    return ids, segments


def generator(**kwargs) -> PanopticTargetGenerator:
    # train ids: road 0, car 1
    return PanopticTargetGenerator(thing_ids={1}, category_ids=[7, 26], sigma=1.0, **kwargs)


def test_semantic_weights_and_foreground():
    ids, segments = hand_map()
    t = generator()(ids, segments)
    sem = t["semantic"]
    assert sem.dtype == torch.int64 and sem.shape == (8, 12)
    assert sem[0, 0] == 0 and sem[1, 1] == 1 and sem[4, 5] == 1  # crowd keeps its class by default
    assert sem[0, 11] == 255 and sem[7, 11] == 255  # void and unlisted ids are ignored
    assert t["foreground"].sum() == 4 + 6
    # both car segments (4 and 6 px) are < 4096 px -> weight 3; the rest 1
    assert t["semantic_weights"][1:3, 1:3].eq(3).all() and t["semantic_weights"][4:6, 5:8].eq(3).all()
    assert t["semantic_weights"].sum() == 3 * 10 + (96 - 10)
    # center weights: 1 on non-crowd labelled pixels: 96 - 6 crowd - 2 void/unlisted
    assert t["center_weights"].sum() == 88 and t["center_weights"][4, 5] == 0
    # offsets ignore stuff: only the 4 px of car 2 (crowd excluded)
    assert t["offset_weights"].sum() == 4 and t["offset_weights"][1:3, 1:3].eq(1).all()


def test_options_change_weights_and_crowd_semantic():
    ids, segments = hand_map()
    t = generator(ignore_stuff_in_offset=False, small_instance_area=5, ignore_crowd_in_semantic=True)(ids, segments)
    assert t["offset_weights"].sum() == 88  # stuff now included, crowd still not
    # only car 2 (4 px) is below 5 px now; the 6 px crowd keeps weight 1
    assert t["semantic_weights"].sum() == 3 * 4 + (96 - 4)
    assert t["semantic"][4:6, 5:8].eq(255).all()


def test_offsets_point_from_pixel_to_center_of_mass():
    ids, segments = hand_map()
    off = generator()(ids, segments)["offset"]
    assert off.shape == (2, 8, 12)
    # car 2 center (1.5, 1.5): (dy, dx) = center - pixel
    assert off[:, 1, 1].tolist() == [0.5, 0.5] and off[:, 2, 2].tolist() == [-0.5, -0.5]
    assert off[:, 1, 2].tolist() == [0.5, -0.5]
    # crowd center (4.5, 6.0) still gets offsets (weight 0), stuff and void none
    assert off[:, 4, 5].tolist() == [0.5, 1.0]
    assert off[:, 0, 0].tolist() == [0.0, 0.0] and off[:, 0, 11].tolist() == [0.0, 0.0]


def test_center_heatmap_values_window_and_max_combination():
    ids, segments = hand_map()
    heat = generator()(ids, segments)["center"]
    assert heat.shape == (1, 8, 12)
    # peaks (value 1) at the integer part of each center: (1, 1) and (4, 6); sigma = 1
    assert heat[0, 1, 1] == 1.0 and heat[0, 4, 6] == 1.0
    assert heat[0, 1, 2].item() == pytest.approx(math.exp(-0.5))
    # (2, 4): squared distance 10 to (1, 1) and 8 to (4, 6) -> max(e^-5, e^-4) = e^-4
    assert heat[0, 2, 4].item() == pytest.approx(math.exp(-4))
    # the window is (6 sigma + 3)^2 = 9 x 9: (7, 0) is 6 rows from (1, 1) and 6 cols from (4, 6) -> exactly 0
    assert heat[0, 7, 0] == 0.0
    # (0, 6) is 4 rows from (4, 6): inside the window -> e^-8
    assert heat[0, 0, 6].item() == pytest.approx(math.exp(-8))


def test_default_sigma_8_window_is_51_by_51():
    ids = np.zeros((64, 64), dtype=np.int64)
    ids[30, 30] = 5
    g = PanopticTargetGenerator(thing_ids={0})
    t = g(ids, [{"id": 5, "category_id": 0, "iscrowd": 0}])
    rows, cols = torch.nonzero(t["center"][0], as_tuple=True)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (5, 55, 5, 55)
    assert len(rows) == 51 * 51
    assert t["center"][0, 30, 38].item() == pytest.approx(math.exp(-64 / 128))  # 8 px = one sigma away


def test_unknown_category_is_an_error():
    ids, segments = hand_map()
    with pytest.raises(KeyError, match="category_id 99"):
        generator()(ids, [*segments, {"id": 1, "category_id": 99, "iscrowd": 0}])


def test_contiguous_categories_and_from_categories():
    cats = [{"id": 17, "isthing": 0}, {"id": 3, "isthing": 1}, {"id": 9, "isthing": 1}]
    assert contiguous_categories(cats) == ([3, 9, 17], frozenset({0, 1}))
    g = PanopticTargetGenerator.from_categories(cats)
    assert g.train_id(17) == 2 and g.thing_ids == frozenset({0, 1})
    with pytest.raises(ValueError, match="not unique"):
        contiguous_categories([*cats, {"id": 3, "isthing": 0}])


def test_real_coco_sample_targets():
    gt_json = COCO / "panoptic_val2017.json"
    if not gt_json.is_file():
        pytest.skip(f"real COCO panoptic sample not found under {COCO}")
    gt = json.loads(gt_json.read_text())
    g = PanopticTargetGenerator.from_categories(gt["categories"])
    assert len(g.category_ids) == 133 and len(g.thing_ids) == 80
    ann = next(a for a in gt["annotations"] if a["image_id"] == 142238)
    ids = rgb2id(np.asarray(Image.open(COCO / "panoptic_val2017" / ann["file_name"])))
    t = g(ids, ann["segments_info"])
    sem = t["semantic"]
    assert sem.shape == (427, 640)
    assert (sem == 255).sum() == 2712  # the documented void area
    assert set(sem.unique().tolist()) == {g.train_id(c) for c in (1, 37, 184, 187, 193)} | {255}
    # person = train id 0; crowd person (24295 px) gets no center/offset weight
    crowd = ids == 3153362
    assert t["center_weights"][torch.from_numpy(crowd)].sum() == 0
    assert t["center_weights"].sum() == 427 * 640 - 2712 - 24295
    # one Gaussian peak (value 1) per thing segment: 13 persons + 1 crowd + 1 sports ball
    assert (t["center"] == 1.0).sum() == 15
    # the 153 px person and the 175 px ball are small; the 24295 px crowd is not
    assert t["semantic_weights"][torch.from_numpy(ids == 3997935)].eq(3).all()
    assert t["semantic_weights"][torch.from_numpy(crowd)].eq(1).all()


def test_segments_from_semantic_and_instance_maps():
    # train ids: 0 stuff, 1 and 2 things; 255 void. Instance 0 on a thing class = crowd.
    semantic = np.array([[0, 0, 1, 1, 255], [2, 2, 1, 1, 2]])
    instance = np.array([[0, 7, 1, 2, 0], [1, 1, 0, 0, 0]])
    ids, segments = segments_from_labels(semantic, instance, thing_ids={1, 2})
    # ids = 1 + class * 1000 + instance (instance ignored on stuff), void 0
    assert ids.tolist() == [[1, 1, 1002, 1003, 0], [2002, 2002, 1001, 1001, 2001]]
    assert segments == [
        {"id": 1, "category_id": 0, "iscrowd": 0},
        {"id": 1001, "category_id": 1, "iscrowd": 1},
        {"id": 1002, "category_id": 1, "iscrowd": 0},
        {"id": 1003, "category_id": 1, "iscrowd": 0},
        {"id": 2001, "category_id": 2, "iscrowd": 1},
        {"id": 2002, "category_id": 2, "iscrowd": 0},
    ]
    t = PanopticTargetGenerator(thing_ids={1, 2})(ids, segments)
    assert t["center_weights"].tolist() == [[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]]
    with pytest.raises(ValueError, match="instance ids"):
        segments_from_labels(semantic, instance + 1000, thing_ids={1, 2})
