"""A killed training run, resumed in the same folder, ends exactly like an uninterrupted one."""

import csv
import json

import lightning as L
import pytest
import torch

from segnas.stages import run_stage

from conftest import TINY_TRAIN, compose_config


class _Crash(RuntimeError):
    pass


class CrashAfterEpoch(L.Callback):
    """Simulates a job killed in the middle of the epoch after ``epoch`` (whose checkpoints are on disk)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        if trainer.current_epoch == self.epoch + 1:
            raise _Crash(f"killed during epoch {self.epoch + 1}")


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _metric_rows(folder):
    with (folder / "csv" / "metrics.csv").open(newline="") as f:
        return [(row["epoch"], row["step"], row["val/mIoU"]) for row in csv.DictReader(f)]


def test_killed_and_resumed_training_matches_uninterrupted(tmp_path):
    overrides = [*TINY_TRAIN, "trainer.max_epochs=3"]
    straight = run_stage(compose_config(overrides, tmp_path / "straight"))

    resumed_dir = tmp_path / "resumed"
    with pytest.raises(_Crash):
        run_stage(compose_config(overrides, resumed_dir), extra_callbacks=[CrashAfterEpoch(0)])
    assert (resumed_dir / "checkpoints" / "last.ckpt").is_file()
    assert not (resumed_dir / "results.json").exists()
    killed_rows = _metric_rows(resumed_dir)
    assert killed_rows and killed_rows[-1][2]  # epoch 0 was logged up to its validation
    resumed = run_stage(compose_config(overrides, resumed_dir))

    assert resumed["global_step"] == straight["global_step"]
    assert resumed["val/mIoU"] == pytest.approx(straight["val/mIoU"], abs=1e-6)
    assert resumed["val/per_class_iou"] == pytest.approx(straight["val/per_class_iou"], abs=1e-6, nan_ok=True)
    a, b = _weights(straight["last_ckpt"]), _weights(resumed["last_ckpt"])
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    history = (resumed_dir / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["0", "1", "2"]
    assert json.loads((resumed_dir / "results.json").read_text())["epochs"] == 3
    assert torch.load(resumed["last_ckpt"], map_location="cpu", weights_only=True)["epoch"] == 2
    # the metric log is continued, not deleted: epoch 0 as logged before the kill, the redone steps once
    rows = _metric_rows(resumed_dir)
    assert rows[: len(killed_rows)] == killed_rows
    assert [r[:2] for r in rows] == [r[:2] for r in _metric_rows(tmp_path / "straight")]


def test_a_run_resumed_with_another_schedule_length_is_refused_naming_the_key(tmp_path):
    overrides = [*TINY_TRAIN, "trainer.max_epochs=1"]
    first = run_stage(compose_config(overrides, tmp_path))
    assert torch.load(first["last_ckpt"], map_location="cpu", weights_only=True)["segnas_schedule"]["max_epochs"] == 1
    weights = _weights(first["last_ckpt"])
    with pytest.raises(ValueError, match=r"trainer.max_epochs=2 \(it was trained with 1\)"):
        run_stage(compose_config([*TINY_TRAIN, "trainer.max_epochs=2"], tmp_path))
    after = _weights(tmp_path / "checkpoints" / "last.ckpt")
    assert all(torch.equal(weights[k], after[k]) for k in weights)  # nothing trained
    assert run_stage(compose_config(overrides, tmp_path))["epochs"] == 1  # the same settings still resume


@pytest.mark.slow  # 4-14 s (make test-slow keeps make test under 6 min with the shared data)
def test_an_exponential_schedule_trained_further_is_the_uninterrupted_longer_run(tmp_path):
    overrides = [*TINY_TRAIN, "optim.lr_schedule=exponential"]
    straight = run_stage(compose_config([*overrides, "trainer.max_epochs=2"], tmp_path / "straight"))
    run_stage(compose_config([*overrides, "trainer.max_epochs=1"], tmp_path / "further"))
    further = run_stage(compose_config([*overrides, "trainer.max_epochs=2"], tmp_path / "further"))
    assert further["global_step"] == straight["global_step"] and further["epochs"] == 2
    a, b = _weights(straight["last_ckpt"]), _weights(further["last_ckpt"])
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
