"""Scheduled drop path really drops whole samples at the scheduled rate in training, never in evaluation."""

import math

import lightning as L
import pytest
import torch

from segnas.callbacks.drop_path import DropPathSchedule, set_drop_path_rate
from segnas.data import SyntheticDataModule
from segnas.lit.retrain import RetrainModule
from segnas.nn import DropPath

NET = {
    "_target_": "segnas.models.build_network",
    "genotype": "pkg://hyctas_s",
    "filter_multiplier": 2,
    "output_stride": 8,
    "aux_heads": True,
}
STEPS = 16
MAX_RATE = 0.2


class DropRecorder:
    """Forward hooks on every DropPath: per call the rate, global step, samples dropped and kept."""

    def __init__(self, net: torch.nn.Module, trainer: L.Trainer) -> None:
        self.trainer = trainer
        self.calls: list[dict] = []
        self.handles = [m.register_forward_hook(self.hook) for m in net.modules() if isinstance(m, DropPath)]

    def hook(self, module, inputs, output) -> None:
        x = inputs[0].detach()
        y = output.detach()
        live = x.flatten(1).abs().sum(1) > 0
        dropped = (y.flatten(1).abs().sum(1) == 0) & live
        kept = live & ~dropped
        scale = 1.0 / (1.0 - module.p) if module.training and module.p > 0 else 1.0
        self.calls.append(
            {
                "training": module.training,
                "p": module.p,
                "step": self.trainer.global_step,
                "trials": int(live.sum()),
                "dropped": int(dropped.sum()),
                "kept_exact": bool(torch.allclose(y[kept], x[kept] * scale, rtol=1e-5, atol=1e-6)),
            }
        )


@pytest.fixture(scope="module")
def recorded():
    torch.manual_seed(0)
    data = SyntheticDataModule(
        num_train=8 * STEPS,
        num_val=8,
        height=32,
        width=32,
        crop_size=(32, 32),
        batch_size=8,
        val_batch_size=8,
        scale_range=(1.0, 1.0),
    )
    module = RetrainModule(NET, num_classes=data.num_classes, lr=0.01, warmup_steps=0)
    trainer = L.Trainer(
        max_steps=STEPS,
        max_epochs=-1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[DropPathSchedule(MAX_RATE, "step")],
    )
    recorder = DropRecorder(module.net, trainer)
    trainer.fit(module, datamodule=data)
    train_calls = list(recorder.calls)
    recorder.calls.clear()
    evaluator = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    evaluator.validate(module, datamodule=data, verbose=False)
    return train_calls, list(recorder.calls), module


def test_rate_follows_the_linear_schedule_step_by_step(recorded):
    train_calls, _, _ = recorded
    assert {c["step"] for c in train_calls} == set(range(STEPS))
    for call in train_calls:
        assert call["training"]
        assert call["p"] == pytest.approx(MAX_RATE * call["step"] / STEPS)


def test_empirical_drop_fraction_matches_the_scheduled_rate(recorded):
    train_calls, _, _ = recorded
    trials = sum(c["trials"] for c in train_calls)
    dropped = sum(c["dropped"] for c in train_calls)
    expected = sum(c["p"] * c["trials"] for c in train_calls)
    sigma = math.sqrt(sum(c["p"] * (1 - c["p"]) * c["trials"] for c in train_calls))
    assert trials > 1000 and expected > 50
    assert abs(dropped - expected) < 4 * sigma, (dropped, expected, sigma)
    # nothing is dropped at step 0 (rate 0); second half of training drops at about 0.15 on average
    assert sum(c["dropped"] for c in train_calls if c["step"] == 0) == 0
    late = [c for c in train_calls if c["step"] >= STEPS // 2]
    late_fraction = sum(c["dropped"] for c in late) / sum(c["trials"] for c in late)
    late_rate = sum(c["p"] * c["trials"] for c in late) / sum(c["trials"] for c in late)
    assert late_fraction == pytest.approx(late_rate, abs=0.05) and late_fraction > 0.08
    # kept samples are rescaled by 1 / (1 - p), so the expectation is unchanged
    assert all(c["kept_exact"] for c in train_calls)


def test_evaluation_never_drops(recorded):
    _, eval_calls, module = recorded
    assert eval_calls and all(not c["training"] for c in eval_calls)
    assert max(c["p"] for c in eval_calls) > 0.18  # the rate reached at the end of training stays set...
    assert sum(c["dropped"] for c in eval_calls) == 0  # ...but eval mode never drops
    assert all(c["kept_exact"] for c in eval_calls)  # and does not rescale
    net = module.net.eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(net(x), net(x))


def test_epoch_schedule_and_errors():
    schedule = DropPathSchedule(0.2, "epoch")
    trainer = L.Trainer(max_epochs=4, logger=False)
    assert schedule.rate(trainer) == 0.0
    trainer.fit_loop.epoch_progress.current.completed = 2
    assert schedule.rate(trainer) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="interval"):
        DropPathSchedule(0.2, "iteration")
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        set_drop_path_rate(torch.nn.Identity(), 1.0)
    assert set_drop_path_rate(torch.nn.Sequential(DropPath(), DropPath()), 0.3) == 2
