"""Cityscapes, Cityscapes panoptic, ADE20K and COCO panoptic loaders: the real samples in ../shared/data
(skipped when absent) and generated fixture trees for the splits the samples lack."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from segnas.data.ade20k import ADE20K_CLASSES, ADE20KDataModule, ADE20KDataset
from segnas.data.checks import DataCheckError
from segnas.data.cityscapes import (
    CITYSCAPES_THING_IDS,
    CityscapesDataModule,
    CityscapesDataset,
    CityscapesPanopticDataModule,
    create_panoptic,
    label_to_train_lut,
    main,
)
from segnas.data.coco_panoptic import COCOPanopticDataModule
from segnas.data.panoptic_targets import segments_from_labels
from segnas.metrics import pq_compute
from segnas.metrics.panoptic import PanopticQuality, id2rgb, rgb2id

from conftest import compose_config

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CITYSCAPES, ADE, COCO = DATA / "cityscapes", DATA / "ade20k" / "ADEChallengeData2016", DATA / "coco_panoptic"
FRAME = "frankfurt_000000_000294"
SMALL = {"crop_size": (64, 64), "scale_range": (1.0, 1.0), "batch_size": 2, "jitter": 0.0}


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real sample {path} not found")
    return path


def read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


# ----------------------------------------------------------------------------------------- Cityscapes

def test_label_id_to_train_id_table():
    lut = label_to_train_lut()
    expected = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
    for label_id in range(34):
        assert lut[label_id] == expected.get(label_id, 255), label_id
    assert sorted(CITYSCAPES_THING_IDS) == list(range(11, 19))


def test_cityscapes_real_frame():
    root = need(CITYSCAPES)
    ds = CityscapesDataset(root, "val")
    assert len(ds) == 1
    sample = ds.load(0)
    assert sample["image"].shape == (128, 256, 3) and sample["mask"].shape == (128, 256)
    # labelIds {1,2,3,4,7,8,11,13,17,20,21,23,24,26} -> train ids below, 1-4 ignored
    assert set(np.unique(sample["mask"]).tolist()) == {0, 1, 2, 4, 5, 7, 8, 10, 11, 13, 255}
    gt = root / "gtFine" / "val" / "frankfurt" / FRAME
    label_ids = read(Path(f"{gt}_gtFine_labelIds.png"))
    assert np.array_equal(sample["mask"], label_to_train_lut()[label_ids])
    # the shipped labelTrainIds were resized separately: 77 boundary pixels differ (data/README.md §3)
    assert (sample["mask"] != read(Path(f"{gt}_gtFine_labelTrainIds.png"))).sum() == 77
    dm = CityscapesDataModule(root, val_split="val")
    dm.setup("validate")
    item = dm.val_set[0]
    assert item["image"].shape == (3, 128, 256) and item["mask"].dtype == torch.int64


def test_cityscapes_missing_files_name_the_file_and_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"leftImg8bit.val does not exist.*expected the Cityscapes layout"):
        CityscapesDataset(tmp_path, "val")
    image = tmp_path / "leftImg8bit" / "val" / "aachen" / "aachen_000000_000019_leftImg8bit.png"
    image.parent.mkdir(parents=True)
    Image.fromarray(np.zeros((4, 8, 3), np.uint8)).save(image)
    (tmp_path / "gtFine" / "val" / "aachen").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"aachen_000000_000019_gtFine_labelIds\.png"):
        CityscapesDataset(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match=r"data\.root"):
        CityscapesDataModule(tmp_path / "nowhere")


def write_cityscapes_frame(root: Path, split: str, city: str, index: int, instance_ids: np.ndarray) -> None:
    stem = f"{city}_{index:06d}_000019"
    (root / "leftImg8bit" / split / city).mkdir(parents=True, exist_ok=True)
    (root / "gtFine" / split / city).mkdir(parents=True, exist_ok=True)
    h, w = instance_ids.shape
    Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
    label_ids = np.where(instance_ids >= 1000, instance_ids // 1000, instance_ids).astype(np.uint8)
    Image.fromarray(label_ids).save(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png")
    Image.fromarray(instance_ids.astype(np.uint16)).save(root / "gtFine" / split / city / f"{stem}_gtFine_instanceIds.png")


def test_create_panoptic_on_a_generated_train_split(tmp_path):
    # road everywhere; person 24001; a person crowd (plain label 24); a caravan (29, ignored in eval) instance
    ids = np.full((16, 32), 7, np.int64)
    ids[2:6, 2:6] = 24001
    ids[8:12, 2:8] = 24
    ids[2:6, 20:30] = 29001
    ids[15, :] = 0
    write_cityscapes_frame(tmp_path, "train", "aachen", 0, ids)
    main([str(tmp_path), "--splits", "train"])  # the command line
    json_path = tmp_path / "gtFine" / "cityscapes_panoptic_train.json"
    assert create_panoptic(tmp_path, "train") == json_path  # returns the JSON path
    data = json.loads(json_path.read_text())
    assert data["images"] == [{"id": "aachen_000000_000019", "width": 32, "height": 16,
                               "file_name": "aachen_000000_000019_leftImg8bit.png"}]
    segs = {s["id"]: s for s in data["annotations"][0]["segments_info"]}
    assert sorted(segs) == [7, 24, 24001]  # 0 and the caravan are dropped (void)
    assert segs[24] == {"id": 24, "category_id": 24, "area": 24, "bbox": [2, 8, 6, 4], "iscrowd": 1}
    assert segs[7]["iscrowd"] == 0 and segs[24001]["iscrowd"] == 0 and segs[24001]["area"] == 16
    png = rgb2id(read(tmp_path / "gtFine" / "cityscapes_panoptic_train" / "aachen_000000_000019_gtFine_panoptic.png"))
    assert np.array_equal(png, np.where(np.isin(ids, [7, 24, 24001]), ids, 0))
    assert len(data["categories"]) == 19 and sum(c["isthing"] for c in data["categories"]) == 8

    dm = CityscapesPanopticDataModule(tmp_path, train_split="train", val_split="train", **SMALL)
    dm.setup("fit")
    sample = dm.train_set.load(0)
    # person (train id 11) instance 1, the crowd is person with instance 0, caravan and void -> 255
    assert sample["mask"][3, 3] == 11 and sample["instance"][3, 3] == 1
    assert sample["mask"][9, 3] == 11 and sample["instance"][9, 3] == 0
    assert sample["mask"][3, 25] == 255 and sample["mask"][0, 0] == 0
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (1, 3, 64, 64) and batch["instance"].shape == (1, 64, 64)


def test_cityscapes_panoptic_real_frame(tmp_path):
    root = need(CITYSCAPES)
    shutil.copytree(root, tmp_path / "cityscapes")
    root = tmp_path / "cityscapes"
    dm = CityscapesPanopticDataModule(root, val_split="val")
    dm.prepare_data()  # no train split here: only val is created
    assert not (root / "gtFine" / "cityscapes_panoptic_train.json").exists()
    gt_json, gt_dir = dm.panoptic_files("val")
    assert (gt_json, gt_dir) == (root / "gtFine" / "cityscapes_panoptic_val.json",
                                 root / "gtFine" / "cityscapes_panoptic_val")
    segs = json.loads(gt_json.read_text())["annotations"][0]["segments_info"]
    # 8 stuff classes + persons 24000-24003 + cars 26000-26002; label ids 1-4 become void
    assert sorted(s["id"] for s in segs) == [7, 8, 11, 13, 17, 20, 21, 23, 24000, 24001, 24002, 24003,
                                             26000, 26001, 26002]
    res = pq_compute(gt_json, gt_dir, gt_json, gt_dir)
    assert res["All"]["pq"] == 1.0 and res["Things"]["n"] == 2 and res["Stuff"]["n"] == 8
    dm.setup("validate")
    sample = dm.val_set.load(0)
    label_ids = read(root / "gtFine" / "val" / "frankfurt" / f"{FRAME}_gtFine_labelIds.png")
    assert np.array_equal(sample["mask"], label_to_train_lut()[label_ids])
    assert len(np.unique(sample["instance"])) == 1 + 7
    assert dm.metadata()["thing_ids"] == list(range(11, 19))


# --------------------------------------------------------------------------------------------- ADE20K

def test_ade20k_real_validation_pairs():
    root = need(ADE)
    ds = ADE20KDataset(root, "val")
    assert len(ds) == 3 and len(ADE20K_CLASSES) == 150
    sizes = [ds.load(i)["mask"].shape for i in range(3)]
    assert sizes == [(512, 683), (364, 500), (300, 400)]
    sample = ds.load(0)
    raw = read(root / "annotations" / "validation" / "ADE_val_00000001.png")
    # values {0,1,2,3,5,7,10,18} -> 0 ignored, the rest minus one
    assert set(np.unique(sample["mask"]).tolist()) == {255, 0, 1, 2, 4, 6, 9, 17}
    assert (sample["mask"] == 255).sum() == (raw == 0).sum() > 0
    assert np.array_equal(sample["mask"][raw > 0], raw[raw > 0] - 1)
    assert ADE20K_CLASSES[0] == "wall" and ADE20K_CLASSES[149] == "flag"


def test_ade20k_generated_training_split_and_errors(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    rng = np.random.default_rng(0)
    for split in ("training", "validation"):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / split).mkdir(parents=True)
        for k in range(2):
            Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(
                root / "images" / split / f"ADE_{split}_{k}.jpg")
            Image.fromarray(rng.integers(0, 151, (40, 50), dtype=np.uint8)).save(
                root / "annotations" / split / f"ADE_{split}_{k}.png")
    dm = ADE20KDataModule(root, **SMALL)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 64, 64)
    valid = batch["mask"][batch["mask"] != 255]
    assert valid.min() >= 0 and valid.max() <= 149
    Image.fromarray(np.full((40, 50), 151, np.uint8)).save(root / "annotations" / "training" / "ADE_training_0.png")
    with pytest.raises(ValueError, match=r"ADE_training_0\.png holds values up to 151"):
        ADE20KDataset(root, "train").load(0)
    (root / "annotations" / "training" / "ADE_training_1.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"ADE_training_1\.png.*expected the ADE20K SceneParsing layout"):
        ADE20KDataset(root, "train")


# ---------------------------------------------------------------------------------------- COCO panoptic

def test_coco_panoptic_real_sample_mapping_and_round_trip():
    root = need(COCO)
    dm = COCOPanopticDataModule(root)
    assert dm.num_classes == 133 and len(dm.thing_ids) == 80
    assert dm.category_ids[0] == 1 and dm.category_ids[-1] == 200  # person first, ids 1..200 with gaps
    assert all(t < 80 for t in dm.thing_ids)  # thing ids (1..90) sort before stuff ids (92..200)
    dm.setup("validate")
    ds = dm.val_set
    gt = json.loads((root / "annotations" / "panoptic_val2017.json").read_text())
    metric = PanopticQuality(gt["categories"])
    for index, record in enumerate(ds.records):
        sample = ds.load(index)
        ids = rgb2id(read(record.panoptic))
        assert sample["mask"].shape == ids.shape == sample["image"].shape[:2]
        assert (sample["mask"] == 255).sum() == (ids == 0).sum()
        if record.image_id == 142238:
            assert (sample["mask"] == 255).sum() == 2712
            crowd = ids == 3153362  # the crowd of persons: class person, no instance
            assert (sample["mask"][crowd] == 0).all() and (sample["instance"][crowd] == 0).all()
            assert len(np.unique(sample["instance"])) == 1 + 14  # 13 persons + 1 sports ball
        # mask + instance -> segments again: must be the ground truth itself (PQ 1 with crowd kept)
        seg_ids, segments = segments_from_labels(sample["mask"], sample["instance"], dm.thing_ids)
        segments = [{**s, "category_id": dm.category_ids[s["category_id"]]} for s in segments]
        metric.update(ids, record.segments, seg_ids, segments)
    res = metric.compute()
    assert res["All"] == {"pq": 1.0, "sq": 1.0, "rq": 1.0, "n": 8}
    gt_json, gt_dir = dm.panoptic_files("val")
    assert pq_compute(gt_json, gt_dir, gt_json, gt_dir)["All"]["pq"] == 1.0


def test_coco_panoptic_errors_name_the_file(tmp_path):
    root = tmp_path / "coco"
    shutil.copytree(need(COCO), root)
    ann_path = root / "annotations" / "panoptic_val2017.json"
    data = json.loads(ann_path.read_text())
    data["annotations"][0]["segments_info"][0]["category_id"] = 999
    ann_path.write_text(json.dumps(data))
    with pytest.raises(KeyError, match="unknown category_id 999"):
        COCOPanopticDataModule(root).build_dataset("val", None).load(0)
    with pytest.raises(DataCheckError, match=r"split 'val': 1 of 2 samples(?s:.*)unknown category_id 999"):
        COCOPanopticDataModule(root).setup("validate")  # found before any training
    (root / "annotations" / "panoptic_val2017" / "000000439180.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"000000439180\.png.*expected the COCO panoptic layout"):
        COCOPanopticDataModule(root).setup("validate")
    with pytest.raises(FileNotFoundError, match=r"panoptic_train2017\.json"):
        COCOPanopticDataModule(root, val_split="train").setup("validate")


def test_coco_panoptic_generated_train_split(tmp_path):
    root = tmp_path / "coco"
    categories = [{"id": 1, "name": "person", "isthing": 1}, {"id": 5, "name": "car", "isthing": 1},
                  {"id": 100, "name": "grass", "isthing": 0}]
    for split in ("train2017", "val2017"):
        (root / split).mkdir(parents=True)
        png_dir = root / f"panoptic_{split}"  # detectron2 keeps the PNG folder under the root
        png_dir.mkdir(parents=True)
        ids = np.full((48, 40), 7, np.int64)
        ids[5:20, 5:15] = 300
        ids[25:40, 20:35] = 70000
        ids[0, :] = 0
        Image.fromarray(np.zeros((48, 40, 3), np.uint8)).save(root / split / "a.jpg")
        Image.fromarray(id2rgb(ids)).save(png_dir / "a.png")
        segments = [{"id": 7, "category_id": 100, "iscrowd": 0}, {"id": 300, "category_id": 5, "iscrowd": 0},
                    {"id": 70000, "category_id": 1, "iscrowd": 1}]
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"panoptic_{split}.json").write_text(json.dumps({
            "images": [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 48}],
            "annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": segments}],
            "categories": categories}))
    dm = COCOPanopticDataModule(root, **SMALL)
    assert dm.category_ids == [1, 5, 100] and dm.thing_ids == frozenset({0, 1})
    dm.setup("fit")
    sample = dm.train_set.load(0)
    assert sample["mask"][10, 10] == 1 and sample["instance"][10, 10] == 1  # car, first non-crowd thing
    assert sample["mask"][30, 30] == 0 and sample["instance"][30, 30] == 0  # person crowd
    assert sample["mask"][0, 0] == 255 and sample["mask"][45, 2] == 2
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (1, 3, 64, 64)
    assert (batch["instance"][batch["mask"] == 255] == 0).all()


# --------------------------------------------------------------------------------------------- configs

@pytest.mark.parametrize(
    ("group", "sample", "num_classes"),
    [("cityscapes", "cityscapes", 19), ("cityscapes_panoptic", "cityscapes", 19),
     ("ade20k", "ade20k/ADEChallengeData2016", 150), ("coco_panoptic", "coco_panoptic", 133)],
)
def test_data_configs_build_the_datamodules(group, sample, num_classes, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(need(DATA / sample), root)  # cityscapes_panoptic writes its JSON into gtFine/
    cfg = compose_config([f"data={group}", f"data.root={root}"], tmp_path / "out")
    dm = instantiate(cfg.data, _convert_="all")
    assert dm.metadata()["num_classes"] == num_classes
    dm.prepare_data()
    dm.setup("validate")
    item = dm.val_set[0]
    assert item["image"].dim() == 3 and item["image"].shape[1:] == item["mask"].shape
