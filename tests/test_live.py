"""Live search dashboards: per-generation hypervolume and fronts on W&B (offline files) and TensorBoard."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import wandb
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from segnas.search.live import LiveSearch
from segnas.search.problem import Evaluated
from segnas.stages import run_stage
from segnas.utils.loggers import build_loggers, run_labels

from conftest import REPO, TINY_PROXY_SEARCH, compose_config

SEARCH = [*TINY_PROXY_SEARCH, "search.population=4", "search.generations=3"]
DEV_CSV = REPO.parent / "shared/data/transnas/tnb101_segmentsemantic_dev.csv"


def wandb_records(path: Path) -> Iterator[Any]:
    """The protobuf records of an offline W&B run file (LevelDB log format: 32 KiB blocks of chunks with a
    7-byte header, after a 7-byte ``:W&B`` file header)."""
    from wandb.proto import wandb_internal_pb2

    data, block, pos, chunks = path.read_bytes(), 32768, 7, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7]) if left >= 7 else (0, 0, 0)
        if kind == 0:  # block padding
            pos += left
            continue
        chunks += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # full or last chunk
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunks)
            chunks = b""
            yield record


def _history(records: list[Any]) -> list[dict[str, Any]]:
    return [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
            for r in records if r.WhichOneof("record_type") == "history"]  # fmt: skip


def test_search_logs_each_generation_the_front_and_the_config_to_wandb_offline(tmp_path: Path,
                                                                               monkeypatch) -> None:  # fmt: skip
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    results = run_stage(compose_config([*SEARCH, "logger=wandb"], tmp_path))
    wandb.teardown()  # waits for W&B's service process, which writes the run file, to flush it and exit
    [run_file] = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    records = list(wandb_records(run_file))
    history = _history(records)
    for label in ("nsga2", "random"):
        rows = [h for h in history if f"search/{label}/hypervolume" in h]
        assert [h[f"search/{label}/generation"] for h in rows] == [0, 1, 2]
        assert all(0 <= h[f"search/{label}/hypervolume"] <= 1 for h in rows)
        assert [h[f"search/{label}/evaluated"] for h in rows] == [4, 8, 12]
        assert all(h[f"search/{label}/front/_type"] == "table-file" and f"search/{label}/best_score" in h
                   for h in rows)  # fmt: skip
    final = next(h for h in history if "search/pareto/_type" in h)
    assert final["search/pareto/nrows"] == len(results["pareto"]) and "search/pareto_png/_type" in final
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["search"]["population"] == 4 and config["search"]["objective"] == "params"
    assert config["data"]["_target_"].endswith("SyntheticDataModule") and config["stage"]["name"] == "search"
    assert (run.display_name, run.run_group, run.job_type) == ("search", "search", "search")


def test_search_logs_a_hypervolume_scalar_per_generation_to_tensorboard(tmp_path: Path) -> None:
    results = run_stage(compose_config([*SEARCH, "logger=tensorboard", "search.random_baseline=false"],
                                       tmp_path))  # fmt: skip
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    hv = events.Scalars("search/nsga2/hypervolume")
    assert [e.step for e in hv] == [0, 1, 2] and all(0 <= e.value <= 1 for e in hv)
    assert [e.value for e in events.Scalars("search/nsga2/evaluated")] == [4, 8, 12]
    assert "search/nsga2/front" in events.Tags()["images"] and "search/pareto_png" in events.Tags()["images"]
    assert events.Scalars("search/hypervolume")[0].value == pytest.approx(results["hypervolume"])


@pytest.mark.skipif(not DEV_CSV.exists(), reason="dev CSV not present")
@pytest.mark.slow  # stage=proxy_evolution on both TNB spaces, ~12 s (make test-slow)
def test_proxy_evolution_logs_the_best_kendall_per_iteration_to_tensorboard(tmp_path: Path) -> None:
    from segnas.stages.proxy_evolution import run

    conf = OmegaConf.load(REPO / "conf/stage/proxy_evolution.yaml")
    stage = conf.stage
    stage.update({"train_archs": 3, "heldout_archs": 2, "batch_size": 2, "progress": False, "sketch_columns": 64,
                  "rerank_top": 2, "hand_proxies": ["params"]})  # fmt: skip
    topk = OmegaConf.load(REPO / "conf/search/topk.yaml")
    topk.pop("defaults")
    # 19 scored expressions: the first pool (4 valid of 11 drawn) and 2 iterations of 3 children + 1 random
    settings = OmegaConf.load(REPO / "conf/stage_search/proxy_evolution_topk.yaml")  # the stage's top-k settings
    search = OmegaConf.merge(topk, settings, {"population": 4, "num_evals": 19, "children": 3, "top_k": 2})
    logger = {"tensorboard": {"_target_": "lightning.pytorch.loggers.TensorBoardLogger", "save_dir": str(tmp_path),
                              "name": "tensorboard", "version": ""}}  # fmt: skip
    cfg = OmegaConf.create({"seed": 0, "paths": {"output_dir": str(tmp_path)}, "logger": logger, "stage": stage,
                            "search": search,
                            "benchmark": {"csv": str(DEV_CSV), "target": "valid_acc_final_epoch"}})  # fmt: skip
    results = run(cfg)
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    best = events.Scalars("search/proxy_evolution/best_kendall")
    assert [e.step for e in best] == [0, 1, 2]
    assert [e.value for e in best] == sorted(e.value for e in best)  # the best so far never gets worse
    assert events.Scalars("search/kendall_heldout")[0].value == pytest.approx(results["kendall_heldout"])


def _evaluated(score: float, cost: float, generation: int, branches: int = 1) -> Evaluated:
    return Evaluated(SimpleNamespace(branches=(0,) * branches), {"miou": score, "macs_g": cost}, generation, "s")


def test_live_metrics_follow_the_running_front_and_no_logger_is_a_noop() -> None:
    live = LiveSearch([], "miou", "macs_g", score_range=(0.0, 100.0))
    assert not live.active
    first = [_evaluated(40.0, 2.0, 0), _evaluated(30.0, 4.0, 0, 2)]
    values, front = live.metrics(first)
    assert front == first[:1] and values["evaluated"] == 2 and values["best_miou"] == 40.0
    assert values["hypervolume"] == pytest.approx(0.4 * 0.5)  # reference: the largest cost so far (4)
    values, front = live.metrics([*first, _evaluated(60.0, 3.0, 1, 3)])
    assert len(front) == 2 and values["front_size"] == 2 and values["best_miou"] == 60.0
    assert values["hypervolume"] > 0.2
    live("s", 0, first)  # nothing to log to
    single = LiveSearch([], "miou").metrics([_evaluated(math.nan, 1.0, 0)])[0]  # no cost: no front
    assert set(single) == {"evaluated", "best_miou"} and math.isnan(single["best_miou"])


def test_wandb_runs_are_named_after_the_stage_and_overrides_and_sweeps_grouped() -> None:
    assert run_labels("search") == ("search", "search")  # no Hydra run: the stage
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="segnas.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["stage=search", "seed=1", "logger=wandb"],
                      return_hydra_config=True)  # fmt: skip
    with open_dict(cfg):
        cfg.hydra.mode, cfg.hydra.job.num = RunMode.MULTIRUN, 3
    HydraConfig.instance().set_config(cfg)
    try:
        name, group = run_labels("search")
    finally:
        HydraConfig.instance().cfg = None
    assert name == "search #3 seed=1" and group.startswith("search sweep ")
    assert build_loggers(compose_config(["logger=none"])) == []
