"""What the ``segnas`` command prints: the help without arguments, user errors as messages (tracebacks with
HYDRA_FULL_ERROR=1), misspelled keys refused with the nearest key (``+`` included), results tables."""

import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import lightning as L
import pytest
import wandb
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException
from lightning.pytorch.loggers import CSVLogger
from omegaconf import OmegaConf

from segnas.utils.console import (
    FULL_ERROR,
    SweepResultsTable,
    error_message,
    report_user_errors,
    results_table,
    sweep_table,
)
from segnas.utils.loggers import build_loggers
from segnas.utils.overrides import refuse_unknown_additions
from segnas.utils.quiet import LIGHTNING_LOGGER, quiet_console

from conftest import REPO, compose_config


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != FULL_ERROR}
    return subprocess.run([sys.executable, "-m", "segnas", *args], capture_output=True, text=True, cwd=REPO,
                          env={**environ, "OMP_NUM_THREADS": "1", **env}, timeout=300)  # fmt: skip


def _refuse_additions(overrides: list[str]) -> None:
    """:func:`refuse_unknown_additions` in a Hydra job composed from ``overrides``."""
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="segnas.conf", version_base="1.3"):
        HydraConfig.instance().set_config(compose(config_name="config", overrides=overrides, return_hydra_config=True))
        try:
            refuse_unknown_additions()
        finally:
            HydraConfig.instance().cfg = None


def test_no_arguments_prints_the_help() -> None:
    proc = _cli()
    assert proc.returncode == 0 and "== Stages (stage=NAME) ==" in proc.stdout and "== Examples ==" in proc.stdout


@pytest.mark.slow  # a subprocess (make test-slow)
def test_a_user_error_prints_its_message_without_a_traceback(tmp_path: Path) -> None:
    proc = _cli("stage=evaluate", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 1 and "Error: this stage needs ckpt_path=PATH" in proc.stderr
    assert "Traceback" not in proc.stderr and "HYDRA_FULL_ERROR=1" in proc.stderr


def test_user_errors_exit_1_and_other_errors_propagate(capsys, monkeypatch) -> None:
    def fails(err: Exception):
        def app() -> None:
            raise err
        return app

    monkeypatch.delenv(FULL_ERROR, raising=False)
    with pytest.raises(SystemExit) as exit_info:
        report_user_errors(fails(FileNotFoundError("no such file: data/x")))
    assert exit_info.value.code == 1 and "Error: no such file: data/x" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        report_user_errors(fails(KeyError("unknown search space 'hyctsa'")))
    assert "Error: unknown search space 'hyctsa'\n" in capsys.readouterr().err  # not the KeyError's repr
    with pytest.raises(RuntimeError):  # not a user error: its traceback is shown
        report_user_errors(fails(RuntimeError("bug")))
    assert FULL_ERROR not in os.environ  # restored
    monkeypatch.setenv(FULL_ERROR, "1")
    with pytest.raises(ValueError):  # HYDRA_FULL_ERROR=1: the error and its traceback
        report_user_errors(fails(ValueError("bad value")))


def test_a_misspelled_key_is_named_with_the_nearest_one_and_no_plus_advice() -> None:
    with pytest.raises(ConfigCompositionException) as err:
        compose_config(["stage=search", "search.populaton=8"])
    message = error_message(err.value)
    assert "'search.populaton'" in message and "did you mean 'search.population'?" in message and "+" not in message


def test_plus_refuses_keys_the_config_cannot_take() -> None:
    with pytest.raises(ValueError) as err:
        _refuse_additions(["stage=search", "+search.populaton=8", "+stage.progres=false", "+trainer.profilr=simple",
                           "+foo.bar=1"])
    for problem in ("+search.populaton=8: the config has no 'search.populaton' (did you mean 'search.population'?)",
                    "no 'stage.progres' (did you mean 'stage.progress'?)",  # stage._target_ is no class to check it
                    "no 'trainer.profilr' (did you mean 'trainer.profiler'?)",  # a keyword of lightning's Trainer
                    "+foo.bar=1: the config has no 'foo'"):  # fmt: skip
        assert problem in str(err.value)
    _refuse_additions(["stage=search", "score=proxy",
                       "+score.options.loss_reduction=image",  # an open mapping
                       "+trainer.profiler=simple",  # a keyword argument of the mapping's _target_
                       "+callbacks.timer={_target_:lightning.pytorch.callbacks.Timer}",  # a new component
                       "++trainer.max_epochs=2"])  # an existing key  # fmt: skip


def test_results_tables_of_a_run_and_of_a_sweep(tmp_path: Path, capsys) -> None:
    results = {"hypervolume": 0.41, "hypervolume_random": 0.38, "beats_random": True, "n_evaluated": 12,
               "score_metric": "miou", "pareto": [{"miou": 30.5}, {"miou": 42.25}], "world_size": 1}
    table = results_table(results, "search results:")
    assert table.splitlines() == ["search results:", "  hypervolume         0.41", "  hypervolume_random  0.38",
                                  "  beats_random        yes", "  n_evaluated         12", "  best miou           42.25"]
    assert results_table({"kendall_x": 0.5, "name": "a", "n": 3}, "t:").splitlines()[1:] == ["  kendall_x  0.5",
                                                                                          "  n          3"]
    for job, seed in ((0, 0), (1, 1), (2, 2)):
        (tmp_path / str(job) / ".hydra").mkdir(parents=True)
        OmegaConf.save(OmegaConf.create(["stage=train", f"seed={seed}"]), tmp_path / str(job) / ".hydra" / "overrides.yaml")
        if job < 2:  # job 2 failed: no results
            (tmp_path / str(job) / "results.json").write_text(json.dumps({"val/mIoU": 10.0 + job, "fps": 5}))
    assert sweep_table(tmp_path).splitlines()[1:] == ["| job | overrides | val/mIoU | fps |", "|---|---|---|---|",
                                                      "| 0 | seed=0 | 10 | 5 |", "| 1 | seed=1 | 11 | 5 |",
                                                      "| 2 | seed=2 | - | - |"]
    SweepResultsTable().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert "| 1 | seed=1 | 11 | 5 |" in capsys.readouterr().out


def test_no_lightning_tips_pytree_deprecation_or_wandb_anonymous_warning(tmp_path: Path, caplog, capfd,
                                                                         monkeypatch) -> None:  # fmt: skip
    quiet_console()
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger(LIGHTNING_LOGGER)
    logger.addHandler(handler)
    try:
        L.Trainer(accelerator="cpu", logger=CSVLogger(tmp_path), enable_progress_bar=False)
    finally:
        logger.removeHandler(handler)
    messages = [r.getMessage() for r in records]
    assert any("GPU available" in m for m in messages) and not any("Tip" in m for m in messages)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_console()
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec)`",
                      DeprecationWarning, stacklevel=1)  # fmt: skip
    assert not caught
    monkeypatch.setenv("WANDB_MODE", "offline")
    [_, wandb_logger] = build_loggers(compose_config(["logger=wandb"], tmp_path))
    wandb_logger.experiment  # noqa: B018 - starts the run
    wandb.finish()
    assert "anonymous" not in capfd.readouterr().err
