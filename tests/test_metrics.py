import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassJaccardIndex

from segnas.metrics import (
    confusion_matrix,
    count_macs_params,
    measure_latency,
    miou,
    pixel_accuracy,
    rank_correlations,
)


def test_confusion_matrix_and_miou_by_hand():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 0]])
    cm = confusion_matrix(pred, target, num_classes=3)
    # rows = target, cols = pred; the two ignored pixels are dropped
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    mean, per_class = miou(cm)
    # IoU0 = 1 / (2 + 2 - 1) = 1/3, IoU1 = 2 / (2 + 3 - 2) = 2/3, IoU2 = 1 / (2 + 1 - 1) = 1/2
    assert per_class == pytest.approx([100 / 3, 200 / 3, 50.0])
    assert mean == pytest.approx((100 / 3 + 200 / 3 + 50) / 3)
    assert pixel_accuracy(cm) == pytest.approx(400 / 6)


def test_miou_skips_absent_classes_and_is_dataset_level():
    # class 2 never appears: excluded from the mean, reported as NaN
    cm = confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), num_classes=3)
    mean, per_class = miou(cm)
    assert math.isnan(per_class[2])
    assert mean == pytest.approx((50 + 50) / 2)


def test_miou_matches_torchmetrics_jaccard_over_batches():
    gen = torch.Generator().manual_seed(0)
    metric = MulticlassJaccardIndex(num_classes=5, ignore_index=255, average="macro")
    total = torch.zeros(5, 5, dtype=torch.long)
    for _ in range(4):
        target = torch.randint(0, 5, (2, 16, 16), generator=gen)
        target[:, :3] = 255
        pred = torch.where(torch.rand(2, 16, 16, generator=gen) < 0.6, target.clamp(max=4), torch.randint(0, 5, (2, 16, 16), generator=gen))
        metric.update(pred, target)
        total += confusion_matrix(pred, target, 5)
    assert miou(total)[0] == pytest.approx(100 * metric.compute().item(), abs=1e-4)


def test_confusion_matrix_rejects_labels_outside_class_set():
    with pytest.raises(ValueError, match=r"target holds labels \[7\]"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 7]), num_classes=3)


def test_rank_correlations_known_values():
    assert rank_correlations([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(
        {"kendall": 1.0, "spearman": 1.0, "pearson": 1.0}
    )
    assert rank_correlations([1, 2, 3], [3, 2, 1])["kendall"] == pytest.approx(-1.0)
    # tau-b with a tie in y: concordant 2, discordant 0, tied-in-y 1 of 3 pairs
    # tau_b = (2 - 0) / sqrt(3 * 2) = 0.8165
    assert rank_correlations([1, 2, 3], [1, 2, 2])["kendall"] == pytest.approx(2 / math.sqrt(6))
    out = rank_correlations([1, 2, float("nan"), 4], [1, 2, 3, 4])
    assert out["kendall"] == pytest.approx(1.0)
    assert math.isnan(rank_correlations([1, 1, 1], [1, 2, 3])["kendall"])


def test_macs_of_conv_and_linear_match_formula():
    conv = nn.Conv2d(16, 32, 3, padding=1, bias=False)
    macs, params = count_macs_params(conv, (1, 16, 8, 8))
    assert macs == 16 * 32 * 9 * 8 * 8
    assert params == 16 * 32 * 9


class _Attention(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = x.flatten(2).transpose(1, 2).reshape(b, h * w, 2, c // 2).transpose(1, 2)  # 2 heads
        return F.scaled_dot_product_attention(q, q, q)


def test_macs_include_attention_matmuls():
    macs, _ = count_macs_params(_Attention(), (1, 8, 4, 4))
    n, heads, d = 16, 2, 4
    assert macs == heads * (n * n * d + n * n * d)


def test_latency_result_fields_and_model_state_restored():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    res = measure_latency(model, (1, 3, 16, 16), warmup=1, duration_s=0.01, min_iters=5)
    assert res.n_iters >= 5
    assert res.fps == pytest.approx(1000 / res.median_ms)
    assert res.p90_ms >= res.median_ms > 0
    assert res.device == "cpu" and res.dtype == "float32" and res.input_shape == (1, 3, 16, 16)
    assert model.training


def test_speed_protocol_times_on_its_threads_and_restores_the_process_s() -> None:
    from segnas.metrics.latency import SpeedProtocol, speed_label

    before = torch.get_num_threads()
    seen: list[int] = []

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(torch.get_num_threads())
            return x

    torch.set_num_threads(2)
    try:
        result = SpeedProtocol(warmup=2, duration_s=0.01, min_iters=3, threads=1).measure(Probe(), (1, 3, 8, 12))
        assert set(seen) == {1} and len(seen) >= 5 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert (result.threads, result.warmup, result.n_iters >= 3) == (1, 2, True)
    assert speed_label(result.as_dict()) == "cpu, float32, 1 thread, 8x12"
    with pytest.raises(ValueError, match=r"speed\.threads"):
        SpeedProtocol(threads=0)


def test_correlation_report_p_values_and_bootstrap_interval() -> None:
    from scipy import stats

    from segnas.metrics.correlation import correlation_report

    rng = np.random.default_rng(0)
    x = rng.normal(size=30)
    y = x + rng.normal(scale=0.5, size=30)
    report = correlation_report(x, y, bootstrap=300)
    assert report["n"] == 30
    assert report["kendall_p"] == pytest.approx(stats.kendalltau(x, y).pvalue)
    assert report["pearson_p"] == pytest.approx(stats.pearsonr(x, y).pvalue)
    for name in ("kendall", "spearman", "pearson"):
        low, high = report[f"{name}_ci"]
        assert low <= report[name] <= high and -1 <= low < high <= 1
    unrelated = correlation_report(x, rng.normal(size=30), bootstrap=300)
    assert unrelated["kendall_p"] > 0.01 and unrelated["kendall_ci"][0] < 0 < unrelated["kendall_ci"][1]
    assert correlation_report(x, y, bootstrap=300) == report  # seeded
    assert np.isnan(correlation_report([1.0, 2.0], [2.0, 1.0])["kendall_p"])


def test_bootstrap_intervals_are_those_of_rank_correlations_on_each_resample() -> None:
    from segnas.metrics.correlation import correlation_report

    x, y = [1.0, 2.0, 2.0, 3.0, 5.0, 4.0, 7.0], [2.0, 1.0, 3.0, 3.0, 4.0, 6.0, 6.0]  # ties; constant resamples
    report = correlation_report(x, y, bootstrap=400, seed=3)
    rng = np.random.default_rng(3)
    resamples = [rng.integers(0, len(x), len(x)) for _ in range(400)]
    for name in ("kendall", "spearman", "pearson"):
        values = np.array([rank_correlations(np.take(x, i), np.take(y, i))[name] for i in resamples])
        values = values[np.isfinite(values)]
        expected = [np.quantile(values, 0.025), np.quantile(values, 0.975)]
        assert report[f"{name}_ci"] == pytest.approx(expected, abs=1e-12)


def test_metrics_is_a_leaf_package():
    """segnas.metrics imports no other segnas package (the spaces, models and searches import it)."""
    imported = set()
    for path in (Path(__file__).parents[1] / "src" / "segnas" / "metrics").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    segnas = {m for m in imported if m == "segnas" or m.startswith("segnas.")}
    assert segnas and all(m.startswith("segnas.metrics") for m in segnas), sorted(segnas)


def test_ranking_report_against_the_mean_truth_with_the_seeds_agreement_and_strata() -> None:
    from segnas.metrics.correlation import correlation_report, ranking_report

    rng = np.random.default_rng(1)
    quality = rng.normal(size=12)
    truths = {"0": quality + rng.normal(scale=0.3, size=12), "1": quality + rng.normal(scale=0.3, size=12)}
    score = quality + rng.normal(scale=1.0, size=12)
    groups = {"a": list(range(6)), "b": list(range(6, 12))}
    report = ranking_report({"supernet": score}, truths, groups, seed=0)
    mean = (truths["0"] + truths["1"]) / 2
    assert report["scores"]["supernet"] == correlation_report(score, mean, seed=0)
    assert report["seed_agreement"] == {"0-1": correlation_report(truths["0"], truths["1"], seed=0)}
    assert report["seed_agreement"]["0-1"]["kendall"] > report["scores"]["supernet"]["kendall"]  # noisier score
    within = report["strata"]["b"]
    assert within["scores"]["supernet"] == correlation_report(score[6:], mean[6:], seed=0)
    assert within["seed_agreement"]["0-1"]["n"] == 6
    assert ranking_report({"s": score}, {"0": truths["0"]})["seed_agreement"] == {}  # one seed: no ceiling
