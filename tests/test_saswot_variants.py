"""saswot_minus ``loss_reduction``: the gradient of the mean, per-image-summed or summed pixel cross-entropy.

The expected values come from the closed-form gradient of a 1x1 convolution followed by a softmax
cross-entropy (multinomial logistic regression per pixel), written in numpy, not from autograd.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from torch import nn

from segnas import proxies
from segnas.proxies.saswot import AvtRanges, calibrate, calibrate_cached, norm_rank

IGNORE = 255


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """2 images of 4 channels, 3x3 pixels, labels in 0..4 with two ignored pixels."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 3, 3, generator=gen)
    y = torch.randint(0, 5, (2, 3, 3), generator=gen)
    y[0, 0, 0] = IGNORE
    y[1, 2, 1] = IGNORE
    return x, y


def summed_ce_grad(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d/dW of sum over labelled pixels of CE(softmax(W x_p), y_p) for a bias-free 1x1 conv W [K, C, 1, 1]."""
    feats = x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])  # [P, C]
    labels = y.reshape(-1)
    keep = labels != IGNORE
    feats, labels = feats[keep], labels[keep]
    logits = feats @ w[:, :, 0, 0].T  # [P, K]
    prob = np.exp(logits - logits.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    prob[np.arange(len(labels)), labels] -= 1.0  # dCE/dlogits = p - onehot
    return (prob.T @ feats)[:, :, None, None]


def expected_count(w: np.ndarray, grad: np.ndarray) -> int:
    soft = np.exp(w) / np.exp(w).sum(0, keepdims=True)  # softmax over output channels (dim 0)
    return int((soft < np.maximum(grad, 0.0)).sum())


def conv(seed: int = 0) -> nn.Conv2d:
    torch.manual_seed(seed)
    layer = nn.Conv2d(4, 5, 1, bias=False)
    with torch.no_grad():
        layer.weight.mul_(4)  # spread the softmax so that the three gradient scales give different counts
    return layer


def test_loss_reduction_rescales_the_gradient_exactly() -> None:
    layer = conv()
    x, y = batch()
    w = layer.weight.detach().double().numpy()
    g_sum = summed_ce_grad(w, x.double().numpy(), y.numpy())
    labelled = int((y != IGNORE).sum())  # 16 of 18 pixels
    expect = {
        "mean": expected_count(w, g_sum / labelled),
        "image": expected_count(w, g_sum / x.shape[0]),
        "sum": expected_count(w, g_sum),
    }
    got = {
        how: proxies.compute(
            ["saswot_minus"], layer, x, y, options={"saswot_minus": {"loss_reduction": how}}
        )["saswot_minus"]
        for how in expect
    }
    assert got == expect
    assert expect["mean"] < expect["image"] < expect["sum"] < w.size  # the scale matters here
    default = proxies.compute(["saswot_minus"], layer, x, y)["saswot_minus"]
    assert default == expect["image"]  # the default: the per-image CE (the pixel mean leaves ~0 on small nets)


def test_loss_reduction_combines_with_the_element_and_layer_reductions() -> None:
    layer = conv()
    x, y = batch()
    w = layer.weight.detach().double().numpy()
    g_sum = summed_ce_grad(w, x.double().numpy(), y.numpy())
    opts = {"saswot_minus": {"loss_reduction": "sum", "elem_reduce": "mean", "layer_reduce": "mean"}}
    got = proxies.compute(["saswot_minus"], layer, x, y, options=opts)["saswot_minus"]
    assert got == pytest.approx(expected_count(w, g_sum) / w.size)


def test_loss_reduction_needs_the_mean_cross_entropy() -> None:
    layer = conv()
    x, y = batch()
    bad = proxies.evaluate(
        ["saswot_minus"], layer, x, y, options={"saswot_minus": {"loss_reduction": "pixel"}}
    )
    assert "loss_reduction must be one of" in bad["saswot_minus"].reason
    summed = nn.CrossEntropyLoss(ignore_index=IGNORE, reduction="sum")
    opts = {"saswot_minus": {"loss_reduction": "sum"}}
    custom = proxies.evaluate(["saswot_minus"], layer, x, y, summed, options=opts)
    assert not custom["saswot_minus"].valid
    assert "mean cross-entropy" in custom["saswot_minus"].reason
    default = proxies.evaluate(["saswot_minus"], layer, x, y, summed)["saswot_minus"]  # image: a rescaling too
    assert not default.valid and "mean cross-entropy" in default.reason
    # mean needs nothing of the loss: a summed loss is simply used as it is
    as_is = {"saswot_minus": {"loss_reduction": "mean"}}
    plain = proxies.evaluate(["saswot_minus"], layer, x, y, summed, options=as_is)["saswot_minus"]
    w = layer.weight.detach().double().numpy()
    assert plain.value == expected_count(w, summed_ce_grad(w, x.double().numpy(), y.numpy()))


def test_saswot_and_calibration_pass_loss_reduction_through(tmp_path) -> None:
    x, y = batch()
    models = [nn.Sequential(nn.ReLU(), conv()), nn.Sequential(conv(1), nn.ReLU())]  # nwot needs a ReLU
    ranges = calibrate(models, x, y, loss_reduction="sum")
    minus = [
        proxies.compute(["saswot_minus"], m, x, y, options={"saswot_minus": {"loss_reduction": "sum"}})[
            "saswot_minus"
        ]
        for m in models
    ]
    assert ranges.saswot_minus == (min(minus), max(minus))
    nwot = proxies.compute(["nwot"], models[1], x, y)["nwot"]
    fixed = AvtRanges((0.0, 20.0), (nwot - 1.0, nwot + 1.0))
    opts = {"saswot": {"ranges": fixed, "loss_reduction": "sum"}}
    got = proxies.compute(["saswot"], models[1], x, y, options=opts)["saswot"]
    assert got == pytest.approx(minus[1] / 20.0 + 0.5)

    cache = tmp_path / "avt.json"
    for how in ("mean", "sum"):
        cycle = itertools.cycle(models)
        got = calibrate_cached(
            lambda _rng, c=cycle: next(c), 2, x, y, space="t", cache=cache, loss_reduction=how
        )
        assert got == calibrate(models, x, y, loss_reduction=how)
    keys = sorted(json.loads(line)["key"] for line in cache.read_text().splitlines())
    assert len(keys) == 2
    assert sum(k.endswith("|loss=sum") for k in keys) == 1  # the default keeps the older key format


def test_norm_rank_is_the_interpolated_empirical_cdf() -> None:
    samples = [3.0, 1.0, 2.0, 2.0]  # sorted 1, 2, 2, 3 at levels 1/8, 3/8, 5/8, 7/8; the tied 2s share 1/2
    assert norm_rank(1.0, samples) == pytest.approx(1 / 8)
    assert norm_rank(2.0, samples) == pytest.approx(1 / 2)
    assert norm_rank(2.5, samples) == pytest.approx((1 / 2 + 7 / 8) / 2)
    assert norm_rank(-5.0, samples) == pytest.approx(1 / 8) and norm_rank(9.0, samples) == pytest.approx(7 / 8)
    with pytest.raises(ValueError, match="calibration samples"):
        norm_rank(1.0, [])


def test_saswot_rank_normalisation_uses_the_calibration_samples(tmp_path) -> None:
    x, y = batch()
    models = [nn.Sequential(nn.ReLU(), conv(s)) for s in range(3)] + [nn.Sequential(conv(3), nn.ReLU())]
    ranges = calibrate(models, x, y, loss_reduction="sum")
    scores = [
        proxies.compute(["saswot_minus", "nwot"], m, x, y, options={"saswot_minus": {"loss_reduction": "sum"}})
        for m in models
    ]
    assert ranges.saswot_minus_samples == tuple(s["saswot_minus"] for s in scores)
    assert ranges.nwot_samples == tuple(s["nwot"] for s in scores)
    assert AvtRanges.from_dict(json.loads(json.dumps(ranges.to_dict()))) == ranges
    opts = {"ranges": ranges, "loss_reduction": "sum"}
    for model, s in zip(models, scores, strict=True):
        rank = proxies.compute(["saswot"], model, x, y, options={"saswot": {**opts, "normalize": "rank"}})["saswot"]
        assert rank == pytest.approx(
            norm_rank(s["saswot_minus"], ranges.saswot_minus_samples) + norm_rank(s["nwot"], ranges.nwot_samples)
        )
    bad = proxies.evaluate(["saswot"], models[0], x, y, options={"saswot": {**opts, "normalize": "minmax"}})
    assert "normalize must be one of" in bad["saswot"].reason
    no_samples = AvtRanges(ranges.saswot_minus, ranges.nwot)  # e.g. an older cache entry
    old = proxies.evaluate(["saswot"], models[0], x, y,
                           options={"saswot": {"ranges": no_samples, "normalize": "rank"}})
    assert "recalibrate" in old["saswot"].reason

    cache = tmp_path / "avt.json"
    cycle = itertools.cycle(models)
    first = calibrate_cached(lambda _rng: next(cycle), 4, x, y, space="t", cache=cache, loss_reduction="sum")
    (record,) = [json.loads(line) for line in cache.read_text().splitlines()]
    record["ranges"] = {k: record["ranges"][k] for k in ("saswot_minus", "nwot")}  # written before samples were kept
    record.pop("_crc32")
    cache.write_text(json.dumps(record) + "\n")
    again = calibrate_cached(lambda _rng: next(cycle), 4, x, y, space="t", cache=cache, loss_reduction="sum")
    assert again == first and "nwot_samples" in json.loads(cache.read_text().splitlines()[-1])["ranges"]
