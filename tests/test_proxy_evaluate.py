"""stage=proxy_evaluate and its correlation helpers."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from segnas.proxies.evaluation import ScoreFile, draw_samples, score_all, summarize
from segnas.proxies.saswot import AvtRanges

ROOT = Path(__file__).resolve().parents[1]
DEV_CSV = ROOT.parent / "shared/data/transnas/tnb101_segmentsemantic_dev.csv"


def test_draw_samples_from_pool() -> None:
    archs = [f"a{i}" for i in range(100)]
    samples = draw_samples(archs, 5, 4, random.Random(0), pool_size=8)
    assert len(samples) == 4 and all(len(set(s)) == 5 for s in samples)
    assert len({a for s in samples for a in s}) <= 8
    with pytest.raises(ValueError, match="exceeds"):
        draw_samples(archs, 10, 1, random.Random(0), pool_size=8)


def test_summarize_hand_cases() -> None:
    targets = {f"a{i}": float(i) for i in range(6)}
    scores = {
        a: {"up": t, "down": -t, "flat": 1.0, "holes": t if t % 2 else math.nan} for a, t in targets.items()
    }
    samples = [["a0", "a1", "a2", "a3"], ["a2", "a3", "a4", "a5"]]
    out = summarize(samples, scores, targets, ["up", "down", "flat", "holes"])
    assert out["up"]["kendall"] == pytest.approx(1) and out["up"]["kendall_std"] == 0
    assert out["down"]["spearman"] == pytest.approx(-1) and out["down"]["pearson"] == pytest.approx(-1)
    assert math.isnan(out["flat"]["kendall"])
    assert out["holes"]["valid"] == 2 and out["holes"]["kendall"] == pytest.approx(1)


def test_score_file_resumes(tmp_path: Path) -> None:
    calls: list[str] = []

    def score(arch: str) -> dict[str, float]:
        calls.append(arch)
        return {"p": float(len(arch)), "q": math.nan}

    context = {"batch": "x", "proxies": {"p": {"options": {}}, "q": {"options": {}}}}
    store = ScoreFile(tmp_path / "s.csv", ["p", "q"], context)
    first = score_all(["ab", "abc", "ab"], score, store, progress=False)
    assert calls == ["ab", "abc"]
    again = score_all(["ab", "abc", "abcd"], score, ScoreFile(tmp_path / "s.csv", ["p", "q"], context), False)
    assert calls == ["ab", "abc", "abcd"]
    assert again["abc"]["p"] == first["abc"]["p"] == 3 and math.isnan(again["ab"]["q"])
    assert json.loads(store.path.read_text().splitlines()[0])["context"] == context
    store.path.write_text(store.path.read_text()[:-7])  # a killed write tore the last record: scored again
    score_all(["ab", "abc", "abcd"], score, ScoreFile(tmp_path / "s.csv", ["p", "q"], context), False)
    assert calls == ["ab", "abc", "abcd", "abcd"]


def test_score_file_is_keyed_by_batch_options_and_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from segnas.proxies import registry
    from segnas.proxies.expression import SASWOT, register_expression
    from segnas.proxies.report import score_context

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # the expression is registered here only
    names = ["nwot", "saswot", register_expression(SASWOT, "test_keyed_saswot_expression")]
    batch = (torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4).long())
    options = {"saswot": {"ranges": AvtRanges((0.0, 1.0), (2.0, 3.0)), "elem_reduce": "sum"}}

    def path(seed: int = 0, quirk: bool = True, opts: dict = options, x: torch.Tensor = batch[0]) -> Path:
        cfg = OmegaConf.create({"seed": seed, "stage": {"bn_quirk": quirk, "proxies": names}})
        context = score_context(cfg, "macro", opts, (x, batch[1]))
        return ScoreFile(tmp_path / "scores_macro.csv", names, context).path

    base = path()
    assert path() == base and base.name.startswith("scores_macro_")
    cfg = OmegaConf.create({"seed": 0, "stage": {"bn_quirk": True, "proxies": names}})
    saved = ScoreFile(tmp_path / "scores_macro.csv", names, score_context(cfg, "macro", options, batch)).log.context
    ranges = saved["proxies"]["saswot"]["options"]["ranges"]
    assert (ranges["saswot_minus"], ranges["nwot"]) == ([0.0, 1.0], [2.0, 3.0])
    assert saved["proxies"][names[2]]["definition"]["binary"] == "lesser_than"
    other_ranges = {"saswot": {**options["saswot"], "ranges": AvtRanges((0.0, 1.0), (2.0, 4.0))}}
    changed = [path(seed=1), path(quirk=False), path(opts=other_ranges), path(x=batch[0] + 1)]
    assert len({base, *changed}) == 5  # every changed setting has its own score file


@pytest.mark.slow  # three runs over both TNB-101 spaces, ~30 s (make test-slow)
@pytest.mark.skipif(not DEV_CSV.exists(), reason="dev CSV not present")
def test_stage_writes_results_tables_and_plot(tmp_path: Path) -> None:
    from segnas.stages.proxy_evaluate import run

    stage = OmegaConf.load(ROOT / "conf/stage/proxy_evaluate.yaml")
    stage.pop("defaults")
    stage.update(
        {"sample_size": 4, "repeats": 2, "pool_size": 5, "batch_size": 2, "resolution": 64,
         "progress": False, "builder_check_archs": 5,
         "proxies": ["params", "flops", "nwot", "epe_nas", "saswot_minus", "saswot"]}
    )  # fmt: skip
    stage.saswot.calibration_archs = 3
    benchmark = {"csv": str(DEV_CSV), "target": "valid_acc_final_epoch"}
    cfg = OmegaConf.create({"seed": 0, "paths": {"output_dir": str(tmp_path)}, "benchmark": benchmark})
    cfg.stage = stage
    results = run(cfg)
    for name in stage.proxies:
        for space in ("micro", "macro"):
            assert set(results["proxies"][name][space]) >= {"kendall", "spearman", "pearson"}
    assert results["proxies"]["params"]["micro"]["valid"] == 4
    assert math.isnan(results["proxies"]["epe_nas"]["macro"]["kendall"])
    assert results["builder_check"]["micro"]["params"] == pytest.approx(1.0)
    for name in ("correlations.csv", "correlations.md", "correlations.png", "saswot_avt.jsonl"):
        assert (tmp_path / name).stat().st_size > 0
    assert "| saswot |" in (tmp_path / "correlations.md").read_text()
    assert len((tmp_path / "saswot_avt.jsonl").read_text().splitlines()) == 2  # one calibration per space
    (micro,) = tmp_path.glob("scores_micro_*.jsonl")
    rows = micro.read_text().splitlines()
    assert run(cfg)["proxies"] == results["proxies"]  # resumed from the score files, same numbers
    assert micro.read_text().splitlines() == rows
    cfg.stage.update({"bn_quirk": False, "spaces": ["macro"]})  # another setting: scored afresh, elsewhere
    assert run(cfg)["proxies"]["nwot"]["macro"] != results["proxies"]["nwot"]["macro"]
    assert len(list(tmp_path.glob("scores_macro_*.jsonl"))) == 2


def test_stage_says_what_it_does_and_how_long(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Before any work a line names the networks, proxies and score files; then a line per network with an ETA."""
    from segnas.spaces.transnas import all_archs
    from segnas.stages.proxy_evaluate import run

    table = tmp_path / "tnb.csv"
    table.write_text("space,tnb_arch_str,valid_acc_final_epoch\n" + "".join(
        f"micro,{a},{90 + i}\n" for i, a in enumerate(all_archs("micro")[1000:1004])))  # fmt: skip
    stage = OmegaConf.load(ROOT / "conf/stage/proxy_evaluate.yaml")
    stage.pop("defaults")
    stage.update({"spaces": ["micro"], "sample_size": 3, "repeats": 1, "batch_size": 1, "resolution": 64,
                  "progress": True, "builder_check_archs": 0, "proxies": ["params", "nwot"]})  # fmt: skip
    benchmark = {"csv": str(table), "target": "valid_acc_final_epoch"}
    cfg = OmegaConf.create({"seed": 0, "paths": {"output_dir": str(tmp_path)}, "benchmark": benchmark, "stage": stage})
    with caplog.at_level("INFO"):
        run(cfg)
    lines = caplog.messages
    plan = next(i for i, m in enumerate(lines) if m.startswith("proxy_evaluate: scoring up to 3 networks"))
    assert "['params', 'nwot']" in lines[plan] and f"{tmp_path}/scores_<space>_<key>.jsonl" in lines[plan]
    assert any(m.startswith("scores_micro: 3 networks to score, 0 already scored in") for m in lines[plan:])
    progress = [m for m in lines if re.match(r"scores_micro: network \d of 3 scored \(64-41414-.*\), ETA \d+:\d\d", m)]
    assert len(progress) == 3 and progress[-1].endswith("ETA 00:00")
    caplog.clear()
    with caplog.at_level("INFO"):
        run(cfg)  # resumed: nothing left to score, and it says so
    assert any("0 networks to score, 3 already scored in" in m for m in caplog.messages)


def test_hydra_config_composes_with_benchmark_override() -> None:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["stage=proxy_evaluate", "benchmark.csv=/x/y.csv"])
    assert cfg.stage._target_ == "segnas.stages.proxy_evaluate.run"
    assert cfg.benchmark.csv == "/x/y.csv" and cfg.benchmark.target == "valid_acc_final_epoch"
    assert "saswot" in cfg.stage.proxies and cfg.stage.sample_size == 50


def test_scoring_batch_random_or_from_data() -> None:
    from hydra import compose, initialize_config_dir

    from segnas.proxies.batch import benchmark_batch
    from segnas.spaces import transnas

    def transnas_scoring_batch(cfg):
        return benchmark_batch(cfg.get("data"), cfg.stage.inputs, cfg.stage.batch_size, cfg.stage.resolution,
                               transnas.NUM_CLASSES, cfg.seed)

    overrides = ["stage=proxy_evaluate", "data=synthetic", "stage.batch_size=3", "stage.resolution=64"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, "stage.inputs=data"])
        random_cfg = compose("config", overrides=overrides)
    x, y = transnas_scoring_batch(cfg)
    assert x.shape == (3, 3, 64, 64) and y.shape == (3, 64, 64) and y.dtype == torch.int64
    assert ((y < 17) | (y == 255)).all()
    xr, yr = transnas_scoring_batch(random_cfg)
    assert xr.shape == x.shape and torch.equal(xr, transnas_scoring_batch(random_cfg)[0])  # seeded
    assert int(yr.max()) <= 16


def test_naslib_agreement_uses_archs_with_both_scores() -> None:
    from segnas.proxies.benchmark import Record
    from segnas.proxies.report import naslib_agreement

    records = {
        f"a{i}": Record(f"a{i}", "micro", 90.0, {"p": float(i**2) if i != 3 else math.nan}) for i in range(8)
    }
    scores = {a: {"p": float(i), "q": 1.0} for i, a in enumerate(records)}
    scores["a5"]["p"] = math.nan
    out = naslib_agreement(scores, records)
    assert out == {"p": {"spearman": pytest.approx(1.0), "n": 6}}  # a3 (no reference) and a5 (NaN) dropped
