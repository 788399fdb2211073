"""TransNAS-Bench-101 network builder and benchmark loader."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from scipy import stats
from torch import nn

from segnas.metrics import count_macs_params, count_params
from segnas.proxies import benchmark
from segnas.spaces import transnas

DEV_CSV = Path(__file__).resolve().parents[2] / "shared/data/transnas/tnb101_segmentsemantic_dev.csv"
needs_csv = pytest.mark.skipif(not DEV_CSV.exists(), reason=f"{DEV_CSV} not present")


@pytest.fixture(scope="module")
def reference() -> dict[str, list[benchmark.Record]]:
    """Dev-CSV rows that carry NASLib's own flops/params, per space."""
    records = [r for r in benchmark.load(DEV_CSV) if r.reference["params"] == r.reference["params"]]
    return {s: [r for r in records if r.space == s] for s in transnas.SPACES}


def test_space_sizes_and_constraints() -> None:
    micro, macro = transnas.all_archs("micro"), transnas.all_archs("macro")
    assert len(micro) == 4096 == len(set(micro))
    assert len(macro) == 3256 == len(set(macro))
    assert "64-41414-2_32_323" in micro and "64-1234-basic" in macro
    assert "64-1111-basic" not in macro  # no downsampling module
    assert "64-22221-basic" not in macro  # four channel doublings
    rng = random.Random(0)
    assert transnas.sample(rng, "macro") in macro
    with pytest.raises(ValueError, match="unknown"):
        transnas.all_archs("nano")


@pytest.mark.parametrize("bad", ["64-41414-4_00_000", "64-41414-1_00", "64-1256-basic", "x", "63-1234-basic"])
def test_bad_strings_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="arch string"):
        transnas.build(bad)


@pytest.mark.parametrize(
    ("arch", "feature", "deconvs"),
    [
        ("64-41414-2_32_323", (512, 2, 2), 5),
        ("64-1234-basic", (256, 4, 4), 4),
        ("64-443311-basic", (256, 1, 1), 6),
    ],
)
def test_shapes_and_decoder(arch: str, feature: tuple[int, int, int], deconvs: int) -> None:
    net = transnas.build(arch)
    x = torch.randn(2, 3, 64, 64)
    assert net.encoder(x).shape == (2, *feature)
    assert net(x).shape == (2, transnas.NUM_CLASSES, 64, 64)
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in net.decoder.modules()) == deconvs
    assert net.decoder[-1].in_channels == 32 and net.decoder[0][0].out_channels == 1024


def test_micro_cell_wiring_by_hand() -> None:
    x = torch.randn(2, 8, 6, 6)
    # node1 = x, node2 = n0 + n1 = 2x, node3 = n0 + n1 + n2 = 4x
    assert torch.allclose(transnas.MicroCell("111111", 8, 8, 1)(x), 4 * x)
    # only skip edges a, c, f: node3 = node2 = node1 = x
    assert torch.equal(transnas.MicroCell("101001", 8, 8, 1)(x), x)
    zero = transnas.MicroCell("000000", 8, 16, 2)(torch.randn(2, 8, 7, 7))
    assert zero.shape == (2, 16, 4, 4) and not zero.any()


def test_macro_residual_bn_reproduces_tnbs_positional_arguments() -> None:
    # TNB: nn.BatchNorm2d(planes, affine, track_running_stats) -> eps=True, momentum=True
    tnb = nn.BatchNorm2d(8, True, True)
    assert (tnb.eps, tnb.momentum) == (1.0, 1.0)
    arch = "64-1234-basic"
    quirky, plain = transnas.build(arch, seed=0), transnas.build(arch, seed=0, bn_quirk=False)
    projections = [
        m.downsample
        for m in quirky.modules()
        if isinstance(m, transnas.BasicBlock) and isinstance(m.downsample, nn.Sequential)
    ]
    residual = {id(p[1]) for p in projections}
    assert len(residual) == 3  # modules 2, 3, 4 change width or stride: a projection each; 1 keeps both
    for m in quirky.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert (m.eps, m.momentum) == ((1.0, 1.0) if id(m) in residual else (1e-5, 0.1))
    assert all((m.eps, m.momentum) == (1e-5, 0.1) for m in plain.modules() if isinstance(m, nn.BatchNorm2d))
    state = plain.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in quirky.state_dict().items())  # same weights
    conv, bn = projections[0]
    seen: list[torch.Tensor] = []
    conv.register_forward_hook(lambda *args: seen.append(args[-1].detach()))
    x = torch.randn(2, 3, 64, 64)
    assert not torch.allclose(quirky(x), plain(x))
    # momentum 1: the running statistics are the last batch's
    assert torch.allclose(bn.running_mean, seen[0].mean((0, 2, 3)), atol=1e-6)
    assert torch.allclose(bn.running_var, seen[0].var((0, 2, 3)), rtol=1e-4)
    micro = transnas.build("64-41414-1_13_133")
    assert all(m.eps == 1e-5 for m in micro.modules() if isinstance(m, nn.BatchNorm2d))


def test_encoder_init_matches_tnb() -> None:
    net = transnas.build("64-41414-3_33_333")
    conv = net.encoder.cells[-1].edges[-1][1]
    fan_out = conv.weight.shape[0] * conv.weight[0, 0].numel()
    assert conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.05)


def test_seeded_build_does_not_depend_on_earlier_draws() -> None:
    arch = "64-1234-basic"
    first = transnas.build(arch, seed=3)
    torch.randn(100)  # whatever was drawn before
    second = transnas.build(arch, seed=3)
    weights = [(a, b) for a, b in zip(first.parameters(), second.parameters(), strict=True)]
    assert all(torch.equal(a, b) for a, b in weights)
    other = transnas.build(arch, seed=4)
    assert not torch.equal(next(first.parameters()), next(other.parameters()))


@needs_csv
@pytest.mark.slow  # 4-14 s (make test-slow keeps make test under 6 min with the shared data)
def test_params_equal_naslib_exactly(reference: dict[str, list[benchmark.Record]]) -> None:
    for space in transnas.SPACES:
        for record in random.Random(1).sample(reference[space], 15):
            params = count_params(transnas.build(record.arch))
            assert params == round(record.reference["params"] * 1e6), record.arch


def _flops_rank_agreement(records: list[benchmark.Record], size: int) -> float:
    macs = [count_macs_params(transnas.build(r.arch), (1, 3, size, size))[0] for r in records]
    return float(stats.spearmanr(macs, [r.reference["flops"] for r in records]).statistic)


@pytest.mark.slow  # ~14 s near idle (make test-slow, with the 30-architecture version)
@needs_csv
def test_flops_rank_agrees_with_naslib_fast(reference: dict[str, list[benchmark.Record]]) -> None:
    for space in transnas.SPACES:
        records = random.Random(2).sample(reference[space], 8)
        assert _flops_rank_agreement(records, 256) > 0.99


@pytest.mark.slow
@needs_csv
def test_flops_rank_agrees_with_naslib_30_archs(reference: dict[str, list[benchmark.Record]]) -> None:
    for space in transnas.SPACES:
        records = random.Random(3).sample(reference[space], 30)
        assert _flops_rank_agreement(records, 256) > 0.99


@needs_csv
def test_benchmark_loader() -> None:
    records = benchmark.load(DEV_CSV)
    assert len(records) == 5146
    assert sum(r.space == "micro" for r in records) == 2867
    assert {r.space for r in benchmark.load(DEV_CSV, space="macro")} == {"macro"}
    subset = benchmark.load(DEV_CSV, target="valid_acc_best_epoch_early")
    assert len(subset) == 1009
    assert all(r.reference["epe_nas"] != r.reference["epe_nas"] for r in subset)  # -1e8 sentinel -> NaN
    assert all(90 < r.target < 100 for r in records)


def test_benchmark_loader_names_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text("space,tnb_arch_str\nmicro,64-41414-0_00_000\n")
    with pytest.raises(ValueError, match="valid_acc_final_epoch"):
        benchmark.load(path)
