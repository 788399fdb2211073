"""Rank and linear correlations between two score lists."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np
from scipy import stats


def rank_correlations(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    """Kendall tau-b, Spearman rho and Pearson r between ``x`` and ``y`` (NaN pairs dropped).

    Returns NaN for a coefficient that is undefined (fewer than two pairs or a constant input).
    """
    a = np.asarray(x, dtype=float)
    b = np.asarray(y, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"x and y have different lengths: {a.shape} vs {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return {"kendall": float("nan"), "spearman": float("nan"), "pearson": float("nan")}
    return {
        "kendall": float(stats.kendalltau(a, b, variant="b").statistic),
        "spearman": float(stats.spearmanr(a, b).statistic),
        "pearson": float(stats.pearsonr(a, b).statistic),
    }


def correlation_report(
    x: Sequence[float], y: Sequence[float], bootstrap: int = 2000, confidence: float = 0.95, seed: int = 0
) -> dict[str, float | int | list[float]]:
    """:func:`rank_correlations` with each coefficient's two-sided p-value (``<name>_p``, null hypothesis: no
    association) and a percentile bootstrap interval over pairs resampled with replacement (``<name>_ci``,
    ``confidence`` level, ``bootstrap`` resamples, seeded); ``n`` is the number of finite pairs."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    report: dict[str, float | int | list[float]] = {"n": len(a), **rank_correlations(a, b)}
    tests = {"kendall": lambda u, v: stats.kendalltau(u, v, variant="b"), "spearman": stats.spearmanr,
             "pearson": stats.pearsonr}
    defined = len(a) >= 3 and np.ptp(a) > 0 and np.ptp(b) > 0
    rng = np.random.default_rng(seed)
    resamples = np.array([rng.integers(0, len(a), len(a)) for _ in range(bootstrap if defined else 0)], dtype=int)
    resampled = _resampled_correlations(a, b, resamples.reshape(-1, len(a)))
    tail = (1 - confidence) / 2
    for name, test in tests.items():
        report[f"{name}_p"] = float(test(a, b).pvalue) if defined else float("nan")
        values = resampled[name][np.isfinite(resampled[name])]
        report[f"{name}_ci"] = ([float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))]
                                if len(values) else [float("nan"), float("nan")])
    return report


def paired_kendall_difference(score: Sequence[float], baseline: Sequence[float], truth: Sequence[float],
                              bootstrap: int = 2000, confidence: float = 0.95, seed: int = 0) -> list[float]:
    """Percentile bootstrap interval of Kendall(``score``, ``truth``) minus Kendall(``baseline``, ``truth``),
    the networks resampled together (paired: both scores rank the same networks); resamples whose truth is
    constant are skipped."""
    a, b, t = (np.asarray(v, dtype=float) for v in (score, baseline, truth))
    rng = np.random.default_rng(seed)
    draws = [idx for idx in (rng.integers(0, len(t), len(t)) for _ in range(bootstrap)) if np.ptp(t[idx]) > 0]
    diffs = np.array([stats.kendalltau(a[i], t[i], variant="b").statistic
                      - stats.kendalltau(b[i], t[i], variant="b").statistic for i in draws])
    diffs = diffs[np.isfinite(diffs)]
    tail = (1 - confidence) / 2
    return [float(np.quantile(diffs, tail)), float(np.quantile(diffs, 1 - tail))] if len(diffs) else [math.nan] * 2


def _resampled_correlations(a: np.ndarray, b: np.ndarray, resamples: np.ndarray,
                            chunk_elements: int = 2**22) -> dict[str, np.ndarray]:
    """:func:`rank_correlations` of ``a[i], b[i]`` for every row ``i`` of ``resamples`` (NaN where one side is
    constant), vectorised over the rows in chunks of at most ``chunk_elements`` pairs."""
    first, second = np.triu_indices(a.shape[0], 1)
    rows = max(1, chunk_elements // max(1, len(first)))
    out: dict[str, list[np.ndarray]] = {"kendall": [], "spearman": [], "pearson": []}
    for start in range(0, len(resamples), rows):
        x, y = a[resamples[start:start + rows]], b[resamples[start:start + rows]]
        constant = (np.ptp(x, axis=1) == 0) | (np.ptp(y, axis=1) == 0)
        sx, sy = np.sign(x[:, first] - x[:, second]), np.sign(y[:, first] - y[:, second])
        with np.errstate(invalid="ignore", divide="ignore"):  # constant rows: NaN, as rank_correlations
            kendall = (sx * sy).sum(axis=1) / np.sqrt(np.count_nonzero(sx, axis=1) * np.count_nonzero(sy, axis=1))
            values = {"kendall": kendall, "spearman": _pearson_rows(stats.rankdata(x, axis=1),
                                                                     stats.rankdata(y, axis=1)),
                      "pearson": _pearson_rows(x, y)}
        for name, v in values.items():
            out[name].append(np.where(constant, np.nan, v))
    return {name: np.concatenate(v) if v else np.empty(0) for name, v in out.items()}


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row of ``x`` with the same row of ``y``."""
    xc, yc = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
    return np.clip((xc * yc).sum(axis=1) / np.sqrt((xc**2).sum(axis=1) * (yc**2).sum(axis=1)), -1.0, 1.0)


def correlation_table(reports: dict[str, dict[str, Any]]) -> str:
    """Markdown: one row per score, its correlations with the ground truth, p-values and intervals."""
    lines = ["| score | n | Kendall tau (p) [95 % CI] | Spearman rho (p) | Pearson r (p) [95 % CI] |",
             "|---|---|---|---|---|"]
    for name, r in reports.items():
        lines.append(
            f"| {name} | {r['n']} | {r['kendall']:+.3f} ({r['kendall_p']:.3f}) "
            f"[{r['kendall_ci'][0]:+.2f}, {r['kendall_ci'][1]:+.2f}] | {r['spearman']:+.3f} ({r['spearman_p']:.3f}) | "
            f"{r['pearson']:+.3f} ({r['pearson_p']:.3f}) [{r['pearson_ci'][0]:+.2f}, {r['pearson_ci'][1]:+.2f}] |")
    return "\n".join(lines) + "\n"


def ranking_report(scores: Mapping[str, Sequence[float]], truths: Mapping[str, Sequence[float]],
                   groups: Mapping[str, Sequence[int]] | None = None, seed: int = 0) -> dict[str, Any]:
    """How well each score ranks the ground truth, next to how well the ground truth ranks itself.

    ``truths`` maps a replicate (a training seed) to its values per network; the ground truth is their mean.
    Returns ``scores`` (name -> :func:`correlation_report` against the mean), ``seed_agreement`` (``"a-b"`` ->
    the report of replicate ``a`` against ``b``: the ceiling a single-replicate ground truth puts on any
    score's correlation) and, per group of network indices in ``groups`` (e.g. a branch count), both again
    within the group (``strata``)."""
    names = list(truths)
    mean = np.mean([np.asarray(truths[n], dtype=float) for n in names], axis=0)

    def within(idx: np.ndarray) -> dict[str, Any]:
        return {
            "scores": {k: correlation_report(np.asarray(v, dtype=float)[idx], mean[idx], seed=seed)
                       for k, v in scores.items()},
            "seed_agreement": {f"{a}-{b}": correlation_report(np.asarray(truths[a], dtype=float)[idx],
                                                              np.asarray(truths[b], dtype=float)[idx], seed=seed)
                               for a, b in combinations(names, 2)},
        }

    report = within(np.arange(len(mean)))
    report["strata"] = {g: within(np.asarray(idx, dtype=int)) for g, idx in (groups or {}).items()}
    return report
