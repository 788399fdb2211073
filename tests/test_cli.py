"""The Hydra CLI: stages run end to end, errors name what is wrong, launchers compose, sweeps run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from segnas.stages import run_stage

from conftest import REPO, TINY_TRAIN, compose_config


def _cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, "-m", "segnas", *args], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=timeout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    cfg = compose_config(["stage=train", *TINY_TRAIN], out)
    return out, run_stage(cfg)


def test_train_stage_writes_results_config_and_plain_outputs(trained):
    out, results = trained
    on_disk = json.loads((out / "results.json").read_text())
    assert 0.0 <= on_disk["val/mIoU"] <= 100.0  # a range: 4 steps stay below chance (0.3 %, chance 8.2 %);
    # that training learns is checked by tests/test_learning.py
    assert on_disk["val/mIoU"] == pytest.approx(results["val/mIoU"])
    assert set(on_disk["val/per_class_iou"]) == {"sky", "ground", "disc_0", "box_1", "context_a", "context_b"}
    resolved = OmegaConf.load(out / "config.yaml")
    assert resolved.stage.name == "train" and resolved.paths.output_dir == str(out)
    for name in ("history.csv", "curves.png", "per_class_iou.csv", "checkpoints/last.ckpt", "csv/metrics.csv"):
        assert (out / name).is_file(), name
    assert on_disk["fps"] > 0


def test_evaluate_stage_reports_miou_macs_params_fps(trained, tmp_path):
    _, train_results = trained
    cfg = compose_config(["stage=evaluate", *TINY_TRAIN, f"ckpt_path={train_results['last_ckpt']}",
                          "speed.duration_s=0.05"], tmp_path)
    results = run_stage(cfg)
    assert results["val/mIoU"] == pytest.approx(train_results["val/mIoU"], abs=1e-4)
    assert results["macs_g"] > 0 and results["flops_g"] == results["macs_g"] and results["params_m"] > 0 and results["fps"] > 0
    assert results["input"] == "64x64"
    for name in ("results.json", "evaluation.md", "per_class_iou.png", "per_class_iou.csv"):
        assert (tmp_path / name).is_file(), name
    # FPS one way (conf/speed): the training's callback and the evaluation time the same input, threads and
    # warm-up, and the table says how
    protocol = ("input_shape", "threads", "warmup", "device", "dtype")
    assert {k: train_results["latency"][k] for k in protocol} == {k: results["latency"][k] for k in protocol}
    assert results["latency"]["threads"] == 1 and tuple(results["latency"]["input_shape"]) == (1, 3, 64, 64)
    assert "| FPS (cpu, float32, 1 thread, 64x64) |" in (tmp_path / "evaluation.md").read_text()


def test_evaluate_on_the_test_split(trained, tmp_path):
    _, train_results = trained
    cfg = compose_config(["stage=evaluate", *TINY_TRAIN, f"ckpt_path={train_results['last_ckpt']}",
                          "speed.duration_s=0.05", "stage.split=test"], tmp_path)
    results = run_stage(cfg)
    assert results["split"] == "test" and "val/mIoU" not in results
    assert 0 <= results["test/mIoU"] <= 100  # a range: the 4-step model stays below chance (0.8 %)
    assert "| test mIoU (%) |" in (tmp_path / "evaluation.md").read_text()


def test_evaluate_on_an_absent_split_names_the_folder(trained, tmp_path):
    _, train_results = trained
    root = tmp_path / "camvid"
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
    cfg = compose_config(["stage=evaluate", "data=camvid", f"data.root={root}",
                          f"ckpt_path={train_results['last_ckpt']}", "stage.split=test"], tmp_path / "out")
    with pytest.raises((FileNotFoundError, ValueError), match=r"test"):
        run_stage(cfg)


def test_evaluate_without_checkpoint_says_what_is_needed(tmp_path):
    with pytest.raises(ValueError, match="needs ckpt_path=PATH"):
        run_stage(compose_config(["stage=evaluate"], tmp_path))


def test_unknown_stage_lists_choices():
    proc = _cli("stage=nonexistent", timeout=120)
    assert proc.returncode != 0
    assert "Could not find 'stage/nonexistent'" in proc.stderr
    assert "Available options" in proc.stderr and "train" in proc.stderr


def test_unknown_config_key_is_rejected():
    with pytest.raises(ConfigCompositionException, match=r"trainer\.max_epoch"):
        compose_config(["trainer.max_epoch=3"])


def test_missing_dataset_root_is_reported(tmp_path):
    cfg = compose_config(["data=camvid", f"data.root={tmp_path / 'missing'}"], tmp_path / "out")
    with pytest.raises(FileNotFoundError, match=r"CamVid root .*missing.* does not exist"):
        run_stage(cfg)


def test_slurm_launcher_composes_with_settable_keys():
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="segnas.conf", version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=2",
                       "hydra.launcher.cpus_per_task=16", "hydra.launcher.mem_gb=64", "hydra.launcher.timeout_min=90",
                       "hydra.launcher.account=proj", "hydra.launcher.setup=[module load cuda]"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.gpus_per_node, launcher.cpus_per_task) == ("gpu", 2, 16)
    assert (launcher.mem_gb, launcher.timeout_min, launcher.account) == (64, 90, "proj")
    assert list(launcher.setup) == ["module load cuda"]


@pytest.mark.slow  # two jobs in a subprocess (make test-slow)
def test_local_submitit_sweep_runs_two_jobs(tmp_path):
    proc = _cli("-m", "hydra/launcher=local", f"hydra.sweep.dir={tmp_path}", "seed=0,1", *TINY_TRAIN,
                "logger=none", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads((tmp_path / str(i) / "results.json").read_text()) for i in (0, 1)]
    seeds = [OmegaConf.load(tmp_path / str(i) / "config.yaml").seed for i in (0, 1)]
    assert seeds == [0, 1]
    assert all(0 <= r["val/mIoU"] <= 100 for r in results)  # a range: 4 steps (learning: test_learning.py)


def test_help_lists_every_stage_the_config_groups_and_examples_that_parse():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    proc = _cli("--help", timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    for stage in sorted(p.stem for p in (REPO / "conf" / "stage").glob("*.yaml")):
        assert any(line.split()[:1] == [stage] and len(line.split()) > 2 for line in lines), stage
    assert "search: nsga2, random, topk, zero_shot" in proc.stdout and "logger: csv, none, tensorboard, wandb" in proc.stdout
    examples = [line.split("#")[0].split()[3:] for line in lines[lines.index("== Examples ==") :]
                if line.strip().startswith("python -m segnas")]  # fmt: skip
    assert len(examples) == 5
    for args in examples:
        OverridesParser.create().parse_overrides([a for a in args if a != "-m"])


def test_version_prints_the_package_version():
    import importlib.metadata

    import segnas

    proc = _cli("--version", timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == f"segnas {segnas.__version__}"
    assert segnas.__version__ == importlib.metadata.version("segnas")


@pytest.mark.parametrize("damage", ["bit_flip", "nan"])
def test_evaluate_refuses_a_damaged_checkpoint_before_writing_results(trained, tmp_path, damage):
    """Issue 23's interface: stage=evaluate fails on a bit-flipped or non-finite checkpoint, naming it."""
    import torch

    _, train_results = trained
    path = tmp_path / "damaged.ckpt"
    if damage == "bit_flip":
        data = bytearray(Path(train_results["last_ckpt"]).read_bytes())
        data[len(data) // 2] ^= 0x10  # one bit in the middle of the weights
        path.write_bytes(bytes(data))
    else:
        checkpoint = torch.load(train_results["last_ckpt"], weights_only=False)
        name = next(k for k, v in checkpoint["state_dict"].items() if v.is_floating_point() and v.numel() > 8)
        checkpoint["state_dict"][name][0] = float("nan")
        torch.save(checkpoint, path)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=rf"checkpoint {path} (is corrupt|holds non-finite weights)"):
        run_stage(compose_config(["stage=evaluate", *TINY_TRAIN, f"ckpt_path={path}"], out))
    assert not (out / "results.json").exists() and not (out / "evaluation.md").exists()
