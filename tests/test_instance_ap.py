"""Instance AP (COCO mask AP of panoptic thing segments, issue 25 item 6a): hand-computed cases, the
Panoptic-DeepLab instance score, and agreement with an independent NumPy COCO-AP on the shared samples."""

import shutil

import numpy as np
import pytest
import torch
from scipy import ndimage

from segnas.config_checks import check_config
from segnas.data.cityscapes import create_panoptic
from segnas.metrics.instance_ap import instance_ap
from segnas.metrics.panoptic import _load_json, read_panoptic_png
from segnas.models.panoptic_postprocess import PanopticPredictionWriter, instance_scores

from conftest import compose_config, shared_dataset

CATEGORIES = [{"id": 1, "name": "thing", "isthing": 1}, {"id": 2, "name": "stuff", "isthing": 0},
              {"id": 3, "name": "other", "isthing": 1}]
THRESHOLDS = np.linspace(0.5, 0.95, 10)


def write(folder, name, images, categories=CATEGORIES):
    """Write ``[(ids, segments_info)]`` in COCO panoptic format; returns ``(json, folder)``."""
    writer = PanopticPredictionWriter(folder, categories, name)
    for i, (ids, segments) in enumerate(images):
        writer.add(i, f"{i:03d}.png", ids, segments)
    return writer.write(), writer.folder


def ap_of(tmp_path, gt_images, pred_images, **kwargs):
    return instance_ap(*write(tmp_path, "gt", gt_images), *write(tmp_path, "pred", pred_images), **kwargs)


def seg(seg_id, category=1, score=None, crowd=0):
    out = {"id": seg_id, "category_id": category, "iscrowd": crowd}
    return out if score is None else {**out, "score": score}


def two_boxes():
    """A 20x20 map: instance 1 (rows 2-7), instance 2 (rows 12-17), stuff 3 (the rest of row 19)."""
    ids = np.zeros((20, 20), dtype=np.int64)
    ids[2:8, 2:8], ids[12:18, 12:18], ids[19] = 1, 2, 3
    return ids, [seg(1), seg(2), seg(3, category=2)]


def test_perfect_predictions_score_100(tmp_path):
    ids, segments = two_boxes()
    pred = [s | {"score": 0.9} if s["category_id"] == 1 else s for s in segments]
    result = ap_of(tmp_path, [(ids, segments)], [(ids, pred)])
    assert result["AP"] == pytest.approx(100.0) and result["AP50"] == pytest.approx(100.0)
    assert result["per_class"] == {1: pytest.approx(100.0)}  # class 3 has no ground truth: left out


def test_a_missed_instance_gives_51_of_101_recall_points(tmp_path):
    ids, segments = two_boxes()
    pred_ids = np.where(ids == 2, 0, ids)
    result = ap_of(tmp_path, [(ids, segments)], [(pred_ids, [seg(1, score=0.9), seg(3, category=2)])])
    assert result["AP"] == pytest.approx(100 * 51 / 101)  # precision 1 up to recall 0.5, then nothing


def test_a_false_positive_ranked_first_halves_precision(tmp_path):
    ids = np.zeros((20, 20), dtype=np.int64)
    ids[2:8, 2:8] = 1
    pred = ids.copy()
    pred[12:18, 12:18] = 2
    result = ap_of(tmp_path, [(ids, [seg(1)])], [(pred, [seg(1, score=0.5), seg(2, score=0.9)])])
    assert result["AP"] == pytest.approx(50.0)  # recall 1 is reached at precision 1/2


def test_partial_overlap_counts_at_the_thresholds_it_passes(tmp_path):
    ids = np.zeros((10, 10), dtype=np.int64)
    ids[0, :8] = 1
    pred = np.zeros_like(ids)
    pred[0, :5] = 1  # IoU 5/8 = 0.625: a hit at 0.50, 0.55, 0.60 only
    result = ap_of(tmp_path, [(ids, [seg(1)])], [(pred, [seg(1, score=0.7)])])
    assert result["AP"] == pytest.approx(30.0) and result["AP50"] == pytest.approx(100.0)
    assert result["AP75"] == pytest.approx(0.0)


def test_detections_on_crowd_are_not_false_positives_and_classes_must_agree(tmp_path):
    ids, _ = two_boxes()
    gt = [seg(1), seg(2, crowd=1), seg(3, category=2)]
    pred = [seg(1, score=0.5), seg(2, score=0.9), seg(3, category=2)]
    assert ap_of(tmp_path, [(ids, gt)], [(ids, pred)])["AP"] == pytest.approx(100.0)
    wrong_class = [seg(1, category=3, score=0.9), seg(3, category=2)]
    result = ap_of(tmp_path, [(ids, [seg(1), seg(3, category=2)])], [(np.where(ids == 2, 0, ids), wrong_class)])
    assert result["AP"] == pytest.approx(0.0)


def test_no_detection_scores_0_and_a_missing_score_is_refused(tmp_path):
    ids, segments = two_boxes()
    assert ap_of(tmp_path, [(ids, segments)], [(np.zeros_like(ids), [])])["AP"] == pytest.approx(0.0)
    with pytest.raises(KeyError, match="no 'score'"):
        ap_of(tmp_path, [(ids, segments)], [(ids, segments)])


def test_instance_score_is_class_probability_times_centroid_heatmap():
    panoptic = torch.full((4, 6), -1)
    panoptic[1:3, 0:4] = 1001  # class 1, centroid (1.5, 1.5) -> heatmap at (1, 1)
    panoptic[0, 5] = 0  # stuff class 0: no score
    logits = torch.zeros(2, 4, 6)
    logits[1, 1:3, 0:2] = float(np.log(3.0))  # probability of class 1: 3/4 on 4 pixels, 1/2 on 4
    heat = torch.zeros(1, 4, 6)
    heat[0, 1, 1] = 0.8
    scores = instance_scores(panoptic, logits, heat, thing_ids=[1])
    assert scores == {1001: pytest.approx((0.75 + 0.5) / 2 * 0.8)}


def reference_ap(images, max_dets=100):
    """COCO mask AP (%) written from the COCO definition, independent of pycocotools: ``images`` are
    ``(ground truth [(category, mask, crowd)], detections [(category, mask, score)])``."""
    classes = sorted({c for gts, _ in images for c, _, crowd in gts if not crowd})
    per_class = []
    for cls in classes:
        aps = []
        for t in THRESHOLDS:
            hits, n_gt = [], 0
            for gts, dets in images:
                truth = [(m, crowd) for c, m, crowd in gts if c == cls]
                n_gt += sum(not crowd for _, crowd in truth)
                used = [False] * len(truth)
                ranked = sorted([(s, m) for c, m, s in dets if c == cls], key=lambda d: -d[0])[:max_dets]
                for score, mask in ranked:
                    best = None
                    for crowd_pass in (False, True):  # a non-crowd match first, a crowd region after
                        best_iou = min(t, 1 - 1e-10)
                        for j, (gt_mask, crowd) in enumerate(truth):
                            if crowd != crowd_pass or (used[j] and not crowd):
                                continue
                            inter = (mask & gt_mask).sum()
                            iou = inter / mask.sum() if crowd else inter / (mask | gt_mask).sum()
                            if iou >= best_iou:
                                best, best_iou = j, iou
                        if best is not None:
                            break
                    if best is not None and truth[best][1]:
                        continue  # on a crowd region: ignored
                    if best is not None:
                        used[best] = True
                    hits.append((score, best is not None))
            hits.sort(key=lambda h: -h[0])
            tp = np.cumsum([h for _, h in hits])
            fp = np.cumsum([not h for _, h in hits])
            recall, precision = tp / n_gt, tp / np.maximum(tp + fp, np.spacing(1))
            precision = np.maximum.accumulate(precision[::-1])[::-1] if len(hits) else precision
            index = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
            aps.append(np.mean([precision[i] if i < len(hits) else 0.0 for i in index]))
        per_class.append(np.mean(aps))
    return 100 * float(np.mean(per_class))


def perturbed(ids, segments, things, rng):
    """Predictions from ground truth (crowd regions included): instances shifted, dilated or eroded, some
    dropped, two false-positive boxes of random thing classes; random scores. Later segments paint over
    earlier ones, as in a panoptic map; returns the map and its segments_info."""
    painted = []
    for info in segments:
        if info["category_id"] not in things or rng.random() < 0.15:
            continue
        mask = ids == info["id"]
        change = rng.integers(4)
        if change == 1:
            mask = np.roll(mask, tuple(rng.integers(-2, 3, size=2)), axis=(0, 1))
        elif change == 2:
            mask = ndimage.binary_dilation(mask)
        elif change == 3 and ndimage.binary_erosion(mask).any():
            mask = ndimage.binary_erosion(mask)
        painted.append((mask, int(info["category_id"])))
    for _ in range(2):
        y, x = rng.integers(0, ids.shape[0] - 8), rng.integers(0, ids.shape[1] - 8)
        box = np.zeros(ids.shape, dtype=bool)
        box[y:y + 8, x:x + 8] = True
        painted.append((box, int(rng.choice(sorted(things)))))
    pred = np.zeros_like(ids)
    for k, (mask, _) in enumerate(painted, start=1):
        pred[mask] = k
    infos = [seg(k, category, score=float(rng.random()))
             for k, (_, category) in enumerate(painted, start=1) if (pred == k).any()]
    return pred, infos


def compare_with_reference(tmp_path, gt_json, gt_folder, seed=0):
    """Predictions perturbed from the ground truth scored by instance_ap and by :func:`reference_ap`."""
    gt = _load_json(gt_json, ("annotations", "categories"))
    things = {int(c["id"]) for c in gt["categories"] if c["isthing"]}
    rng = np.random.default_rng(seed)
    writer = PanopticPredictionWriter(tmp_path, gt["categories"], f"pred_{seed}")
    reference_images = []
    for ann in gt["annotations"]:
        ids = read_panoptic_png(gt_folder / ann["file_name"])
        pred, infos = perturbed(ids, ann["segments_info"], things, rng)
        writer.add(ann["image_id"], ann["file_name"], pred, infos)
        truth = [(int(s["category_id"]), ids == s["id"], bool(s.get("iscrowd", 0)))
                 for s in ann["segments_info"] if int(s["category_id"]) in things]
        reference_images.append((truth, [(s["category_id"], pred == s["id"], s["score"]) for s in infos]))
    result = instance_ap(gt_json, gt_folder, writer.write(), writer.folder)
    assert 5.0 < result["AP"] < 95.0  # a non-trivial value
    assert result["AP"] == pytest.approx(reference_ap(reference_images), abs=1e-9)
    return result


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_an_independent_implementation_on_the_coco_panoptic_sample(tmp_path, seed):
    root = shared_dataset("coco_panoptic") / "annotations"
    compare_with_reference(tmp_path, root / "panoptic_val2017.json", root / "panoptic_val2017", seed)


def test_matches_an_independent_implementation_on_the_cityscapes_sample(tmp_path):
    source = shared_dataset("cityscapes")
    root = tmp_path / "cityscapes"
    shutil.copytree(source / "gtFine", root / "gtFine")
    gt_json = create_panoptic(root, "val")
    compare_with_reference(tmp_path, gt_json, gt_json.with_suffix(""))


def test_stage_refuses_a_non_positive_detection_limit():
    check_config(compose_config(["stage=panoptic"]))
    with pytest.raises(ValueError, match="instance_max_dets"):
        check_config(compose_config(["stage=panoptic", "stage.instance_max_dets=0"]))
