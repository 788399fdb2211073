"""Saved models carry their weights' hash and finite values: a bit flip, a NaN model or a diverged run never
passes silently."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from segnas.callbacks.checkpoints import AtomicCheckpointIO
from segnas.lit.inference import LIGHTNING_KEY, read_checkpoint
from segnas.stages import run_stage
from segnas.utils.integrity import HASH_KEY

from conftest import compose_config

MARK = 1.2345  # a weight value whose bytes are easy to find in the file


def _checkpoint(path: Path) -> None:
    state = {"net.weight": torch.full((64,), MARK), "net.bias": torch.zeros(4)}
    hparams = {"net_config": {"_target_": "segnas.models.build_network", "genotype": "pkg://hyctas_s"},
               "num_classes": 3}
    AtomicCheckpointIO().save_checkpoint({"state_dict": state, "hyper_parameters": hparams, LIGHTNING_KEY: "2"}, path)


def test_a_bit_flip_in_the_weights_fails_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    _checkpoint(path)
    assert HASH_KEY in read_checkpoint(path, "segmentation")
    data = bytearray(path.read_bytes())
    at = bytes(data).index(torch.full((64,), MARK).numpy().tobytes()) + 17
    data[at] ^= 0x04  # one bit of one weight
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"checkpoint {path} is corrupt"):
        read_checkpoint(path, "segmentation")


def test_non_finite_weights_are_refused_at_save_and_at_load(tmp_path: Path) -> None:
    state = {"w": torch.tensor([1.0, float("nan")])}
    with pytest.raises(ValueError, match=r"refusing to save .*non-finite weights in \['w'\]"):
        AtomicCheckpointIO().save_checkpoint({"state_dict": state}, tmp_path / "nan.ckpt")
    assert not (tmp_path / "nan.ckpt").exists()
    path = tmp_path / "foreign.ckpt"  # written by other code: no hash, a NaN
    torch.save({"state_dict": state, "hyper_parameters": {"net_config": {}, "num_classes": 3}, LIGHTNING_KEY: "2"},
               path)
    with pytest.raises(ValueError, match=rf"checkpoint {path} holds non-finite weights"):
        read_checkpoint(path, "segmentation")


def test_a_diverged_training_fails_without_any_callback(tmp_path: Path) -> None:
    cfg = compose_config(["stage=train", "debug=tiny", "callbacks=none", "optim.lr=1e8", "model.aspp_channels=8",
                          "model.decoder_channels=8", "model.low_level_channels=8"], tmp_path)
    with pytest.raises((RuntimeError, ValueError), match="diverged"):  # at the first save, else after the fit
        run_stage(cfg)
    assert not (tmp_path / "results.json").exists()


def test_trained_scores_are_keyed_by_the_trainer_settings_that_change_them() -> None:
    from segnas.search.scoring import trainer_context

    base = compose_config(["stage=correlate"]).trainer
    other = compose_config(["stage=correlate", "trainer.limit_train_batches=2"]).trainer
    cosmetic = compose_config(["stage=correlate", "trainer.enable_progress_bar=false"]).trainer
    assert trainer_context(base) != trainer_context(other)
    assert trainer_context(base) == trainer_context(cosmetic)
