"""Supernet path sampling (``supernet.sampling``: prior | uniform | sandwich) and in-place distillation: the paths
each step draws, the sandwich step's accumulated gradient, the distillation loss, and the config keys."""

from __future__ import annotations

import copy
from collections import Counter

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from segnas.config_aliases import translate_aliases
from segnas.lit.supernet import _TRAIN_STREAM, SupernetModule
from segnas.search.scoring import build_supernet_module
from segnas.utils.config import plain

from conftest import compose_config

SPACE = {"name": "hyctas", "layers": 4, "min_layers": 4, "filter_multiplier": 2}


def _module(**kwargs: object) -> SupernetModule:
    return SupernetModule(dict(SPACE), num_classes=3, seed=3, val_archs=1, **kwargs)


def _batch(n: int = 4, size: int = 32) -> dict[str, torch.Tensor]:
    image = torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))
    return {"image": image, "mask": (image[:, 0] > 0).long() + (image[:, 1] > 0.5).long()}


def test_prior_and_uniform_draw_one_path_with_their_branch_counts() -> None:
    prior, uniform = _module(), _module(sampling="uniform")
    for step in range(3):  # prior: exactly the one-path stream of earlier versions
        assert prior.step_paths(step) == [prior.space.sample(np.random.default_rng([3, _TRAIN_STREAM, step]))]
    counts = {name: Counter(m.step_paths(step)[0].num_branches for step in range(1500))
              for name, m in (("prior", prior), ("uniform", uniform))}
    assert prior.paths_per_step == uniform.paths_per_step == 1
    for name, expected in (("prior", (0.2, 0.3, 0.5)), ("uniform", (1 / 3,) * 3)):
        frequencies = [counts[name][n] / 1500 for n in (1, 2, 3)]
        assert np.allclose(frequencies, expected, atol=0.04), (name, frequencies)


def test_sandwich_draws_the_largest_the_smallest_and_k_random_paths() -> None:
    module = _module(sampling="sandwich", sandwich_random=3)
    paths = module.step_paths(7)
    assert module.paths_per_step == 5 and len(paths) == 5
    largest, smallest = paths[0], paths[1]
    assert largest.num_branches == 3 and largest.depth == 4 and all(b.widths == (1.0,) * 4 for b in largest.branches)
    assert all(largest.fusion)  # every gate open
    assert smallest.num_branches == 1 and smallest.depth == 4 and smallest.branches[0].widths == (4 / 12,) * 4
    assert "skip" not in smallest.branches[0].ops
    macs = {g: module._macs_params(g)[0] for g in module.space.smallest() + module.space.largest(3)}
    assert macs[largest] == max(macs.values()) and macs[smallest] == min(macs.values())
    assert module.step_paths(7) == paths and module.step_paths(8)[2:] != paths[2:]  # pure function of the step
    assert all(module.space.is_valid(g) for g in paths)


def test_inplace_distillation_puts_the_teacher_first() -> None:
    prior = _module(inplace_distill=True)
    plain_prior = _module()
    assert prior.paths_per_step == 2
    assert prior.step_paths(4) == [prior.largest, *plain_prior.step_paths(4)]
    assert _module(sampling="sandwich", inplace_distill=True).step_paths(4)[0] == prior.largest


def test_bad_sampling_settings_fail_naming_the_value() -> None:
    with pytest.raises(ValueError, match="sampling='fair'"):
        _module(sampling="fair")
    with pytest.raises(ValueError, match="sandwich_random=-1"):
        _module(sampling="sandwich", sandwich_random=-1)


def test_a_sandwich_step_applies_the_sum_of_the_paths_gradients() -> None:
    """One Lightning step on one batch moves the weights as SGD on the sum of the four paths' gradients, each
    path's gradient computed in its own backward pass."""
    torch.manual_seed(0)
    module = _module(sampling="sandwich", inplace_distill=True)
    expected, initial = copy.deepcopy(module), copy.deepcopy(module.state_dict())
    batch = _batch()
    optimizer = expected.configure_optimizers()["optimizer"]
    optimizer.zero_grad()
    for loss in expected.path_losses(batch, expected.step_paths(0)):  # teacher detached: separate passes add up
        loss.backward(retain_graph=True)
    optimizer.step()
    trainer = L.Trainer(max_steps=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, DataLoader([{k: v[i] for k, v in batch.items()} for i in range(4)], batch_size=4))
    assert any(not torch.equal(p, initial[n]) for n, p in module.named_parameters())  # the step moved weights
    for (name, got), want in zip(module.named_parameters(), expected.parameters(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=name)


def test_inplace_distillation_loss_is_finite_and_decreases() -> None:
    """The smallest network learning from the largest on one batch: its KL to the teacher falls (the teacher
    trains on the labels meanwhile)."""
    torch.manual_seed(0)
    module = _module(sampling="sandwich", inplace_distill=True, lr=0.05)
    optimizer = module.configure_optimizers()["optimizer"]
    batch, distill = _batch(size=16), []
    for _ in range(48):
        losses = module.path_losses(batch, [module.largest, module.smallest])
        optimizer.zero_grad()
        torch.stack(losses).sum().backward()
        optimizer.step()
        distill.append(float(losses[1].detach()))
    assert all(np.isfinite(distill))
    assert np.mean(distill[-8:]) < 0.3 * np.mean(distill[:8])  # measured: 0.071 -> 0.005


def test_sampling_keys_reach_the_module_at_their_addresses(tmp_path) -> None:
    meta = {"num_classes": 3, "ignore_index": 255}
    search = compose_config(["stage=search", "score.supernet.sampling=sandwich", "score.supernet.sandwich_random=1",
                             "score.supernet.inplace_distill=true"], tmp_path)
    module = build_supernet_module(search, plain(search.score.supernet), meta)
    assert (module.hparams.sampling, module.hparams.sandwich_random, module.hparams.inplace_distill) == \
        ("sandwich", 1, True) and module.paths_per_step == 3
    supernet = compose_config(["stage=supernet", "stage.sampling=uniform"], tmp_path)
    assert build_supernet_module(supernet, plain(supernet.stage), meta).hparams.sampling == "uniform"
    assert compose_config(["stage=correlate"], tmp_path).score.supernet.sampling == "prior"  # the paper's default
    assert translate_aliases(["stage=correlate", "stage.supernet.sampling=sandwich"]) == \
        ["stage=correlate", "score.supernet.sampling=sandwich"]  # the address before the composition issue


class _Recorder(L.Callback):
    """The step losses of each epoch and the train/loss each epoch's validation end reports."""

    def __init__(self) -> None:
        self.steps: list[list[float]] = []
        self.reported: list[float] = []

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.steps.append([])

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_idx) -> None:
        self.steps[-1].append(float(outputs["loss"]))

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.sanity_checking:  # where MetricHistory takes its history.csv row
            self.reported.append(float(trainer.callback_metrics["train/loss"]))


def test_each_epochs_history_row_holds_that_epochs_mean_training_loss() -> None:
    torch.manual_seed(0)
    batch = _batch()
    samples = [{k: v[i] for k, v in batch.items()} for i in range(4)]
    recorder = _Recorder()
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", callbacks=[recorder], num_sanity_val_steps=0)
    trainer.fit(_module(), DataLoader(samples, batch_size=2), DataLoader(samples[:2], batch_size=2))
    assert recorder.reported == pytest.approx([np.mean(s) for s in recorder.steps], rel=1e-6)
    assert recorder.reported[0] != pytest.approx(recorder.steps[0][-1])  # not the last step's loss
