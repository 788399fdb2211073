"""Panoptic quality: one hand-built case per panopticapi rule, file I/O, and the real COCO sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segnas.metrics import pq_compute
from segnas.metrics.panoptic import PanopticQuality, id2rgb, rgb2id

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
COCO = DATA / "coco_panoptic" / "annotations"

# 1, 2 are things; 3, 4 are stuff
CATEGORIES = [
    {"id": 1, "name": "person", "isthing": 1},
    {"id": 2, "name": "car", "isthing": 1},
    {"id": 3, "name": "sky", "isthing": 0},
    {"id": 4, "name": "road", "isthing": 0},
]


def row(*runs: tuple[int, int]) -> np.ndarray:
    """A 1 x N id map from (segment id, run length) pairs."""
    return np.concatenate([np.full(n, seg_id) for seg_id, n in runs])[None, :]


def segs(*pairs: tuple[int, int], crowd: tuple[int, ...] = ()) -> list[dict]:
    return [{"id": i, "category_id": c, "iscrowd": int(i in crowd)} for i, c in pairs]


def pq_one(gt_ids, gt_segs, pred_ids, pred_segs) -> dict:
    metric = PanopticQuality(CATEGORIES)
    metric.update(gt_ids, gt_segs, pred_ids, pred_segs)
    return metric.compute()


def test_rgb2id_id2rgb_round_trip_and_channel_order():
    ids = np.array([[0, 1, 256, 65536, 256**3 - 1, 3 + 2 * 256 + 5 * 65536]])
    rgb = id2rgb(ids)
    assert rgb[0, 5].tolist() == [3, 2, 5]  # R is the low byte
    assert rgb[0, 2].tolist() == [0, 1, 0]
    np.testing.assert_array_equal(rgb2id(rgb), ids)
    with pytest.raises(ValueError, match=r"must lie in \[0, 16777216\)"):
        id2rgb(np.array([256**3]))


def test_perfect_prediction_gives_one():
    gt = row((1, 3), (2, 5))
    res = pq_one(gt, segs((1, 1), (2, 3)), gt + 10, segs((11, 1), (12, 3)))
    assert res["All"] == {"pq": 1.0, "sq": 1.0, "rq": 1.0, "n": 2}
    assert res["Things"]["n"] == 1 and res["Stuff"]["n"] == 1


def test_iou_exactly_half_is_not_a_match():
    # gt: 4 px of person; pred: 2 of them -> IoU = 2 / 4 = 0.5, not > 0.5 -> FN 1 and FP 1
    gt = row((1, 4), (0, 4))
    pred = row((5, 2), (0, 6))
    res = pq_one(gt, segs((1, 1)), pred, segs((5, 1)))
    assert res["per_class"][1] == {"pq": 0.0, "sq": 0.0, "rq": 0.0, "tp": 0, "fp": 1, "fn": 1}
    # pred covering 3 of the 4 -> IoU 3 / 4 = 0.75 > 0.5: PQ = SQ = 0.75, RQ = 1
    pred = row((5, 3), (0, 5))
    res = pq_one(gt, segs((1, 1)), pred, segs((5, 1)))
    assert res["per_class"][1] == {"pq": 0.75, "sq": 0.75, "rq": 1.0, "tp": 1, "fp": 0, "fn": 0}


def test_void_pixels_leave_the_union():
    # gt person on px 0-3, void on 4-7; pred person on px 0-5 (2 px on void).
    # union = 6 + 4 - 4 - 2 (pred on void) = 4 -> IoU 1 (it would be 4 / 6 without the void rule)
    gt = row((1, 4), (0, 4))
    pred = row((5, 6), (0, 2))
    res = pq_one(gt, segs((1, 1)), pred, segs((5, 1)))
    assert res["All"]["pq"] == 1.0


def test_unmatched_prediction_mostly_on_void_is_not_a_false_positive():
    gt = row((1, 4), (0, 4))
    # car on px 4-6: 3 of 3 px on void -> ignored; person TP
    res = pq_one(gt, segs((1, 1)), row((5, 4), (6, 3), (0, 1)), segs((5, 1), (6, 2)))
    assert 2 not in res["per_class"] and res["All"]["pq"] == 1.0
    # car on px 2-5: 2 of 4 px on void = exactly half -> counted as FP; person 0-1 has IoU 2 / 4 -> FN + FP
    res = pq_one(gt, segs((1, 1)), row((5, 2), (6, 4), (0, 2)), segs((5, 1), (6, 2)))
    assert res["per_class"][2] == {"pq": 0.0, "sq": 0.0, "rq": 0.0, "tp": 0, "fp": 1, "fn": 0}


def test_crowd_rules():
    # gt: px 0-3 person crowd (id 1), px 4-7 person (id 2), px 8-11 car crowd (id 3)
    gt = row((1, 4), (2, 4), (3, 4))
    gt_segs = segs((1, 1), (2, 1), (3, 2), crowd=(1, 3))
    # pred: person exactly on the person crowd (ignored, crowd never matches), person on the person (TP),
    # person on the car crowd (crowd of another category -> FP)
    pred = row((10, 4), (11, 4), (12, 4))
    res = pq_one(gt, gt_segs, pred, segs((10, 1), (11, 1), (12, 1)))
    # person: TP 1 (IoU 1), FP 1, FN 0 -> PQ = 1 / 1.5; car: only crowd gt, never FN -> not evaluated
    assert res["per_class"][1] == pytest.approx({"pq": 2 / 3, "sq": 1.0, "rq": 2 / 3, "tp": 1, "fp": 1, "fn": 0})
    assert 2 not in res["per_class"]
    assert res["All"]["n"] == 1


def test_void_plus_same_category_crowd_counts_together():
    # gt: px 0-1 void, px 2-3 person crowd, px 4-7 sky
    gt = row((0, 2), (1, 2), (2, 4))
    gt_segs = segs((1, 1), (2, 3), crowd=(1,))
    # person pred on px 1-3 = 1 void + 2 crowd of 3 px (> 1/2) -> ignored; sky on the rest matches
    res = pq_one(gt, gt_segs, row((0, 1), (5, 3), (6, 4)), segs((5, 1), (6, 3)))
    assert 1 not in res["per_class"] and res["All"]["pq"] == 1.0
    # person pred on px 1-4 = 1 void + 2 crowd + 1 sky = 3 of 4 -> ignored; sky 3 / 4 px -> IoU 0.75
    res = pq_one(gt, gt_segs, row((0, 1), (5, 4), (6, 3)), segs((5, 1), (6, 3)))
    assert 1 not in res["per_class"] and res["per_class"][3]["pq"] == 0.75
    # person pred on px 2-5 = 2 crowd + 2 sky = exactly half -> FP; sky 2 / 4 -> IoU 0.5 -> FN + FP
    res = pq_one(gt, gt_segs, row((0, 2), (5, 4), (6, 2)), segs((5, 1), (6, 3)))
    assert res["per_class"][1]["fp"] == 1
    assert res["per_class"][3] == {"pq": 0.0, "sq": 0.0, "rq": 0.0, "tp": 0, "fp": 1, "fn": 1}


def test_unmatched_stuff_counts_fn_and_fp():
    # sky everywhere in gt, predicted as road: sky FN 1, road FP 1, both PQ 0 and both evaluated
    gt = row((1, 8))
    res = pq_one(gt, segs((1, 3)), row((7, 8)), segs((7, 4)))
    assert res["per_class"][3]["fn"] == 1 and res["per_class"][4]["fp"] == 1
    assert res["Stuff"] == {"pq": 0.0, "sq": 0.0, "rq": 0.0, "n": 2}
    assert res["Things"] == {"pq": 0.0, "sq": 0.0, "rq": 0.0, "n": 0}


def test_things_stuff_and_all_averages():
    # person: gt px 0-3, pred px 0-2 -> TP, IoU 0.75 -> PQ 0.75, SQ 0.75, RQ 1
    # car: gt px 4-5, not predicted (pred void) -> FN -> PQ 0, SQ 0, RQ 0
    # sky: gt px 6-9, pred px 6-9 -> PQ 1; road: absent everywhere -> excluded
    gt = row((1, 4), (2, 2), (3, 4))
    pred = row((5, 3), (0, 3), (7, 4))
    res = pq_one(gt, segs((1, 1), (2, 2), (3, 3)), pred, segs((5, 1), (7, 3)))
    assert res["Things"] == pytest.approx({"pq": 0.375, "sq": 0.375, "rq": 0.5, "n": 2})
    assert res["Stuff"] == pytest.approx({"pq": 1.0, "sq": 1.0, "rq": 1.0, "n": 1})
    # All = mean over the 3 evaluated categories: PQ (0.75 + 0 + 1) / 3, SQ the same, RQ (1 + 0 + 1) / 3
    assert res["All"] == pytest.approx({"pq": 1.75 / 3, "sq": 1.75 / 3, "rq": 2 / 3, "n": 3})
    assert set(res["per_class"]) == {1, 2, 3}


def test_sums_accumulate_over_images_before_averaging():
    metric = PanopticQuality(CATEGORIES)
    gt = row((1, 4))
    metric.update(gt, segs((1, 1)), gt, segs((1, 1)))  # TP, IoU 1
    metric.update(gt, segs((1, 1)), np.zeros_like(gt), [])  # FN
    # IoU 1 / (1 TP + 0.5 FN) = 2/3 (a mean of per-image PQs would give 0.5)
    assert metric.compute()["All"]["pq"] == pytest.approx(2 / 3)
    other = PanopticQuality(CATEGORIES)
    other.update(gt, segs((1, 1)), gt, segs((1, 1)))
    metric += other
    # IoU 2 / (2 TP + 0.5 FN) = 0.8
    assert metric.compute()["All"]["pq"] == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("pred_segs", "message"),
    [
        (segs((5, 1)), r"\[6\] are in the PNG but not in segments_info"),
        (segs((5, 1), (6, 1), (9, 1)), r"\[9\] are in segments_info but not in the PNG"),
        (segs((5, 1), (6, 77)), "unknown category_id 77"),
        (segs((5, 1), (5, 2)), "listed twice"),
    ],
)
def test_malformed_segments_raise(pred_segs, message):
    metric = PanopticQuality(CATEGORIES)
    with pytest.raises((KeyError, ValueError), match=message):
        metric.update(row((1, 4)), segs((1, 1)), row((5, 2), (6, 2)), pred_segs, where="image 7")


def write_panoptic(root: Path, name: str, images: list[tuple[str, np.ndarray, list[dict]]]) -> tuple[Path, Path]:
    folder = root / name
    folder.mkdir(parents=True)
    annotations = []
    for image_id, ids, seg_list in images:
        Image.fromarray(id2rgb(ids)).save(folder / f"{image_id}.png")
        annotations.append({"image_id": image_id, "file_name": f"{image_id}.png", "segments_info": seg_list})
    json_path = root / f"{name}.json"
    json_path.write_text(json.dumps({"annotations": annotations, "categories": CATEGORIES}))
    return json_path, folder


def test_pq_compute_on_files_matches_in_memory(tmp_path):
    gt = row((1, 4), (2, 2), (3, 4))
    pred = row((300000, 3), (0, 3), (70000, 4))  # ids above 65535 use the blue channel
    gt_segs, pred_segs = segs((1, 1), (2, 2), (3, 3)), segs((300000, 1), (70000, 3))
    gt_json, gt_dir = write_panoptic(tmp_path, "gt", [("a", gt, gt_segs), ("b", gt, gt_segs)])
    pred_json, pred_dir = write_panoptic(tmp_path, "pred", [("b", gt, gt_segs), ("a", pred, pred_segs)])
    res = pq_compute(gt_json, gt_dir, pred_json, pred_dir)
    # person: TP in a (IoU 0.75) and b (IoU 1) -> 1.75 / 2; car: FN in a, TP in b -> 1 / 1.5; sky: 2 TP -> 1
    assert res["per_class"][1]["pq"] == pytest.approx(0.875)
    assert res["per_class"][2]["pq"] == pytest.approx(2 / 3)
    assert res["All"]["pq"] == pytest.approx((0.875 + 2 / 3 + 1) / 3)


def test_pq_compute_errors_name_the_file(tmp_path):
    gt = row((1, 4))
    gt_json, gt_dir = write_panoptic(tmp_path, "gt", [("a", gt, segs((1, 1)))])
    pred_json, pred_dir = write_panoptic(tmp_path, "pred", [("a", gt, segs((1, 1), (2, 3)))])
    with pytest.raises(KeyError, match=r"pred.a\.png.*\[2\] are in segments_info but not in the PNG"):
        pq_compute(gt_json, gt_dir, pred_json, pred_dir)
    (pred_dir / "a.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"pred.a\.png"):
        pq_compute(gt_json, gt_dir, pred_json, pred_dir)
    other_json, other_dir = write_panoptic(tmp_path, "other", [("z", gt, segs((1, 1)))])
    with pytest.raises(KeyError, match="no prediction for image_id 'a'"):
        pq_compute(gt_json, gt_dir, other_json, other_dir)
    with pytest.raises(FileNotFoundError, match=r"missing\.json"):
        pq_compute(tmp_path / "missing.json", gt_dir, pred_json, pred_dir)


@pytest.fixture
def coco_sample() -> tuple[Path, Path, dict]:
    gt_json = COCO / "panoptic_val2017.json"
    if not gt_json.is_file():
        pytest.skip(f"real COCO panoptic sample not found under {COCO}")
    return gt_json, COCO / "panoptic_val2017", json.loads(gt_json.read_text())


def test_coco_sample_ground_truth_against_itself_is_perfect(coco_sample):
    gt_json, gt_dir, _ = coco_sample
    res = pq_compute(gt_json, gt_dir, gt_json, gt_dir)
    # categories present: things 1, 8, 19, 37; stuff 125, 184, 187, 193. The crowd person/horse segments
    # are predicted as themselves: never matched, but ignored as FP because they lie on their own crowd.
    assert res["All"] == {"pq": 1.0, "sq": 1.0, "rq": 1.0, "n": 8}
    assert res["Things"]["n"] == 4 and res["Stuff"]["n"] == 4
    assert set(res["per_class"]) == {1, 8, 19, 37, 125, 184, 187, 193}


def test_coco_sample_with_one_person_dropped(coco_sample, tmp_path):
    gt_json, gt_dir, gt = coco_sample
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    annotations = []
    for ann in gt["annotations"]:
        ids = rgb2id(np.asarray(Image.open(gt_dir / ann["file_name"])))
        kept = [s for s in ann["segments_info"] if s["id"] != 3997935]  # a 153 px person in 142238
        ids[ids == 3997935] = 0
        Image.fromarray(id2rgb(ids)).save(pred_dir / ann["file_name"])
        annotations.append({**ann, "segments_info": kept})
    pred_json = tmp_path / "pred.json"
    pred_json.write_text(json.dumps({"annotations": annotations}))
    res = pq_compute(gt_json, gt_dir, pred_json, pred_dir)
    # 26 non-crowd persons in the two images: 25 TP (IoU 1) and 1 FN -> PQ = RQ = 25 / 25.5, SQ = 1
    assert res["per_class"][1] == pytest.approx({"pq": 25 / 25.5, "sq": 1.0, "rq": 25 / 25.5,
                                                "tp": 25, "fp": 0, "fn": 1})
    assert res["Things"]["pq"] == pytest.approx((25 / 25.5 + 3) / 4)
    assert res["All"]["pq"] == pytest.approx((25 / 25.5 + 7) / 8)
