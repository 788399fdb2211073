"""stage=zero_shot_search on tiny budgets."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from segnas.spaces.fasterseg import FasterSegGenotype

from conftest import TINY_DATA, compose_config

FAST = [
    "stage=zero_shot_search",
    "stage.proxy=nwot",
    "stage.evolution.num_evals=6",
    "stage.evolution.population=3",
    "stage.evolution.top_k=2",
    "stage.space_options.max_depth=6",
    "stage.resolution=[32,32]",
    "stage.batch_size=2",
    "stage.budget.input=[1,3,32,32]",
    "stage.top_n=3",
]


def test_zero_shot_search_fasterseg(tmp_path: Path) -> None:
    from segnas.stages.zero_shot_search import run

    cfg = compose_config([*FAST, "stage.budget.max=0.02"], tmp_path)
    results = run(cfg)
    assert results["space"] == "fasterseg" and results["proxy"] == "nwot"
    for key in ("evolution", "random"):
        assert results[key]["evaluated"] == 6 and results[key]["best_cost"] <= 0.02
    assert isinstance(results["evolution_beats_random"], bool)
    assert json.loads((tmp_path / "results.json").read_text())["num_evals"] == 6
    ranks = sorted((tmp_path / "genotypes").glob("rank_*.yaml"))
    assert len(ranks) == 3
    scores = [t["score"] for t in results["top"]]
    assert scores == sorted(scores, reverse=True) and scores[0] == results["evolution"]["best_score"]
    best = FasterSegGenotype.from_dict(yaml.safe_load(ranks[0].read_text()))
    assert best.rule_violations() == []
    rows = list(csv.DictReader((tmp_path / "candidates.csv").open()))
    assert {r["search"] for r in rows} == {"evolution", "random"} and len(rows) == 12
    random_rows = [r for r in rows if r["search"] == "random"]
    for pick, row in zip(results["random_picks"], random_rows, strict=False):  # first draws, unranked
        assert (tmp_path / pick["path"]).is_file() and pick["score"] == float(row["score"])
    assert len(results["random_picks"]) == 3


def test_zero_shot_search_params_budget_excludes_large(tmp_path: Path) -> None:
    from segnas.stages.zero_shot_search import run

    cfg = compose_config(
        [*FAST, "stage.budget.metric=params_m", "stage.budget.max=1.5", "stage.random_baseline=false"],
        tmp_path,
    )
    results = run(cfg)
    assert "random" not in results and results["evolution"]["best_cost"] <= 1.5


def test_zero_shot_search_scores_on_a_data_batch(tmp_path: Path) -> None:
    from segnas.stages.zero_shot_search import scoring_batch

    cfg = compose_config([*FAST, *TINY_DATA, "stage.inputs=data", "stage.num_classes=19"], tmp_path)
    images, labels, num_classes = scoring_batch(cfg)
    assert num_classes == 6  # the synthetic dataset's classes, not stage.num_classes
    assert images.shape == (2, 3, 32, 32) and labels.shape == (2, 32, 32)
    assert set(labels.unique().tolist()) <= {*range(6), 255}


def test_searched_genotype_trains_with_model_fasterseg(tmp_path: Path) -> None:
    from segnas.stages.train import run as train
    from segnas.stages.zero_shot_search import run as search

    search(compose_config([*FAST, "stage.budget.max=0.02", "stage.top_n=1"], tmp_path / "search"))
    genotype = tmp_path / "search" / "genotypes" / "rank_00.yaml"
    cfg = compose_config(
        ["stage=train", "model=fasterseg", f"model.genotype={genotype}", *TINY_DATA, "trainer.max_epochs=1"],
        tmp_path / "train",
    )
    results = train(cfg)
    assert 0.0 <= results["val/mIoU"] <= 100.0 and results["global_step"] == 4


def test_zero_shot_search_proxy_options(tmp_path: Path) -> None:
    from segnas.stages.zero_shot_search import run

    cfg = compose_config(
        [*FAST, "stage.proxy=saswot_minus", "+stage.proxy_options.loss_reduction=image", "stage.budget.max=0.02"],
        tmp_path,
    )
    assert run(cfg)["evolution"]["valid_scores"] == 6
    bad = compose_config([*FAST, "+stage.proxy_options.loss_reductoin=image"], tmp_path / "bad")
    with pytest.raises(ValueError, match="loss_reductoin"):
        run(bad)
