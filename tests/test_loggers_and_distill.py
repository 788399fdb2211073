"""Optional loggers work offline and never replace the plain CSV outputs; distillation trains from a teacher."""

import pytest
import torch

from segnas.lit.losses import distillation_kl, hard_pixel_ce
from segnas.stages import run_stage

from conftest import TINY_TRAIN, compose_config


def test_wandb_offline_and_tensorboard_loggers(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out_wandb = tmp_path / "wandb_run"
    run_stage(compose_config(["logger=wandb", *TINY_TRAIN], out_wandb))
    assert list((out_wandb / "wandb").glob("offline-run-*")), "no offline W&B run written"
    assert (out_wandb / "csv" / "metrics.csv").is_file() and (out_wandb / "history.csv").is_file()

    out_tb = tmp_path / "tb_run"
    run_stage(compose_config(["logger=tensorboard", *TINY_TRAIN], out_tb))
    assert list((out_tb / "tensorboard").rglob("events.out.tfevents.*"))


@pytest.mark.slow  # 4-14 s (make test-slow keeps make test under 6 min with the shared data)
def test_distillation_from_a_teacher_checkpoint(tmp_path):
    teacher = run_stage(compose_config(TINY_TRAIN, tmp_path / "teacher"))
    student_cfg = [*TINY_TRAIN, f"stage.teacher_ckpt={teacher['last_ckpt']}", "optim.distill_weight=1.0",
                   "optim.distill_temperature=2.0", "model.backbone=resnet10t"]
    student = run_stage(compose_config(student_cfg, tmp_path / "student"))
    metrics = (tmp_path / "student" / "csv" / "metrics.csv").read_text()
    assert "train/loss_kd_step" in metrics
    ckpt = torch.load(student["last_ckpt"], map_location="cpu", weights_only=False)
    assert not any(k.startswith("teacher.") for k in ckpt["state_dict"]), "teacher weights leaked into checkpoint"


def test_distillation_kl_is_zero_for_identical_logits_and_positive_otherwise():
    logits = torch.randn(2, 5, 4, 4)
    assert distillation_kl(logits, logits, temperature=3.0).item() == pytest.approx(0.0, abs=1e-6)
    assert distillation_kl(logits, torch.randn(2, 5, 4, 4)).item() > 0


def test_hard_pixel_ce_keeps_only_the_hardest_pixels():
    # 4 valid pixels with known CE; top 50% keeps the two largest losses
    logits = torch.zeros(1, 2, 1, 5)
    logits[0, 0, 0] = torch.tensor([4.0, 2.0, 0.0, -2.0, 9.0])
    target = torch.tensor([[[0, 0, 0, 0, 255]]])
    per_pixel = torch.nn.functional.cross_entropy(logits[..., :4], target[..., :4], reduction="none").flatten()
    expected = per_pixel.sort(descending=True).values[:2].mean()
    assert hard_pixel_ce(logits, target, top_k_percent=0.5).item() == pytest.approx(expected.item())
    assert hard_pixel_ce(logits, target).item() == pytest.approx(per_pixel.mean().item())
