"""SasWOT's retraining recipe: OHEM CE, exponential lr, KD from a DeepLabV3+ teacher, the paper presets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from segnas.lit.losses import ohem_ce
from segnas.stages import run_stage

from conftest import TINY_TRAIN, compose_config


def test_ohem_keeps_the_hard_pixels_or_the_min_kept_least_confident() -> None:
    logits = torch.tensor([[4.0, 0.0], [0.0, 4.0], [0.2, 0.0], [0.0, 0.1]]).T.reshape(1, 2, 2, 2)
    target = torch.tensor([[[0, 1], [1, 0]]])  # confident, confident, wrong-ish, wrong-ish
    ce = F.cross_entropy(logits, target, reduction="none").flatten()
    hard = ce[[2, 3]].mean()
    assert ohem_ce(logits, target, thresh=0.7, min_kept=0.25) == pytest.approx(hard)
    assert ohem_ce(logits, target, thresh=0.7, min_kept=1.0) == pytest.approx(ce.mean())  # min_kept wins
    target[0, 0, 0] = 255
    assert torch.isfinite(ohem_ce(logits, target, thresh=0.7, min_kept=0.25))


@pytest.mark.slow  # ~5 s idle each: make test-slow
@pytest.mark.parametrize("experiment", ["saswot_cityscapes", "saswot_camvid"])
def test_saswot_presets_compose_and_train_a_few_steps(experiment: str, tmp_path) -> None:
    cfg = compose_config([f"experiment={experiment}"])
    o = cfg.optim
    assert (o.lr_schedule, o.lr_gamma, o.ohem_thresh, o.distill_weight) == ("exponential", 0.992, 0.7, 1.0)
    assert o.lr == (0.015 if experiment == "saswot_cityscapes" else 0.01)
    assert cfg.trainer.max_epochs == (800 if experiment == "saswot_cityscapes" else 80)
    assert list(cfg.data.crop_size) == [512, 1024] and cfg.stage.aux_weight == 0.2
    teacher = run_stage(compose_config(["stage=train", *TINY_TRAIN, "trainer.limit_train_batches=1"], tmp_path / "t"))
    tiny = [f"experiment={experiment}", "data=synthetic", "trainer=cpu", "debug=tiny", "trainer.max_epochs=2",
            "trainer.limit_train_batches=2", "trainer.check_val_every_n_epoch=1", "stage.input_size=[64,64]",
            f"stage.teacher_ckpt={teacher['last_ckpt']}"]
    results = run_stage(compose_config(tiny, tmp_path / "s"))
    assert results["space"] == "fasterseg" and 0.0 <= results["val/mIoU"] <= 100.0  # a range: 4 steps, 10-15 %
    history = (tmp_path / "s" / "csv" / "metrics.csv").read_text()
    assert "train/loss_kd_step" in history and "train/loss_aux0_step" in history and "train/loss_aux1_step" in history
    ckpt = torch.load(tmp_path / "s" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    lrs = [group["lr"] for group in ckpt["optimizer_states"][0]["param_groups"]]
    assert lrs[0] == pytest.approx(cfg.optim.lr * 0.992**2)  # exponential, per epoch


def test_distillation_without_a_teacher_is_refused(tmp_path) -> None:
    cfg = compose_config(["experiment=saswot_camvid", "data=synthetic", "trainer=cpu", "debug=tiny",
                          "stage.teacher_ckpt=null"], tmp_path)
    with pytest.raises(ValueError, match="teacher_ckpt"):
        run_stage(cfg)
