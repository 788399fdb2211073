"""``stage=zero_shot_search`` (a preset of the one search engine) and proxy-scored searches, tiny budgets."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from segnas.metrics.complexity import count_macs
from segnas.models import build_network
from segnas.proxies.batch import resolve_inputs
from segnas.search import scoring
from segnas.search.objectives import ProxyScore
from segnas.spaces import load_genotype
from segnas.spaces.fasterseg import FasterSegGenotype, FasterSegSpace
from segnas.stages import run_stage

from conftest import TINY_ZERO_SHOT, compose_config

TINY_BUDGET = "search.max_macs_g=0.02"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_zero_shot_search_fasterseg(tmp_path: Path) -> None:
    results = run_stage(compose_config([*TINY_ZERO_SHOT, TINY_BUDGET], tmp_path))
    assert results["space"] == "fasterseg" and results["score"] == "proxy" and results["algorithm"] == "topk"
    for key in ("summary", "summary_random"):
        assert results[key]["evaluated"] == 6 and results[key]["best_cost"] <= 0.02
    assert isinstance(results["beats_random"], bool)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["n_evaluated"] == 6 and saved["n_computed_this_run"] >= 12
    ranks = sorted((tmp_path / "genotypes").glob("rank_*.yaml"))
    assert len(ranks) == 3
    scores = [t["score"] for t in results["top"]]
    assert scores == sorted(scores, reverse=True) and scores[0] == results["summary"]["best_score"]
    data = yaml.safe_load(ranks[0].read_text())
    assert data["space"] == "fasterseg" and data["metrics"]["score"] == scores[0]
    assert data["retrain_command"] == f"python -m segnas stage=retrain stage.genotype={ranks[0]}"
    assert FasterSegGenotype.from_dict(data).rule_violations() == []
    rows = _rows(tmp_path / "candidates.csv")
    assert {r["search"] for r in rows} == {"topk", "random"} and len(rows) == 12
    random_rows = [r for r in rows if r["search"] == "random"]
    for pick, row in zip(results["random_picks"], random_rows, strict=False):  # first draws, unranked
        assert (tmp_path / pick["genotype"]).is_file() and pick["score"] == pytest.approx(float(row["score"]))
    assert len(results["random_picks"]) == 3
    assert {"pareto.csv", "pareto.png", "archive.jsonl"} <= {p.name for p in tmp_path.iterdir()}


def test_zero_shot_search_params_budget_excludes_large(tmp_path: Path) -> None:
    results = run_stage(compose_config([*TINY_ZERO_SHOT, "search.objective=params", "search.max_macs_g=null",
                                        "search.max_params_m=1.5", "search.random_baseline=false"], tmp_path))
    assert "summary_random" not in results and results["summary"]["best_cost"] <= 1.5
    assert all(r["params_m"] <= 1.5 for r in results["top"])


def test_zero_shot_search_scores_on_a_data_batch(tmp_path: Path) -> None:
    results = run_stage(compose_config([*TINY_ZERO_SHOT, TINY_BUDGET, "score.batch.inputs=data",
                                        "search.random_baseline=false"], tmp_path))
    assert results["summary"]["valid_scores"] == 6
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert config["score"]["batch"]["inputs"] == "data"


@pytest.mark.slow  # 4-14 s (make test-slow keeps make test under 6 min with the shared data)
def test_killed_zero_shot_search_resumes_to_the_uninterrupted_result(tmp_path: Path, monkeypatch) -> None:
    overrides = [*TINY_ZERO_SHOT, TINY_BUDGET, "search.num_evals=8"]
    straight = run_stage(compose_config(overrides, tmp_path / "straight"))
    original, calls = ProxyScore.__call__, []

    def dying(self, genotype):
        if len(calls) == 5:
            raise RuntimeError("killed")
        calls.append(genotype)
        return original(self, genotype)

    monkeypatch.setattr(ProxyScore, "__call__", dying)
    with pytest.raises(RuntimeError, match="killed"):
        run_stage(compose_config(overrides, tmp_path / "killed"))
    monkeypatch.setattr(ProxyScore, "__call__", original)
    scored = []
    monkeypatch.setattr(ProxyScore, "__call__", lambda self, g: scored.append(g) or original(self, g))
    resumed = run_stage(compose_config(overrides, tmp_path / "killed"))
    assert len(scored) == 16 - 5  # 8 evolution + 8 random scored, 5 of them before the kill
    for key in ("top", "summary", "summary_random", "hypervolume", "pareto", "history"):
        assert resumed[key] == straight[key]
    assert (tmp_path / "killed" / "candidates.csv").read_text() == (tmp_path / "straight" / "candidates.csv").read_text()
    again = run_stage(compose_config(overrides, tmp_path / "killed"))
    assert again["n_computed_this_run"] == 0 and again["top"] == straight["top"]


def test_changed_scoring_settings_refuse_the_old_archive(tmp_path: Path) -> None:
    run_stage(compose_config([*TINY_ZERO_SHOT, TINY_BUDGET, "search.random_baseline=false"], tmp_path))
    with pytest.raises(ValueError, match="proxy_batch"):
        run_stage(compose_config([*TINY_ZERO_SHOT, TINY_BUDGET, "search.random_baseline=false",
                                  "score.batch.batch_size=3"], tmp_path))


def test_zero_shot_search_proxy_options(tmp_path: Path) -> None:
    cfg = compose_config([*TINY_ZERO_SHOT, "score.proxy=saswot_minus", "+score.options.loss_reduction=image",
                          TINY_BUDGET, "search.random_baseline=false"], tmp_path)
    assert run_stage(cfg)["summary"]["valid_scores"] == 6
    bad = compose_config([*TINY_ZERO_SHOT, "+score.options.loss_reductoin=image"], tmp_path / "bad")
    with pytest.raises(ValueError, match="loss_reductoin"):
        run_stage(bad)


def test_nsga2_over_a_proxy_in_the_fasterseg_space(tmp_path: Path) -> None:
    cfg = compose_config(["stage=search", "debug=tiny", "space=fasterseg", "score=proxy", "score.proxy=nwot",
                          "search.objective=macs", "space.max_depth=6", "search.population=4", "search.generations=2",
                          "score.batch.resolution=[32,32]", "score.batch.batch_size=2", "stage.cost_input=[1,3,32,32]",
                          "stage.latency.model=measured", "stage.latency.duration_s=0.01",
                          "stage.extra_metrics=[params_m]"], tmp_path)
    results = run_stage(cfg)
    assert results["algorithm"] == "nsga2" and results["space"] == "fasterseg" and results["n_evaluated"] == 8
    assert 0.0 <= results["hypervolume"] <= 1.0 and results["n_computed_this_run"] == 16
    rows = _rows(tmp_path / "pareto.csv")
    assert rows and {"score", "macs_g", "params_m", "genotype"} <= set(rows[0])
    assert isinstance(load_genotype(tmp_path / rows[0]["genotype"]), FasterSegGenotype)
    assert (tmp_path / "pareto.png").is_file() and (tmp_path / "archive.jsonl").is_file()


@pytest.mark.parametrize("space", ["fasterseg", "hyctas"])
def test_zero_shot_genotype_retrains_with_stage_retrain(tmp_path: Path, space: str) -> None:
    extra = [TINY_BUDGET] if space == "fasterseg" else [
        "space=hyctas", "space.layers=4", "space.filter_multiplier=2", "search.max_macs_g=null",
        "score.proxy=nwot"]
    search = [o for o in TINY_ZERO_SHOT if not (space == "hyctas" and o.startswith("space."))]
    run_stage(compose_config([*search, *extra, "stage.top_n=1", "search.random_baseline=false"], tmp_path / "search"))
    genotype = tmp_path / "search" / "genotypes" / "rank_00.yaml"
    assert yaml.safe_load(genotype.read_text())["space"] == space
    cfg = compose_config(["stage=retrain", f"stage.genotype={genotype}", "debug=tiny",
                          "stage.filter_multiplier=2"], tmp_path / "retrain")
    results = run_stage(cfg)
    assert 0.0 <= results["val/mIoU"] <= 100.0  # a range: 4 steps, 0.7-12 % (chance 8.2 %; test_learning.py)


def test_a_search_where_every_score_is_invalid_fails(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ProxyScore, "__call__", lambda self, g: float("nan"))
    with pytest.raises(RuntimeError, match="invalid"):
        run_stage(compose_config(["stage=search", "debug=tiny", "space=fasterseg", "space.max_depth=6",
                                  "score=proxy", "search=random", "search.num_evals=3", "search.batch=3",
                                  "score.batch.resolution=[32,32]", "score.batch.batch_size=2",
                                  "stage.cost_input=[1,3,32,32]", "stage.top_n=3",
                                  "stage.latency.model=measured", "search.objective=macs",
                                  "stage.extra_metrics=[]"], tmp_path))


def test_zero_shot_preset_scores_real_images_only_when_a_dataset_is_given() -> None:
    default = compose_config(["stage=zero_shot_search"])
    assert default.score.batch.batch_size >= 16 and default.score.normalize == "avt"
    assert proxy_inputs(default) == "random"  # the built-in synthetic data: no files needed
    assert proxy_inputs(compose_config(["stage=zero_shot_search", "data=camvid"])) == "data"
    forced = compose_config(["stage=zero_shot_search", "data=camvid", "score.batch.inputs=random"])
    assert proxy_inputs(forced) == "random"


def proxy_inputs(cfg) -> str:
    return resolve_inputs(str(cfg.score.batch.inputs), cfg.get("data"))


@pytest.mark.slow  # 4-14 s (make test-slow keeps make test under 6 min with the shared data)
def test_saswot_is_calibrated_within_the_budget_and_rank_normalised(tmp_path: Path, monkeypatch) -> None:
    macs: list[float] = []
    original = scoring.calibrate_cached

    def spy(sample_model, *args, **kwargs):
        def measured(rng):
            model = sample_model(rng)
            macs.append(count_macs(model, torch.randn(1, 3, 32, 32)) / 1e9)
            return model

        return original(measured, *args, **kwargs)

    monkeypatch.setattr(scoring, "calibrate_cached", spy)
    results = run_stage(compose_config([*TINY_ZERO_SHOT, "search.max_macs_g=0.0125", "score.proxy=saswot",
                                        "score.normalize=rank",
                                        "search.random_baseline=false"], tmp_path))
    assert results["summary"]["valid_scores"] == 6 and all(0.0 <= t["score"] <= 2.0 for t in results["top"])
    assert len(macs) == 8 and max(macs) <= 0.0125
    (key,) = [json.loads(line)["key"] for line in (tmp_path / "saswot_avt.jsonl").read_text().splitlines()]
    assert '|budgets={"macs_g": 0.0125}@[1, 3, 32, 32]|' in key
    space, rng = FasterSegSpace(max_depth=6), np.random.default_rng(0)
    unfiltered = [count_macs(build_network(space.sample(rng), num_classes=19, **space.build_options()),
                             torch.randn(1, 3, 32, 32)) / 1e9 for _ in range(20)]
    assert max(unfiltered) > 0.0125  # the budget does reject some of the space
    with pytest.raises(ValueError, match=r"score\.normalize"):
        run_stage(compose_config([*TINY_ZERO_SHOT, "score.proxy=saswot", "score.normalize=minmax"],
                                 tmp_path / "bad"))
