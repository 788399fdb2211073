"""HyCTAS fidelity (issue 11): the reference self-attention operator, ``stage=profile`` with both
self-attention variants, the calibrated memory estimate and its calibration script, the paper presets."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from segnas.metrics import attention_macs, count_macs_params
from segnas.models import build_network
from segnas.nn import OPS, SelfAttentionReference, build_op
from segnas.spaces import as_genotype, get_space
from segnas.spaces.hyctas import KNOWN_OPS
from segnas.spaces.hyctas.memory import COEFFICIENTS, FEATURES, activation_memory_mb, memory_features
from segnas.stages import run_stage

from conftest import REPO, compose_config

REF = "self_attention_reference"


def _load_calibrate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("calibrate", REPO / "experiments/hyctas_memory/calibrate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------ reference self-attention
@pytest.mark.parametrize(("stride", "size"), [(1, (9, 11)), (2, (5, 6))])
def test_reference_attention_output_shape(stride: int, size: tuple[int, int]) -> None:
    op = build_op(REF, 16, 32, stride)
    assert isinstance(op, SelfAttentionReference)
    assert op(torch.randn(2, 16, 9, 11)).shape == (2, 32, *size)


def test_reference_attention_params_equal_hand_count() -> None:
    c = 256
    conv_bn = c * c + 2 * c  # 1x1 conv without bias + BN
    qk = c * (c // 8) + c // 8  # 1x1 conv with bias
    hand = conv_bn + 2 * qk + (c * c + c) + 1 + 2 * c + conv_bn  # embed, q, k, v, gamma, BN, expand
    assert sum(p.numel() for p in build_op(REF, c, c, 1).parameters()) == hand == 214_849
    shortcut = 9 * c * c + 2 * c  # 3x3 stride-2 conv + BN
    assert sum(p.numel() for p in build_op(REF, c, c, 2).parameters()) == hand + shortcut
    assert build_op(REF, c, c, 1).shortcut is None  # identity at stride 1 and equal widths


def test_reference_attention_is_sagan_attention() -> None:
    torch.manual_seed(0)
    op = build_op(REF, 16, 16, 1).eval()
    with torch.no_grad():
        op.gamma.fill_(0.7)
        x = torch.randn(2, 16, 5, 6)
        z = op.embed(x)
        q, k, v = (m(z).flatten(2) for m in (op.q, op.k, op.v))  # (B, C', N)
        attn = torch.softmax(q.transpose(1, 2) @ k, dim=-1)  # no 1/sqrt(d) scaling
        y = z + 0.7 * (v @ attn.transpose(1, 2)).view_as(z)
        manual = torch.relu(op.expand(torch.relu(op.norm(y))) + x)
        torch.testing.assert_close(op(x), manual, atol=1e-5, rtol=1e-5)


def test_reference_attention_is_a_known_operator_of_the_space() -> None:
    assert REF in OPS and REF in KNOWN_OPS
    space = get_space("hyctas", ops=["skip", "conv", REF])
    genotype = space.sample(np.random.default_rng(0))
    assert not space.violations(genotype)
    data = genotype.to_dict()
    data["branches"][0]["ops"] = [REF] * len(data["branches"][0]["ops"])
    genotype = as_genotype(data, "hyctas")
    assert not space.violations(genotype)
    net = build_network(genotype, num_classes=3, filter_multiplier=2).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)


# ------------------------------------------------------------------------------- stage=profile
def test_profile_reports_both_attention_variants_beside_the_paper(tmp_path: Path) -> None:
    cfg = compose_config(
        ["stage=profile", "stage.latency=false", "stage.scale=1", f"stage.ops=[self_attention,{REF}]",
         f"stage.stride2_ops=[{REF}]", "stage.paper_transformer=null"],
        tmp_path,
    )
    run_stage(cfg)
    ops = json.loads((tmp_path / "results.json").read_text())["ops"]
    assert set(ops) == {"self_attention", REF, f"{REF}/s2"}
    assert all((r["paper_macs_g"], r["paper_params_m"]) == (0.6, 0.81) for r in ops.values())
    ref = ops[REF]
    assert ref["params_m"] == pytest.approx(0.214849) and ref["macs_g_no_attn"] == pytest.approx(0.439, abs=1e-3)
    assert ref["macs_g"] - ref["macs_g_no_attn"] == pytest.approx(2048**2 * (32 + 256) / 1e9)  # q k^T and a v
    s2 = ops[f"{REF}/s2"]
    assert s2["stride"] == 2 and round(s2["params_m"], 2) == 0.81 and round(s2["macs_g_no_attn"], 1) == 0.6
    table = (tmp_path / "profile.md").read_text()
    assert f"| {REF}/s2 | 1.847 | 0.6 | 0.8052 | 0.81 | 0.639 |" in table


# ------------------------------------------------------------------------------ memory estimate
def test_memory_estimate_scales_with_batch_and_covers_every_operator() -> None:
    assert set(COEFFICIENTS) == set(FEATURES) and all(v >= 0 for v in COEFFICIENTS.values())
    assert {f"op:{op}" for op in KNOWN_OPS} <= set(FEATURES)
    genotype = as_genotype("pkg://hyctas_s", "hyctas")
    one = activation_memory_mb(genotype, 8, 1, 256, 512)
    assert activation_memory_mb(genotype, 8, 16, 256, 512) == pytest.approx(16 * one)
    assert activation_memory_mb(genotype, 12, 1, 256, 512) > one
    feats = memory_features(genotype, 8, 256, 512)
    assert feats["image"] == 256 * 512 and feats["op:self_attention"] > 0 and feats["op:transformer"] == 0


def test_memory_coefficients_are_the_calibration_results() -> None:
    results = json.loads((REPO / "experiments/hyctas_memory/results.json").read_text())
    assert results["coefficients"] == pytest.approx(COEFFICIENTS, rel=1e-3)


def test_calibration_script_on_three_tiny_networks(tmp_path: Path) -> None:
    calibrate = _load_calibrate()
    out = calibrate.main(
        ["--nets", "3", "--sizes", "32x64", "--batch", "2", "--filter-multipliers", "2", "--limit-samples", "0",
         "--out", str(tmp_path)]
    )
    assert [r["name"] for r in out["rows"]] == ["hyctas_s", "hyctas_m", "hyctas_l"]
    assert all(r["measured_mb"] > 0 and math.isfinite(r["loo_mb"]) for r in out["rows"])
    assert out["metrics"]["after"]["median_rel_err"] <= out["metrics"]["before"]["median_rel_err"]
    assert (tmp_path / "calibration.md").is_file() and (tmp_path / "results.json").is_file()
    net = build_network(as_genotype("pkg://hyctas_s", "hyctas"), num_classes=19, filter_multiplier=2)
    first, second = (calibrate.saved_activation_bytes(net, 2, 32, 64) for _ in range(2))
    assert first == second == round(out["rows"][0]["measured_mb"] * 2**20)


# ------------------------------------------------------------------------------- paper presets
@pytest.mark.parametrize(("experiment", "arch"), [("s", "hyctas_s"), ("m", "hyctas_m"), ("l", "hyctas_l")])
def test_retrain_presets_compose_from_the_s_preset(experiment: str, arch: str) -> None:
    cfg = compose_config([f"experiment=hyctas_{experiment}_cityscapes"])
    assert cfg.stage.name == "retrain" and cfg.arch.name == arch and cfg.data.jitter == 0.0
    assert (cfg.stage.filter_multiplier, cfg.stage.output_stride) == (cfg.arch.filter_multiplier, cfg.arch.output_stride)
    base = OmegaConf.to_container(compose_config(["experiment=hyctas_s_cityscapes"]), resolve=False)
    this = OmegaConf.to_container(cfg, resolve=False)
    assert {k: v for k, v in this.items() if k != "arch"} == {k: v for k, v in base.items() if k != "arch"}


@pytest.mark.parametrize(("row", "steps", "drop_path"), [(1, 186000, 0.0), (2, 186000, 0.1), (3, 186000, 0.2),
                                                       (4, 372000, 0.2)])
def test_table9_presets_differ_from_the_s_preset_in_their_two_settings(row: int, steps: int, drop_path: float) -> None:
    cfg = compose_config([f"experiment=hyctas_s_table9_{row}"])
    assert (cfg.trainer.max_steps, cfg.stage.drop_path_rate) == (steps, drop_path)
    base = OmegaConf.to_container(compose_config(["experiment=hyctas_s_cityscapes"]), resolve=False)
    this = OmegaConf.to_container(cfg, resolve=False)
    for key in ("trainer", "stage"):
        base[key].pop("max_steps" if key == "trainer" else "drop_path_rate")
        this[key].pop("max_steps" if key == "trainer" else "drop_path_rate")
    assert this == base


@pytest.mark.parametrize(("experiment", "stage"), [("hyctas_cityscapes", "search"), ("hyctas_supernet_cityscapes", "supernet")])
def test_search_presets_compose_without_colour_jitter(experiment: str, stage: str) -> None:
    cfg = compose_config([f"stage={stage}", f"experiment={experiment}"])
    assert cfg.data.jitter == 0.0 and list(cfg.data.crop_size) == [256, 512]
    if experiment == "hyctas_cityscapes":
        assert cfg.space.memory_limit_mb == 11600  # a 16 GB V100: binds only near the space's largest networks
        space = instantiate(cfg.space, _convert_="all")
        assert not space.violations(space.sample(np.random.default_rng(0)))


def test_reference_aux_heads_at_strides_16_and_32() -> None:
    net = build_network(as_genotype("pkg://hyctas_l", "hyctas"), num_classes=3, filter_multiplier=2, aux_heads=True)
    assert [net.net.genotype.head[k] for k in net.aux_index] == [16, 32]
    logits, aux = net.train()(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 3, 64, 64) and [a.shape for a in aux] == [logits.shape] * 2


def test_count_of_attention_macs_matches_fvcore() -> None:
    op = build_op(REF, 64, 64, 1)
    total, _ = count_macs_params(op, (1, 64, 16, 16))
    assert attention_macs(op, [1, 64, 16, 16]) == 256**2 * (8 + 64) <= total
