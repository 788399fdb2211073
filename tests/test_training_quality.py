"""Slow: the default synthetic training run learns the task well above chance."""

import numpy as np
import pytest

from segnas.data.synthetic import SyntheticDataset
from segnas.stages import run_stage

from conftest import compose_config


def majority_class_miou(num_val: int, num_classes: int) -> float:
    """mIoU (%) of predicting the most frequent class everywhere on the synthetic val split."""
    ds = SyntheticDataset(num_val, split="val", num_classes=num_classes)
    counts = sum(np.bincount(ds.load(i)["mask"].ravel(), minlength=num_classes) for i in range(num_val))
    present = counts > 0
    return 100.0 * counts.max() / counts.sum() / present.sum()


@pytest.mark.slow
def test_default_synthetic_training_beats_chance_by_far(tmp_path):
    results = run_stage(compose_config(["trainer.enable_progress_bar=false", "logger=none"], tmp_path))
    chance = majority_class_miou(64, 6)
    assert results["val/mIoU"] > 3 * chance, (results["val/mIoU"], chance)
    # the context pair is only separable with image-wide context (the ASPP's image pooling)
    per_class = results["val/per_class_iou"]
    assert per_class["context_a"] > 0 and per_class["context_b"] > 0
