"""Proxy files (a searched proxy with its scoring protocol) and the combination weight search."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from omegaconf import OmegaConf
from torch import nn

from segnas.proxies.proxy_file import Combination, load_proxy_file
from segnas.proxies.proxy_search import search_weights

ROOT = Path(__file__).resolve().parents[1]
DEV_CSV = ROOT.parent / "shared/data/transnas/tnb101_segmentsemantic_dev.csv"
PROTOCOL = {"inputs": "random", "batch_size": 3, "resolution": 128, "seed": 0, "bn_quirk": True}
LOG_FLOPS = {"proxy": "flops", "transform": "log", "center": 0.0, "scale": 1.0, "weight": 1.0}


def _write(tmp_path: Path, data: dict, stem: str = "my_proxy") -> Path:
    path = tmp_path / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_combination_file_loads_and_scores(tmp_path: Path) -> None:
    terms = [
        LOG_FLOPS,
        {"proxy": "params", "transform": "identity", "center": 10.0, "scale": 2.0, "weight": -0.5},
    ]
    data = {
        "kind": "combination",
        "combination": {"terms": terms},
        "protocol": PROTOCOL,
        "provenance": {"x": 1},
    }
    pf = load_proxy_file(_write(tmp_path, data))
    assert pf.name == "my_proxy" and pf.protocol.resolution == 128 and isinstance(pf.definition, Combination)
    assert pf.definition.proxies == ["flops", "params"]
    assert pf.definition.combine({"flops": math.e**2, "params": 14.0}) == pytest.approx(2 - 0.5 * 2)
    assert math.isnan(pf.definition.combine({"flops": 0.0, "params": 14.0}))  # log of a non-positive flops
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    value = pf.score(net, torch.zeros(2, 3, 8, 8), torch.zeros(2, 6, 6).long())
    assert value == pytest.approx(math.log(4 * 27 * 36) - 0.5 * (112 - 10) / 2)
    assert load_proxy_file(_write(tmp_path, {**data, "name": "other"})).name == "other"


def test_expression_file_loads(tmp_path: Path) -> None:
    expr = {"inputs": ["weight", "gradient"], "unary": [["softmax"], ["relu"]], "binary": "lesser_than"}
    pf = load_proxy_file(_write(tmp_path, {"kind": "expression", "expression": expr, "protocol": PROTOCOL}))
    assert pf.context()["definition"]["binary"] == "lesser_than"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "tree"}, "key 'kind' must be one of"),
        ({"protocol": {k: v for k, v in PROTOCOL.items() if k != "batch_size"}}, r"protocol: missing key\(s\) \['batch_size'\]"),
        ({"protocol": {**PROTOCOL, "resolution": "big"}}, r"protocol.resolution: expected int"),
        ({"protocol": {**PROTOCOL, "inputs": "data"}}, "protocol.inputs must be one of"),
        ({"combination": {"terms": [{**LOG_FLOPS, "proxy": "nope"}]}}, r"terms\[0\].proxy: unknown proxy 'nope'"),
        ({"combination": {"terms": [{**LOG_FLOPS, "transform": "sqrt"}]}}, r"terms\[0\].transform: unknown transform"),
        ({"combination": {"terms": [{k: v for k, v in LOG_FLOPS.items() if k != "scale"}]}}, r"missing key\(s\) \['scale'\]"),
        ({"combination": {"terms": []}}, "combination.terms: missing"),
        ({"name": "nwot"}, "key 'name' 'nwot'"),
        ({"kind": "expression", "expression": {"inputs": ["weight", "gradient"], "unary": [["cube"], []],
          "binary": "lesser_than"}}, r"expression: unknown leaves/operations/reductions \['cube'\]"),
    ],
)  # fmt: skip
def test_bad_file_names_file_and_key(tmp_path: Path, change: dict, message: str) -> None:
    data = {"kind": "combination", "combination": {"terms": [LOG_FLOPS]}, "protocol": PROTOCOL, **change}
    path = _write(tmp_path, data)
    with pytest.raises(ValueError, match=message) as info:
        load_proxy_file(path)
    assert str(path) in str(info.value)


def test_committed_best_proxy_loads() -> None:
    pf = load_proxy_file(ROOT / "experiments/saswot_proxy_evolution/best_proxy.yaml")
    assert pf.name == "best_proxy" and isinstance(pf.definition, Combination)


def test_search_weights_finds_the_mix() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 40))
    terms = {"g1": np.stack([a, b], 1), "g2": np.stack([a, b], 1)[::-1]}
    targets = {"g1": a + 0.5 * b, "g2": (a + 0.5 * b)[::-1]}
    fits = search_weights(terms, targets, [0.0, 0.5, 1.0])
    assert fits[0].weights == (1.0, 0.5) and fits[0].fitness == pytest.approx(1.0)
    assert {f.weights for f in fits} == {(0.0, 1.0), (0.5, 1.0), (1.0, 0.0), (1.0, 0.5), (1.0, 1.0)}
    assert fits == search_weights(terms, targets, [0.0, 0.5, 1.0])  # deterministic


@pytest.mark.skipif(not DEV_CSV.exists(), reason="dev CSV not present")
@pytest.mark.slow  # 3-7 s (make test-slow keeps make test under 6 min on a slow host)
def test_stage_scores_proxy_file_with_its_own_protocol(tmp_path: Path) -> None:
    from segnas.stages.proxy_evaluate import run

    path = _write(
        tmp_path, {"kind": "combination", "combination": {"terms": [LOG_FLOPS]}, "protocol": PROTOCOL}
    )
    stage = OmegaConf.load(ROOT / "conf/stage/proxy_evaluate.yaml")
    stage.pop("defaults")
    stage.update(
        {"sample_size": 3, "repeats": 1, "pool_size": 3, "batch_size": 2, "resolution": 64, "progress": False,
         "builder_check_archs": 3, "spaces": ["macro"], "proxies": ["flops", str(path)]}
    )  # fmt: skip
    benchmark = {"csv": str(DEV_CSV), "target": "valid_acc_final_epoch"}
    cfg = OmegaConf.create(
        {"seed": 0, "paths": {"output_dir": str(tmp_path / "run")}, "benchmark": benchmark}
    )
    cfg.stage = stage
    results = run(cfg)
    assert results["proxies"]["my_proxy"]["macro"]["kendall"] == pytest.approx(
        results["proxies"]["flops"]["macro"]["kendall"]
    )
    assert results["setup"]["proxy_files"]["my_proxy"]["protocol"]["resolution"] == 128
    (scores,) = (tmp_path / "run").glob("scores_macro_*.jsonl")
    for line in scores.read_text().splitlines()[1:]:
        record = json.loads(line)["scores"]
        assert record["my_proxy"] == pytest.approx(math.log(4 * record["flops"]))  # its own 128x128 batch
    json.dumps(results)
    bad = _write(tmp_path, {"kind": "combination", "combination": {"terms": [LOG_FLOPS]}}, "bad")
    cfg.stage.proxies = ["flops", str(bad)]
    cfg.paths.output_dir = str(tmp_path / "bad_run")
    with pytest.raises(ValueError, match=f"{bad}: missing key 'protocol'"):
        run(cfg)
    assert not (tmp_path / "bad_run").exists()  # failed before any work
