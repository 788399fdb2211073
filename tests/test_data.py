import re

import numpy as np
import pytest
import torch
from PIL import Image

from segnas.data import (
    CamVidDataModule,
    CamVidDataset,
    SeededShuffleSampler,
    SyntheticDataModule,
    SyntheticDataset,
)
from segnas.data.checks import DataCheckError, cache_path
from segnas.data.cityscapes import CityscapesDataModule
from segnas.data.synthetic import SIGNAL_ROWS
from segnas.data.transforms import train_transform
from segnas.stages import run_stage

from conftest import TINY_TRAIN, compose_config, shared_dataset

# Train-split pixel counts per class (0..10) and void (11), from ../shared/data/README.md.
CAMVID_TRAIN_PIXELS = [
    10_682_767, 14_750_079, 623_349, 20_076_880, 2_845_085, 6_166_762,
    743_859, 714_595, 3_719_877, 405_385, 184_967, 2_503_995,
]


def test_synthetic_is_deterministic_per_seed_and_split():
    a = SyntheticDataset(4, seed=3).load(2)
    b = SyntheticDataset(4, seed=3).load(2)
    c = SyntheticDataset(4, seed=4).load(2)
    v = SyntheticDataset(4, seed=3, split="val").load(2)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["image"], c["image"])
    assert not np.array_equal(a["image"], v["image"])


def test_synthetic_labels_instances_and_context_cue():
    ds = SyntheticDataset(40, height=64, width=96, num_classes=7)
    for i in range(len(ds)):
        s = ds.load(i)
        assert s["image"].shape == (64, 96, 3) and s["image"].dtype == np.uint8
        assert s["mask"].shape == (64, 96) and s["mask"].max() < 7
        # instances exactly on thing classes (>= 2); stuff (sky 0 / ground 1) has instance id 0
        assert np.array_equal(s["instance"] > 0, s["mask"] >= 2)
        # the two context classes never co-occur; the signal bar's colour decides which one appears
        present = set(np.unique(s["mask"]).tolist())
        assert not {5, 6} <= present
        red_bar = s["image"][:SIGNAL_ROWS, :, 0].mean() > s["image"][:SIGNAL_ROWS, :, 2].mean()
        if 5 in present:
            assert red_bar
        if 6 in present:
            assert not red_bar


@pytest.mark.parametrize("num_classes", [3, 256, 300])
def test_synthetic_class_count_must_fit_the_uint8_labels(num_classes):
    with pytest.raises(ValueError, match=rf"data\.num_classes must be in 4\.\.255 .*uint8.*got {num_classes}"):
        SyntheticDataModule(num_classes=num_classes)


def test_synthetic_class_count_is_checked_before_training(tmp_path):
    with pytest.raises(ValueError, match=r"data\.num_classes must be in 4\.\.255"):
        run_stage(compose_config([*TINY_TRAIN, "data.num_classes=300"], tmp_path))
    assert not (tmp_path / "checkpoints").exists()


def test_train_transform_pads_image_with_zero_and_label_with_ignore():
    t = train_transform(crop_size=(64, 64), scale_range=(0.5, 0.5), hflip=False, jitter=0.0, mean=(0, 0, 0), std=(1, 1, 1))
    t.set_random_seed(0)
    out = t(image=np.full((32, 32, 3), 255, np.uint8), mask=np.ones((32, 32), np.uint8))
    # 32x32 scaled by 0.5 -> 16x16 content inside a 64x64 crop
    assert (out["mask"] == 1).sum() == 16 * 16
    assert (out["mask"] == 255).sum() == 64 * 64 - 16 * 16
    assert np.all(out["image"][out["mask"] == 255] == 0)


def test_colour_jitter_is_off_at_zero_strength(tmp_path):
    def steps(jitter: float) -> list[str]:
        return [type(t).__name__ for t in train_transform(crop_size=(32, 32), jitter=jitter).transforms]

    assert "ColorJitter" in steps(0.2) and "ColorJitter" not in steps(0.0)
    module = CityscapesDataModule(root=tmp_path, jitter=0.0)
    assert "ColorJitter" not in [type(t).__name__ for t in module.train_transform().transforms]


def test_sampler_order_depends_only_on_seed_and_epoch():
    s = SeededShuffleSampler(10, seed=1)
    first = list(s)
    assert list(s) == first
    s.set_epoch(1)
    second = list(s)
    assert second != first
    assert sorted(i for i, _ in second) == list(range(10))
    other = SeededShuffleSampler(10, seed=1)
    other.set_epoch(1)
    assert list(other) == second


def test_datamodule_batches_are_reproducible():
    def first_batch():
        dm = SyntheticDataModule(num_train=8, num_val=4, height=32, width=32, crop_size=(32, 32), batch_size=4, seed=5)
        dm.setup("fit")
        return next(iter(dm.train_dataloader()))

    a, b = first_batch(), first_batch()
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    assert a["image"].shape == (4, 3, 32, 32) and a["mask"].dtype == torch.long
    assert a["instance"].shape == (4, 32, 32)


def test_camvid_train_split_class_pixel_counts():
    root = shared_dataset("camvid")
    ds = CamVidDataset(root, "train")
    assert len(ds) == 367
    counts = np.zeros(12, np.int64)
    for _, label_path in ds.pairs:
        counts += np.bincount(np.asarray(Image.open(label_path)).ravel(), minlength=12)[:12]
    assert counts.tolist() == CAMVID_TRAIN_PIXELS
    sample = ds.load(0)
    assert sample["image"].shape == (360, 480, 3)
    assert set(np.unique(sample["mask"]).tolist()) <= set(range(11)) | {255}


@pytest.mark.slow  # 4-14 s (make test-slow keeps make test under 6 min with the shared data)
def test_camvid_datamodule_reduced_resolution_batches():
    root = shared_dataset("camvid")
    dm = CamVidDataModule(root, image_scale=0.25, crop_size=(64, 96), batch_size=2, val_batch_size=2, num_workers=0)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 64, 96)
    val = next(iter(dm.val_dataloader()))
    assert val["image"].shape == (2, 3, 90, 120)
    assert len(dm.val_set) == 101


def _write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _camvid_tree(root, label_value=3):
    for split in ("train", "val"):
        _write_png(root / split / "a.png", np.zeros((8, 8, 3), np.uint8))
        _write_png(root / f"{split}annot" / "a.png", np.full((8, 8), label_value, np.uint8))
    return root


def test_camvid_missing_root_shows_expected_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"(?s)does not exist.*trainannot"):
        CamVidDataModule(tmp_path / "nowhere")


def test_camvid_image_without_label_is_named(tmp_path):
    root = _camvid_tree(tmp_path)
    _write_png(root / "train" / "b.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match=re.escape(str(root / "train" / "b.png")) + ".*has no label"):
        CamVidDataset(root, "train")


def test_camvid_label_value_outside_class_set_is_named(tmp_path):
    root = _camvid_tree(tmp_path, label_value=12)
    with pytest.raises(ValueError, match=r"trainannot/a\.png holds values \[12\] outside the CamVid class set"):
        CamVidDataset(root, "train").load(0)


def test_camvid_void_maps_to_ignore(tmp_path):
    root = _camvid_tree(tmp_path, label_value=11)
    assert np.all(CamVidDataset(root, "train").load(0)["mask"] == 255)


def test_unreadable_png_is_named(tmp_path):
    root = _camvid_tree(tmp_path)
    (root / "train" / "a.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot read image .*train/a\.png"):
        CamVidDataset(root, "train").load(0)


def test_bad_validation_label_fails_before_training_naming_the_file(tmp_path):
    root = _camvid_tree(tmp_path / "camvid")
    _write_png(root / "valannot" / "a.png", np.full((8, 8), 12, np.uint8))
    out = tmp_path / "run"
    with pytest.raises(DataCheckError, match=r"split 'val': 1 of 1 samples are bad(?s:.*)valannot/a\.png.*\[12\]"):
        run_stage(compose_config(["data=camvid", f"data.root={root}", "data.crop_size=[8,8]", "data.batch_size=1",
                                  "data.image_scale=1.0", "data.num_workers=0", "trainer.accelerator=cpu",
                                  "trainer.max_epochs=1", "model.aspp_channels=16", "model.decoder_channels=16",
                                  "model.low_level_channels=8"], out))
    assert not (out / "checkpoints").exists()


def test_data_check_names_every_mismatched_pair(tmp_path):
    root = _camvid_tree(tmp_path)
    _write_png(root / "train" / "b.png", np.zeros((8, 8, 3), np.uint8))
    _write_png(root / "trainannot" / "b.png", np.zeros((6, 8), np.uint8))
    _write_png(root / "train" / "c.png", np.zeros((8, 8, 3), np.uint8))
    _write_png(root / "trainannot" / "c.png", np.full((8, 8), 20, np.uint8))
    with pytest.raises(DataCheckError, match=r"(?s)2 of 3 samples.*trainannot/b\.png.*has size.*trainannot/c\.png"):
        CamVidDataModule(root).setup("fit")


def test_data_check_is_cached_until_a_file_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGNAS_CACHE", str(tmp_path / "cache"))
    root = _camvid_tree(tmp_path / "camvid")
    CamVidDataModule(root).setup("fit")
    assert cache_path(root).is_file() and cache_path(root).is_relative_to(tmp_path / "cache")
    loads = []
    original = CamVidDataset.load
    monkeypatch.setattr(CamVidDataset, "load", lambda self, i: loads.append(i) or original(self, i))
    CamVidDataModule(root).setup("fit")
    assert loads == []  # unchanged files: not scanned again
    _write_png(root / "trainannot" / "a.png", np.full((8, 8), 30, np.uint8))
    with pytest.raises(DataCheckError, match=r"trainannot/a\.png"):
        CamVidDataModule(root).setup("fit")
    assert not list(root.rglob("*.json"))  # nothing written into the data folder
