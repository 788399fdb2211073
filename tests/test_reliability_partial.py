"""Reliability (issue 23 items 5 and 7): the partial cases of the user trial, each reproduced on a tiny run."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest
import torch

from segnas.config_checks import ConfigError
from segnas.proxies.evolution import cached_statistics
from segnas.proxies.expression import LayerStats
from segnas.search import ArchiveMismatch
from segnas.search.problem import MAX_REJECTED_FIRST
from segnas.stages import run_stage
from segnas.utils import Refused
from segnas.utils.lock import FolderInUse, run_folder_lock

from conftest import TINY_PROXY_SEARCH, TINY_TRAIN, TINY_ZERO_SHOT, compose_config

ZERO_SHOT = [*TINY_ZERO_SHOT, "search.max_macs_g=0.02"]


class _Unsafe:
    """An object a ``weights_only`` load refuses (a pickled class, i.e. code to run)."""


def _stats() -> list[list[LayerStats]]:
    """One architecture of one layer of statistics."""
    return [[LayerStats(torch.ones(2, 3), torch.ones(3, 3), torch.ones(3, 3), 1.0)]]


@pytest.mark.parametrize("content", ["text", "torn", "other", "unsafe"])
def test_a_corrupt_statistics_cache_is_rebuilt_with_a_warning_naming_it(
    tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    path, context, calls = tmp_path / "train_statistics.pt", {"batch_size": 2}, []

    def build() -> list[list[LayerStats]]:
        calls.append(1)
        return _stats()

    cached_statistics(build, path, context)
    whole = path.read_bytes()
    if content == "text":
        path.write_text("not a torch file at all\n")
    elif content == "torn":
        path.write_bytes(whole[: len(whole) // 2])
    elif content == "other":
        torch.save({"format": 2}, path)
    else:
        torch.save({"context": context, "stats": _Unsafe()}, path)
    with caplog.at_level(logging.WARNING):
        rebuilt = cached_statistics(build, path, context)
    assert len(calls) == 2 and torch.equal(rebuilt[0][0].weight, _stats()[0][0].weight)
    assert any(str(path) in r.getMessage() and "rebuilding" in r.getMessage() for r in caplog.records)
    cached_statistics(build, path, context)  # the rebuilt file is good again
    assert len(calls) == 2


# ------------------------------------------------------------------- a refused re-run changes nothing

def _folder(folder: Path) -> dict[str, bytes]:
    """Every file of ``folder`` with its contents."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


REFUSED = {  # a first run, and a re-run its folder refuses (another archive context, another schedule length)
    "search": (ZERO_SHOT, ["score.proxy=synflow"], ArchiveMismatch, "score"),
    "train": ([*TINY_TRAIN, "trainer.max_epochs=1"], ["trainer.max_epochs=2"], Refused, "max_epochs=2"),
}


@pytest.mark.parametrize("stage", sorted(REFUSED))
def test_a_refused_rerun_leaves_the_folder_as_it_was(tmp_path: Path, stage: str) -> None:
    first, other, error, match = REFUSED[stage]
    run_stage(compose_config(first, tmp_path))
    before = _folder(tmp_path)
    with pytest.raises(error, match=match):
        run_stage(compose_config([*first, *other], tmp_path))
    after = _folder(tmp_path)
    assert {k: v for k, v in after.items() if not k.endswith(".log")} == \
        {k: v for k, v in before.items() if not k.endswith(".log")}


@pytest.mark.slow  # 3-7 s (make test-slow keeps make test under 6 min on a slow host)
def test_a_rerun_without_the_random_baseline_leaves_no_random_genotypes(tmp_path: Path) -> None:
    first = run_stage(compose_config(ZERO_SHOT, tmp_path))
    assert first["random_picks"] and list((tmp_path / "genotypes").glob("random_*.yaml"))
    again = run_stage(compose_config([*ZERO_SHOT, "search.random_baseline=false"], tmp_path))
    assert "random_picks" not in again and not list((tmp_path / "genotypes").glob("random_*.yaml"))
    assert list((tmp_path / "genotypes").glob("arch_*.yaml"))


def test_a_warm_start_pool_smaller_than_the_population_fails_before_the_supernet_trains(tmp_path: Path) -> None:
    cfg = compose_config(["stage=search", "debug=tiny", "search.warm_start=proxy", "search.population=4",
                          "search.warm_start_pool=3"], tmp_path)
    with pytest.raises(ConfigError, match=r"search.warm_start_pool \(3\).*search.population=4"):
        run_stage(cfg)
    assert not list(tmp_path.iterdir())  # no supernet trained, no attempt started


def test_a_budget_no_network_meets_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"none of the first 500 candidates .*params_m.*1e-06"):
        run_stage(compose_config([*TINY_PROXY_SEARCH, "search.max_params_m=0.000001"], tmp_path))
    assert len((tmp_path / "archive.jsonl").read_text().splitlines()) <= 1 + MAX_REJECTED_FIRST  # was 10,000


@pytest.mark.parametrize("stage, override", [
    ("supernet", "stage.module.lr=-1"),
    ("supernet", "stage.module.lr=abc"),
    ("supernet", "stage.module.momentum=2"),
    ("supernet", "stage.module.lr_gamma=0"),
    ("supernet", "stage.sandwich_random=-1"),
    ("search", "score.supernet.module.lr=0"),
    ("search", "score.supernet.module.weight_decay=-1"),
    ("search", "score.supernet.space_overrides.min_layers=0"),
    ("search", "search.warm_start_batch.batch_size=0"),
    ("correlate", "stage.batch.num_classes=0"),
    ("train", "model.output_stride=0"),
    ("panoptic", "stage.targets.sigma=0"),
])
def test_keys_without_a_range_check_before_fail_naming_the_key(tmp_path: Path, stage: str, override: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(override.split("=")[0])):
        run_stage(compose_config([f"stage={stage}", "debug=tiny", override], tmp_path))
    assert not list(tmp_path.iterdir())  # before any work


@pytest.mark.parametrize("kind", ["read-only", "a file"])
def test_a_checkpoint_folder_that_cannot_hold_checkpoints_fails_before_training_naming_it(
    tmp_path: Path, kind: str
) -> None:
    folder = tmp_path / "checkpoints"
    if kind == "a file":
        folder.write_text("not a folder\n")
    elif os.geteuid() != 0:
        folder.mkdir(mode=0o555)
    else:  # root writes into any mode: a folder of a file system where no file can be created
        folder.symlink_to("/proc/self")
    with pytest.raises(OSError, match=re.escape(f"checkpoint folder {os.path.realpath(folder)} cannot hold")):
        run_stage(compose_config([*TINY_TRAIN], tmp_path))
    assert not (tmp_path / "history.csv").exists()  # not one epoch trained


@pytest.mark.parametrize("text", ["this is not a checkpoint", "eeeeeeeeeeeeeeeeeeeeeeee"])
def test_a_text_file_as_checkpoint_fails_naming_the_file(tmp_path: Path, text: str) -> None:
    ckpt = tmp_path / "text.ckpt"
    ckpt.write_text(text)  # 24 bytes of text
    with pytest.raises(ValueError, match=re.escape(f"checkpoint {ckpt} cannot be read")):
        run_stage(compose_config(["stage=evaluate", "debug=tiny", f"ckpt_path={ckpt}"], tmp_path / "run"))


def test_an_identical_concurrent_search_computes_nothing(tmp_path: Path) -> None:
    with run_folder_lock(tmp_path):  # the first search, running (already fixed by the run-folder lock, item 3)
        with pytest.raises(FolderInUse, match=rf"{tmp_path} is in use"):
            run_stage(compose_config(ZERO_SHOT, tmp_path))
        assert not (tmp_path / "archive.jsonl").exists() and not (tmp_path / "config.yaml").exists()
