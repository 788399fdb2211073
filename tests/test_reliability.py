"""Reliability (issue 13): re-runs never destroy or wrongly reuse results, budgets are validated before any
work, divergence fails, checkpoints load safely, malformed inputs name the file and key."""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from lightning.pytorch.loggers import CSVLogger
from omegaconf import OmegaConf

from segnas.callbacks import NonFiniteLossError, ResumingCSVLogger
from segnas.config_checks import ConfigError, problems
from segnas.lit.inference import load_checkpoint
from segnas.lit.segmentation import build_net
from segnas.proxies import benchmark
from segnas.spaces import arch_path, load_genotype
from segnas.stages import run_stage
from segnas.utils.run import prepare_run

from conftest import REPO, TINY_TRAIN, TINY_ZERO_SHOT, compose_config

ZERO_SHOT = [*TINY_ZERO_SHOT, "search.max_macs_g=0.02"]
TINY_SUPERNET = ["stage=supernet", "debug=tiny"]


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file of ``folder`` (but checkpoints) with its modification time and contents."""
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix != ".ckpt"}


# ---------------------------------------------------------------------------------- 1, 6: run folders

def test_resume_false_moves_earlier_outputs_aside_and_starts_over(tmp_path: Path) -> None:
    first = run_stage(compose_config(ZERO_SHOT, tmp_path))
    assert first["n_computed_this_run"] > 0
    again = run_stage(compose_config([*ZERO_SHOT, "resume=false"], tmp_path))
    assert again["n_computed_this_run"] == first["n_computed_this_run"]  # nothing reused from the archive
    old = tmp_path / "previous" / "attempt_1"
    for name in ("archive.jsonl", "results.json", "config.yaml", "candidates.csv", "genotypes"):
        assert (old / name).exists(), name
    assert json.loads((old / "results.json").read_text())["n_computed_this_run"] == first["n_computed_this_run"]
    assert sorted(p.name for p in (tmp_path / "configs").iterdir()) == ["attempt_1.yaml", "attempt_2.yaml"]
    assert OmegaConf.load(tmp_path / "config.yaml").resume is False
    assert OmegaConf.load(tmp_path / "configs" / "attempt_1.yaml").resume is True


def test_every_attempt_records_its_config_and_keeps_hydra_files(tmp_path: Path) -> None:
    (tmp_path / ".hydra").mkdir()
    (tmp_path / "cli.log").write_text("log of this attempt\n")
    (tmp_path / "config.yaml").write_text("seed: 5\n")  # a folder written before attempts were recorded
    (tmp_path / "results.json").write_text("{}\n")
    (tmp_path / "checkpoints").mkdir()
    prepare_run(compose_config(["seed=1"], tmp_path))
    assert (tmp_path / "configs" / "attempt_1.yaml").read_text() == "seed: 5\n"
    assert OmegaConf.load(tmp_path / "configs" / "attempt_2.yaml").seed == 1
    assert (tmp_path / "previous" / "attempt_1" / "results.json").is_file()  # replaced by this attempt
    assert (tmp_path / "checkpoints").is_dir()  # resumed from

    prepare_run(compose_config(["seed=2", "resume=false"], tmp_path))
    moved = tmp_path / "previous" / "attempt_2"
    assert sorted(p.name for p in moved.iterdir()) == ["checkpoints", "config.yaml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".hydra", "cli.log", "config.yaml", "configs", "previous"]
    assert OmegaConf.load(tmp_path / "config.yaml").seed == 2
    assert len(list((tmp_path / "configs").iterdir())) == 3


# ---------------------------------------------------------------------------- 2: finished runs re-run

@pytest.fixture(scope="module")
def finished_train(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished_train")
    return out, run_stage(compose_config([*TINY_TRAIN, "trainer.max_epochs=2"], out))


def test_rerunning_a_finished_training_changes_nothing(finished_train) -> None:
    out, _ = finished_train
    before = _snapshot(out)
    assert "csv/metrics.csv" in before and "per_class_iou.csv" in before
    again = run_stage(compose_config([*TINY_TRAIN, "trainer.max_epochs=2"], out))
    assert _snapshot(out) == before
    assert again == json.loads(before["results.json"][1])


def test_rerunning_a_finished_training_with_other_settings_reports_its_final_weights(finished_train) -> None:
    out, first = finished_train
    metrics = (out / "csv" / "metrics.csv").read_text().splitlines()
    per_class = (out / "per_class_iou.csv").read_text()
    again = run_stage(compose_config([*TINY_TRAIN, "trainer.max_epochs=2",
                                      "speed.duration_s=0.06"], out))
    assert again["val/mIoU"] == pytest.approx(first["val/mIoU"], abs=1e-6)
    assert again["val/per_class_iou"] == pytest.approx(first["val/per_class_iou"], nan_ok=True)
    assert (again["epochs"], again["global_step"]) == (first["epochs"], first["global_step"])
    assert (out / "per_class_iou.csv").read_text() == per_class
    assert (out / "csv" / "metrics.csv").read_text().splitlines()[1:len(metrics)] == metrics[1:]
    assert len((out / "history.csv").read_text().splitlines()) == 3  # header + 2 epochs, no extra row
    assert json.loads((out / "previous" / "attempt_1" / "results.json").read_text())["val/mIoU"] == \
        pytest.approx(first["val/mIoU"])


def test_rerunning_a_finished_supernet_is_a_no_op_and_other_settings_report_the_same(tmp_path: Path) -> None:
    first = run_stage(compose_config(TINY_SUPERNET, tmp_path))
    before = _snapshot(tmp_path)
    assert run_stage(compose_config(TINY_SUPERNET, tmp_path))["val/mIoU"] == pytest.approx(first["val/mIoU"])
    assert _snapshot(tmp_path) == before
    again = run_stage(compose_config([*TINY_SUPERNET, "speed.duration_s=0.06"], tmp_path))
    assert again["val/mIoU"] == pytest.approx(first["val/mIoU"], abs=1e-6)
    assert again["global_step"] == first["global_step"]
    assert (tmp_path / "csv" / "metrics.csv").read_bytes().startswith(before["csv/metrics.csv"][1])


def test_resumed_csv_log_keeps_earlier_rows_and_drops_those_logged_after_the_checkpoint(tmp_path: Path) -> None:
    log = tmp_path / "csv" / "metrics.csv"
    log.parent.mkdir()
    log.write_text("epoch,step,train/loss\n" + "".join(f"{s // 4},{s},{s / 10}\n" for s in range(7)))
    logger = ResumingCSVLogger.continuing(CSVLogger(tmp_path, name="csv", version=""))
    logger.log_metrics({"train/loss": 0.5, "val/mIoU": 9.0}, step=4)  # resumed from the checkpoint at step 4
    logger.save()
    with log.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert rows[3]["train/loss"] == "0.3" and rows[4]["val/mIoU"] == "9.0"


# ------------------------------------------------------------------------------------ 3: budgets

@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["stage=search", "search.population=-3"], r"search\.population must be an integer >= 1, got -3"),
        (["stage=search", "search.population=0"], r"search\.population must be an integer >= 1, got 0"),
        (["stage=search", "search.generations=0"], r"search\.generations must be an integer >= 1"),
        (["stage=search", "search=topk", "search.num_evals=-1"], r"search\.num_evals must be an integer >= 1"),
        (["stage=search", "score.evaluation.val_images=0"], r"score\.evaluation\.val_images must be an integer >= 1"),
        (["stage=search", "score.supernet.epochs=-1"], r"score\.supernet\.epochs must be an integer >= 1, got -1"),
        (["stage=proxy_evaluate", "stage.sample_size=0"], r"stage\.sample_size must be an integer >= 2, got 0"),
        (["stage=proxy_evaluate", "stage.repeats=-1"], r"stage\.repeats must be an integer >= 1, got -1"),
        (["stage=proxy_evolution", "search.num_evals=0"], r"search\.num_evals must be an integer >= 1, got 0"),
        (["stage=proxy_evolution", "stage.iterations=-1"],
         r"stage\.iterations must be an integer >= 0 \(or null\), got -1"),
        (["stage=search", "search.population=abc"], r"search\.population must be an integer >= 1, got 'abc'"),
        (["data.batch_size=0"], r"data\.batch_size must be an integer >= 1"),
        (["trainer.max_epochs=-1"], r"trainer\.max_epochs=-1 \(no epoch limit\) needs .*trainer\.max_steps"),
        (["optim.momentum=1.5"], r"optim\.momentum must be a number in \[0, 1\], got 1\.5"),
    ],
)
def test_budgets_are_checked_before_any_work(tmp_path: Path, overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run_stage(compose_config(overrides, tmp_path))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("stage", ["train", "supernet", "retrain", "panoptic", "evaluate", "export", "search",
                                   "zero_shot_search", "correlate", "ablate", "profile", "proxy_evaluate",
                                   "proxy_evolution"])
def test_default_configs_pass_the_checks(stage: str) -> None:
    assert problems(compose_config([f"stage={stage}"], Path("unused"))) == []


def _keys(node: Any, prefix: str = "") -> set[str]:
    if not isinstance(node, dict):
        return {prefix}
    return {key for k, v in node.items() for key in _keys(v, f"{prefix}.{k}" if prefix else str(k))}


@pytest.mark.parametrize("stage", ["train", *sorted(p.stem.removeprefix("tiny_")
                                                  for p in (REPO / "conf/debug/stage").glob("tiny_*.yaml"))])
def test_debug_tiny_sets_only_keys_the_stage_has_and_passes_the_checks(stage: str) -> None:
    default = OmegaConf.to_container(compose_config([f"stage={stage}"], Path("unused")))
    tiny = compose_config([f"stage={stage}", "debug=tiny"], Path("unused"))
    assert _keys(OmegaConf.to_container(tiny)) == _keys(default)
    assert tiny.data.num_train == 16 and tiny.trainer.max_epochs == 1 and problems(tiny) == []


# ---------------------------------------------------------------------------------- 4: divergence

def test_diverging_training_fails_naming_the_step_and_saves_no_best_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(NonFiniteLossError, match=r"training loss is (nan|inf) at global step \d+ \(epoch 0\)"):
        run_stage(compose_config([*TINY_TRAIN, "optim.lr=1e6", "optim.warmup_steps=0"], tmp_path))
    assert not list(tmp_path.rglob("best_*.ckpt"))
    assert not (tmp_path / "results.json").exists()


def test_diverging_supernet_fails(tmp_path: Path) -> None:
    with pytest.raises(NonFiniteLossError, match="global step"):
        run_stage(compose_config([*TINY_SUPERNET, "stage.module.lr=1e8"], tmp_path))
    assert not (tmp_path / "results.json").exists()


# ----------------------------------------------------------------------------------- 7: checkpoints

CALLED: list[str] = []
LIGHTNING = {"pytorch-lightning_version": "2.6.0"}


def _record_call() -> None:
    CALLED.append("called")


class _Payload:
    def __reduce__(self):
        return _record_call, ()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "cannot be read"),
        (b"\x93\x17random bytes" * 50, "cannot be read"),
        (b"net_config: {}\n", "cannot be read"),
        ("truncated", "cannot be read"),
        ({"state_dict": {}, "hyper_parameters": {"space_config": {}, "num_classes": 6}, **LIGHTNING},
         r"lacks the hyper-parameters \['net_config'\]"),
        ({"state_dict": {"w": torch.zeros(1)}}, "is not a Lightning checkpoint"),
        ("payload", "cannot be read"),
    ],
)
def test_bad_checkpoints_fail_naming_the_file_and_what_was_expected(tmp_path: Path, content, message) -> None:
    path = tmp_path / "model.ckpt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "truncated":
        torch.save({"state_dict": {"w": torch.zeros(1000)}, "hyper_parameters": {}}, path)
        path.write_bytes(path.read_bytes()[:500])
    elif content == "payload":
        path.write_bytes(pickle.dumps({"state_dict": _Payload()}))
    else:
        torch.save(content, path)
    with pytest.raises(ValueError, match=message) as err:
        run_stage(compose_config(["stage=evaluate", f"ckpt_path={path}"], tmp_path / "out"))
    assert str(path) in str(err.value)
    assert "expected a segmentation checkpoint written by stage=train or stage=retrain" in str(err.value)
    assert CALLED == []


def test_network_configs_only_name_registered_builders_with_plain_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"_target_ 'builtins\.exec' is not a registered network builder"):
        build_net({"_target_": "builtins.exec", "source": "raise SystemExit"}, 3)
    for target in ("segnas.search.distributed.os.system", "segnas.callbacks.history.write_rows_csv"):
        with pytest.raises(ValueError, match="is not a registered network builder"):  # inside segnas, still code
            build_net({"_target_": target, "command": "touch pwned"}, 3)
    nested = {"_target_": "segnas.models.build_network",
              "genotype": {"_target_": "segnas.callbacks.history.Path", "args": ["x.pth"]}}
    with pytest.raises(ValueError, match="plain data"):
        build_net(nested, 3)
    path = tmp_path / "evil.ckpt"
    hparams = {"net_config": {"_target_": "segnas.search.distributed.os.system", "command": "touch pwned"},
               "num_classes": 3}
    torch.save({"state_dict": {}, "hyper_parameters": hparams, **LIGHTNING}, path)
    with pytest.raises(ValueError, match="not a registered network builder"):
        load_checkpoint(path)
    assert not Path("pwned").exists() and not (tmp_path / "pwned").exists()


# ------------------------------------------------------------------------ 8: genotypes and CSV cells

@pytest.mark.parametrize(("key_path", "typo"), [((), "fhc"), (("branches", 0), "widht")])
def test_misspelled_fasterseg_genotype_keys_are_an_error(tmp_path: Path, key_path: tuple, typo: str) -> None:
    data = yaml.safe_load(arch_path("fasterseg").read_text())
    node = data
    for k in key_path:
        node = node[k]
    node[typo] = node.pop("fch" if typo == "fhc" else "widths")
    path = tmp_path / "arch.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=rf"{path}: unknown fasterseg .*\['{typo}'\]"):
        load_genotype(path)


def test_non_numeric_benchmark_cell_names_file_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bench.csv"
    path.write_text("space,tnb_arch_str,valid_acc_final_epoch,flops\n"
                    "micro,64-41414-1_02_333,50.0,1.5\n"
                    "micro,64-41414-1_02_334,51.0,abc\n")
    with pytest.raises(ValueError, match=rf"{path}, row 3, column flops: 'abc' is not a number"):
        benchmark.load(path)


@pytest.mark.slow  # 3-7 s (make test-slow keeps make test under 6 min on a slow host)
def test_the_best_checkpoint_of_the_last_epoch_is_a_link_not_a_copy(tmp_path: Path) -> None:
    exponential = ["stage=train", *TINY_TRAIN, "optim.lr_schedule=exponential"]  # a longer run may resume it
    run_stage(compose_config(exponential, tmp_path))
    folder = tmp_path / "checkpoints"
    (best,) = folder.glob("best_epoch_*.ckpt")
    last = folder / "last.ckpt"
    assert best.stat().st_ino == last.stat().st_ino and not list(folder.glob("*.tmp"))
    first = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    run_stage(compose_config([*exponential, "trainer.max_epochs=2"], tmp_path))  # resumes
    (best,) = folder.glob("best_epoch_*.ckpt")
    steps = {p.name: torch.load(p, map_location="cpu", weights_only=True)["global_step"] for p in (best, last)}
    assert steps["last.ckpt"] == 2 * first
    if best.name == "best_epoch_000.ckpt":  # the resume rewrote last.ckpt as a new file: the best kept its state
        assert steps[best.name] == first and best.stat().st_ino != last.stat().st_ino
    else:
        assert best.stat().st_ino == last.stat().st_ino
