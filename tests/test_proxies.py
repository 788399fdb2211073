"""Zero-cost proxies: each checked on a tiny net against an independent formula."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from segnas import proxies
from segnas.models import build_network
from segnas.proxies import stats as stats_mod
from segnas.proxies.saswot import AvtRanges, calibrate, calibrate_cached
from segnas.spaces import as_genotype

EXPECTED = {
    "params",
    "flops",
    "grad_norm",
    "snip",
    "grasp",
    "fisher",
    "jacov",
    "synflow",
    "synflow_log",
    "nwot",
    "zen",
    "plain",
    "l2_norm",
    "epe_nas",
    "saswot_minus",
    "saswot",
}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def dense_batch(n: int = 3, c: int = 4, h: int = 5, w: int = 6, classes: int = 3):
    x = torch.randn(n, c, h, w)
    y = torch.randint(0, classes, (n, h, w))
    y[0, 0, :3] = 255  # ignored pixels
    return x, y


def conv1x1_grad(weight: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """dL/dW of per-pixel CE for a bias-free 1x1 conv, written as softmax regression over valid pixels."""
    w = weight.detach().double().numpy()[:, :, 0, 0]  # [K, C]
    feats = x.double().permute(0, 2, 3, 1).reshape(-1, x.shape[1]).numpy()  # [P, C]
    labels = y.reshape(-1).numpy()
    keep = labels != 255
    feats, labels = feats[keep], labels[keep]
    logits = feats @ w.T
    prob = np.exp(logits - logits.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    prob[np.arange(len(labels)), labels] -= 1
    return (prob.T @ feats / len(labels))[:, :, None, None]


def test_available_lists_all_proxies_and_unknown_name_fails() -> None:
    assert set(proxies.available()) == EXPECTED
    with pytest.raises(KeyError, match="unknown proxy"):
        proxies.compute(["nope"], nn.Linear(2, 2), torch.randn(2, 2), torch.tensor([0, 1]))


def test_gradient_proxies_match_softmax_regression_formula() -> None:
    conv = nn.Conv2d(4, 3, 1, bias=False)
    x, y = dense_batch()
    grad = conv1x1_grad(conv.weight, x, y)
    w = conv.weight.detach().double().numpy()
    got = proxies.compute(["grad_norm", "snip", "plain", "saswot_minus"], conv, x, y)
    assert got["grad_norm"] == pytest.approx(np.linalg.norm(grad), rel=1e-5)
    assert got["snip"] == pytest.approx(np.abs(w * grad).sum(), rel=1e-5)
    assert got["plain"] == pytest.approx((w * grad).sum(), rel=1e-4, abs=1e-7)
    soft = np.exp(w) / np.exp(w).sum(0, keepdims=True)
    per_image = grad * float((y != 255).sum()) / x.shape[0]  # the default loss_reduction: CE summed per image
    assert got["saswot_minus"] == (soft < np.maximum(per_image, 0)).sum()


def test_saswot_minus_reductions() -> None:
    net = nn.Sequential(nn.Conv2d(4, 8, 1), nn.Conv2d(8, 3, 1))
    x, y = dense_batch()
    y[y == 255] = 0
    with torch.no_grad():  # make the comparison non-trivial: tiny weights spread softmax, loss grads larger
        net[0].weight.mul_(10)
    loss = F.cross_entropy(net(x), y, reduction="sum")
    grads = torch.autograd.grad(loss, [net[0].weight, net[1].weight])
    scale = x.shape[0]  # the default loss_reduction: the CE summed over each image, averaged over the batch
    masks = [
        (torch.softmax(m.weight, 0) < torch.relu(g / scale)).double() for m, g in zip(net, grads, strict=True)
    ]
    for elem, layer, expect in [
        ("sum", "sum", sum(m.sum() for m in masks)),
        ("mean", "sum", sum(m.mean() for m in masks)),
        ("mean", "mean", sum(m.mean() for m in masks) / 2),
        ("sum", "mean", sum(m.sum() for m in masks) / 2),
    ]:
        opts = {"saswot_minus": {"elem_reduce": elem, "layer_reduce": layer}}
        got = proxies.compute(["saswot_minus"], net, x, y, options=opts)["saswot_minus"]
        assert got == pytest.approx(float(expect), abs=1e-9)
    assert sum(m.sum() for m in masks) > 0


def test_fisher_is_fan_in_weighted_channel_fisher() -> None:
    conv = nn.Conv2d(4, 3, 1)
    x, y = dense_batch()
    got = proxies.compute(["fisher"], conv, x, y)["fisher"]
    act = conv(x).detach().double()
    prob = torch.softmax(act, 1)
    keep = (y != 255).double()
    onehot = F.one_hot(y.clamp(max=2), 3).permute(0, 3, 1, 2).double()
    grad = (prob - onehot) * keep[:, None] / keep.sum()
    s = (act * grad).sum((2, 3))
    expect = 4 * (0.5 * (s**2).mean(0)).sum()  # fan_in of a 1x1 conv with 4 inputs
    assert got == pytest.approx(float(expect), rel=1e-5)


def test_nwot_hand_computed_kernel() -> None:
    x = torch.tensor([[1.0, -1.0, 2.0], [1.0, 1.0, -1.0]])
    # codes [1,0,1] and [1,1,0]: K = [[3,1],[1,3]], det 8
    got = proxies.compute(["nwot"], nn.ReLU(), x, torch.tensor([0, 1]))["nwot"]
    assert got == pytest.approx(math.log(8))
    # a second ReLU on the same signs doubles K: det 32
    got2 = proxies.compute(["nwot"], nn.Sequential(nn.ReLU(), nn.LeakyReLU()), x, torch.tensor([0, 1]))
    assert got2["nwot"] == pytest.approx(math.log(32))


def test_nwot_counts_activation_modules_not_blocks_named_relu() -> None:
    from segnas.spaces.transnas import ReLUConvBN

    x = torch.randn(4, 3, 5, 5)
    block = proxies.compute(["nwot"], ReLUConvBN(3, 4, 3, 1), x, torch.zeros(4).long())["nwot"]
    assert block == pytest.approx(proxies.compute(["nwot"], nn.ReLU(), x, torch.zeros(4).long())["nwot"])


class FourReLUs(nn.Module):
    """Four conv + activation blocks (ReLU, LeakyReLU, ReLU, ReLU6) as modules, or called (``style``)
    as plain or in-place functions."""

    def __init__(self, style: str = "modules") -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c, 6, 3, padding=1) for c in (3, 6, 6, 6))
        self.acts = nn.ModuleList([nn.ReLU(), nn.LeakyReLU(0.2), nn.ReLU(inplace=True), nn.ReLU6()])
        self.style = style

    def act(self, i: int, x: torch.Tensor) -> torch.Tensor:
        if self.style == "plain":
            return [torch.relu, lambda t: F.leaky_relu(t, 0.2), torch.Tensor.relu, F.relu6][i](x)
        if self.style == "inplace":
            return [lambda t: F.relu(t, inplace=True), lambda t: F.leaky_relu_(t, 0.2), torch.relu_,
                    lambda t: F.relu6(t, inplace=True)][i](x)  # fmt: skip
        return self.acts[i](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = self.act(i, conv(x))
        return x


def test_nwot_is_the_same_for_relu_modules_and_functional_relus() -> None:
    x, y = torch.randn(6, 3, 5, 5), torch.zeros(6, 5, 5).long()
    modules = FourReLUs()
    want = stats_mod.collect(modules, x, y, None, {stats_mod.NWOT})
    assert want.relu_calls == 4
    for style in ("plain", "inplace"):
        net = FourReLUs(style)
        net.load_state_dict(modules.state_dict())
        assert torch.equal(net(x), modules(x))
        got = stats_mod.collect(net, x, y, None, {stats_mod.NWOT})
        assert got.relu_calls == 4 and torch.equal(got.nwot_kernel, want.nwot_kernel), style
        assert (
            proxies.compute(["nwot"], net, x, y)["nwot"] == proxies.compute(["nwot"], modules, x, y)["nwot"]
        )


@pytest.mark.parametrize(
    "act",
    [
        nn.ReLU(inplace=True),
        nn.LeakyReLU(inplace=True),
        nn.ReLU6(),
        nn.PReLU(),
        nn.RReLU(),
        nn.Hardtanh(0.0, 1.0),
    ],
)
def test_nwot_sees_the_relu_family(act: nn.Module) -> None:
    x, y = torch.randn(5, 3, 4, 4), torch.zeros(5, 4, 4).long()
    conv = nn.Conv2d(3, 8, 1)
    want = proxies.compute(["nwot"], nn.Sequential(conv, nn.ReLU()), x, y)["nwot"]
    assert proxies.compute(["nwot"], nn.Sequential(conv, act), x, y)["nwot"] == want
    assert math.isnan(proxies.compute(["nwot"], nn.Sequential(conv, nn.Hardtanh()), x, y)["nwot"])  # no unit


class ReLUCallCounter(TorchFunctionMode):
    """Counts calls of functions named like a ReLU (independent of the proxies' own list)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(
        self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        self.calls += "relu" in getattr(func, "__name__", "")
        return func(*args, **(kwargs or {}))


def only_conv_downup() -> dict:
    genotype = as_genotype("pkg://fasterseg").to_dict(matrices=False)  # the branches alone
    for branch in genotype["branches"]:
        branch["ops"] = ["conv_downup"] * len(branch["ops"])
    return genotype


@pytest.mark.parametrize(
    "make",
    [
        lambda: build_network("pkg://hyctas_s", num_classes=19, filter_multiplier=4),
        lambda: build_network("pkg://fasterseg", num_classes=19),
        lambda: build_network(only_conv_downup(), num_classes=19),
    ],
    ids=["hyctas_s", "fasterseg", "fasterseg_conv_downup"],
)
def test_nwot_counts_every_relu_of_hyctas_and_fasterseg(make: Callable[[], nn.Module]) -> None:
    net = make()
    x, y = torch.randn(3, 3, 64, 128), torch.randint(0, 19, (3, 64, 128))
    hooked: list[int] = []  # what hooks on nn.ReLU modules see (before issue 12)
    handles = [m.register_forward_pre_hook(lambda *_: hooked.append(1)) for m in net.modules()
               if isinstance(m, nn.ReLU)]  # fmt: skip
    counter = ReLUCallCounter()
    with counter, torch.no_grad():
        net.train()(x)
    for handle in handles:
        handle.remove()
    got = stats_mod.collect(net, x, y, None, {stats_mod.NWOT})
    assert len(hooked) < counter.calls == got.relu_calls
    assert math.isfinite(proxies.compute(["nwot"], net, x, y)["nwot"])


def test_binary_code_kernel_is_exact_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    codes = (torch.rand(5, 37) > 0.5).float()
    brute = torch.tensor([[float((a == b).sum()) for b in codes] for a in codes], dtype=torch.float64)
    monkeypatch.setattr(stats_mod, "_EXACT_COLUMNS", 8)
    assert torch.equal(stats_mod.binary_code_kernel(codes), brute)


class Square(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


def test_jacov_linear_net_hand_value() -> None:
    # y = W x: every sample has the same Jacobian W^T 1 -> correlation matrix of ones, eigenvalues N, 0..0
    n, k = 4, 1e-5
    got = proxies.compute(["jacov"], nn.Linear(6, 3, bias=False), torch.randn(n, 6), torch.zeros(n).long())
    expect = -(math.log(n + k) + 1 / (n + k) + (n - 1) * (math.log(k) + 1 / k))
    assert got["jacov"] == pytest.approx(expect, rel=1e-6)


def test_jacov_and_epe_nas_match_independent_formula() -> None:
    x = torch.randn(6, 5)
    labels = torch.tensor([0, 1, 0, 1, 1, 2])
    got = proxies.compute(["jacov", "epe_nas"], Square(), x, labels)
    jac = 2 * x.double().numpy()  # d sum(x^2) / dx
    eig = np.real(np.linalg.eig(np.corrcoef(jac))[0])
    assert got["jacov"] == pytest.approx(-np.sum(np.log(eig + 1e-5) + 1 / (eig + 1e-5)), rel=1e-6)
    expect = 0.0
    for c in (0, 1, 2):
        corr = np.corrcoef(jac[labels.numpy() == c])
        expect += abs(np.sum(np.log(np.abs(corr) + 1e-5)))
    assert got["epe_nas"] == pytest.approx(expect, rel=1e-6)


def test_epe_nas_not_applicable_to_dense_targets() -> None:
    x, y = dense_batch()
    result = proxies.evaluate(["epe_nas"], nn.Conv2d(4, 3, 1), x, y)["epe_nas"]
    assert not result.valid and math.isnan(result.value)
    assert result.reason is not None and "not applicable" in result.reason


def test_synflow_is_conserved_along_a_linear_chain_and_ignores_bn() -> None:
    net = nn.Sequential(nn.Linear(5, 4, bias=False), nn.BatchNorm1d(4), nn.Linear(4, 3, bias=False))
    with torch.no_grad():
        net[1].weight.fill_(7.0)
        net[1].running_var.fill_(0.01)
    w1, w2 = net[0].weight.detach().double().abs(), net[2].weight.detach().double().abs()
    flow = (w2 @ w1).sum()  # R for an all-ones input with |W|, BN removed
    got = proxies.compute(["synflow", "synflow_log"], net, torch.randn(8, 5), torch.zeros(8).long())
    assert got["synflow"] == pytest.approx(2 * float(flow), rel=1e-10)  # each layer carries all of R
    assert got["synflow_log"] == pytest.approx(math.log(got["synflow"]), rel=1e-12)  # as NASLib reports it


def test_naslib_log_is_signed() -> None:
    from segnas.proxies.own_pass import naslib_log

    assert naslib_log(math.e**2) == pytest.approx(2) and naslib_log(-math.e) == pytest.approx(-1)
    assert naslib_log(0.0) == 0.0 and naslib_log(0.5) == pytest.approx(math.log(0.5))
    assert naslib_log(-0.5) == pytest.approx(-math.log(0.5))  # NASLib's -log(-s), positive here


def test_grasp_matches_functional_hessian() -> None:
    net = nn.Linear(3, 2, bias=False)
    x, y = torch.randn(5, 3), torch.tensor([0, 1, 1, 0, 1])
    w0 = net.weight.detach().clone()

    def loss_of(w: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(x @ w.T, y)

    g = torch.autograd.grad(loss_of(w0.requires_grad_()), w0)[0].reshape(-1)
    hess = torch.autograd.functional.hessian(loss_of, w0.detach()).reshape(6, 6)
    expect = -(w0.detach().reshape(-1) * (hess @ g)).sum()
    got = proxies.compute(["grasp"], net, x, y)["grasp"]
    assert got == pytest.approx(float(expect), rel=1e-4)


def test_zen_matches_manual_computation() -> None:
    c = 3
    net = nn.Sequential(nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, 2, 1))
    x_shape = (4, c, 5, 5)
    got = proxies.compute(
        ["zen"], net, torch.randn(x_shape), torch.zeros(4, 5, 5).long(), options={"zen": {"seed": 3}}
    )["zen"]
    g = torch.Generator().manual_seed(3)
    w1 = torch.empty(c, c, 1, 1).normal_(0, 1, generator=g)
    torch.empty(2, c, 1, 1).normal_(0, 1, generator=g)  # head weight: drawn, not used by phi
    x = torch.randn(x_shape, generator=g)
    eps = torch.randn(x_shape, generator=g)
    running_var = torch.ones(c)

    def phi(inp: torch.Tensor) -> torch.Tensor:
        nonlocal running_var
        z = F.conv2d(inp, w1)
        running_var = 0.9 * running_var + 0.1 * z.var((0, 2, 3), unbiased=True)
        return torch.relu(
            (z - z.mean((0, 2, 3), keepdim=True))
            / torch.sqrt(z.var((0, 2, 3), unbiased=False, keepdim=True) + 1e-5)
        )

    delta = (phi(x) - phi(x + 0.01 * eps)).abs().flatten(1).sum(1).mean()
    expect = math.log(delta) + math.log(math.sqrt(running_var.mean()))
    assert got == pytest.approx(expect, rel=1e-4)


def test_static_proxies_params_flops_l2_skip_transposed_convs() -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ConvTranspose2d(8, 4, 2, stride=2),
        nn.Flatten(),
        nn.Linear(4 * 32 * 32, 2),
    )
    x = torch.randn(4, 3, 16, 16)
    got = proxies.compute(["params", "flops", "l2_norm"], net, x, torch.zeros(4).long())
    assert got["params"] == (3 * 8 * 9 + 8) + (8 * 4 * 4 + 4) + (4 * 32 * 32 * 2 + 2)
    # MACs at batch 1: conv 8*3*9*16*16, transposed conv 8*4*2*2*16*16, linear 4096*2
    assert got["flops"] == 8 * 3 * 9 * 256 + 8 * 4 * 4 * 256 + 4096 * 2
    expect_l2 = net[0].weight.detach().norm() + net[3].weight.detach().norm()  # ConvTranspose2d is not scored
    assert got["l2_norm"] == pytest.approx(float(expect_l2))


def test_shared_pass_runs_one_forward_and_leaves_model_untouched() -> None:
    net = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 3, 1))
    calls = []
    net.register_forward_hook(lambda *_: calls.append(1))
    state = {k: v.clone() for k, v in net.state_dict().items()}
    x, y = dense_batch()
    names = ["grad_norm", "snip", "plain", "fisher", "nwot", "jacov", "saswot_minus"]
    results = proxies.evaluate(names, net, x, y)
    assert len(calls) == 1
    assert all(r.valid for r in results.values()), results
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())
    assert all(p.grad is None for p in net.parameters())


def test_shared_pass_matches_separate_runs() -> None:
    net = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 3, 1))
    x, y = dense_batch()
    names = ["grad_norm", "fisher", "nwot", "jacov", "saswot_minus"]
    together = proxies.compute(names, net, x, y)
    for name in names:
        assert proxies.compute([name], net, x, y)[name] == pytest.approx(together[name], rel=1e-6)
    assert proxies.get("fisher").score(net, (x, y)) == pytest.approx(together["fisher"], rel=1e-6)


class Broken(nn.Module):
    def __init__(self, fill: float | None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 3, 1)
        self.fill = fill

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fill is None:
            raise RuntimeError("boom")
        return self.conv(x * self.fill)


@pytest.mark.parametrize("fill", [None, math.nan, math.inf])
def test_invalid_scores_are_nan_with_reason_never_raise(fill: float | None) -> None:
    x, y = dense_batch()
    names = [n for n in proxies.available() if n != "flops"]  # fvcore tracing tolerates NaN; checked below
    results = proxies.evaluate(names, Broken(fill), x, y)
    data_dependent = set(names) - {"params", "l2_norm"}
    for name in data_dependent:
        assert not results[name].valid and math.isnan(results[name].value), (name, results[name])
        assert results[name].reason
    assert results["params"].valid and results["l2_norm"].valid


class IgnoresInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.ones_like(x))


def test_output_independent_of_input_only_invalidates_jacobian_proxies() -> None:
    x, y = dense_batch()
    results = proxies.evaluate(["grad_norm", "snip", "nwot", "jacov"], IgnoresInput(), x, y)
    assert results["grad_norm"].valid and results["snip"].valid and results["grad_norm"].value > 0
    assert not results["jacov"].valid and "constant" in (results["jacov"].reason or "")


def test_saswot_is_sum_of_avt_normalised_parts_and_calibration() -> None:
    x, y = dense_batch()
    y[y == 255] = 0
    models = [nn.Sequential(nn.Conv2d(4, w, 1), nn.ReLU(), nn.Conv2d(w, 3, 1)) for w in (2, 5, 9)]
    with torch.no_grad():
        for m in models:
            m[0].weight.mul_(20)
    parts = [proxies.compute(["saswot_minus", "nwot"], m, x, y) for m in models]
    ranges = calibrate(models, x, y)
    for name in ("saswot_minus", "nwot"):
        values = [p[name] for p in parts]
        assert getattr(ranges, name) == (min(values), max(values))
    got = proxies.compute(["saswot"], models[1], x, y, options={"saswot": {"ranges": ranges}})["saswot"]
    lo_m, hi_m = ranges.saswot_minus
    lo_n, hi_n = ranges.nwot
    expect = (parts[1]["saswot_minus"] - lo_m) / (hi_m - lo_m) + (parts[1]["nwot"] - lo_n) / (hi_n - lo_n)
    assert got == pytest.approx(expect)
    missing = proxies.evaluate(["saswot"], models[1], x, y)["saswot"]
    assert not missing.valid and "ranges" in (missing.reason or "")


def test_calibrate_cached_reuses_the_cache(tmp_path) -> None:
    x, y = dense_batch()
    drawn: list[int] = []

    def sample(rng: random.Random) -> nn.Module:
        width = rng.randint(2, 12)
        drawn.append(width)
        net = nn.Sequential(nn.Conv2d(4, width, 1), nn.ReLU(), nn.Conv2d(width, 3, 1))
        with torch.no_grad():
            net[0].weight.mul_(20)
        return net

    cache = tmp_path / "avt.json"
    first = calibrate_cached(sample, 4, x, y, space="toy", cache=cache)
    assert len(drawn) == 4 and cache.exists()
    again = calibrate_cached(sample, 4, x, y, space="toy", cache=cache)
    assert again == first and len(drawn) == 4  # served from the cache
    calibrate_cached(sample, 4, x, y, space="toy", cache=cache, seed=1)
    assert len(drawn) == 8  # another seed is another key
    cache.write_text(cache.read_text()[:-20])  # a killed write tore the last record: it is computed again
    assert calibrate_cached(sample, 4, x, y, space="toy", cache=cache) == first and len(drawn) == 8
    calibrate_cached(sample, 4, x, y, space="toy", cache=cache, seed=1)
    assert len(drawn) == 12
    cache.write_text("not json\n{}\n")  # a corrupt cache is moved aside and rebuilt, never fatal
    calibrate_cached(sample, 4, x, y, space="toy", cache=cache)
    assert len(drawn) == 16
    assert (tmp_path / "avt.json.stale").is_file()
    with pytest.raises(ValueError, match="max > min"):
        AvtRanges((1.0, 1.0), (0.0, 2.0))
