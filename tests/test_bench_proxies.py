"""The proxy benchmarks (benchmarks/bench_proxies.py) on a tiny net: every proxy timed, rows well formed."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from torch import nn

from segnas.proxies import ProxyResult, available

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
bench_proxies = pytest.importorskip("bench_proxies")


def tiny_setting() -> bench_proxies.Setting:
    def build() -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 3, 1))

    return bench_proxies.Setting("tiny", "conv-relu-conv", build, (4, 8, 8), 3)


def test_status_labels() -> None:
    ok, na = ProxyResult(1.0), ProxyResult(math.nan, "not applicable: dense targets")
    broken = ProxyResult(math.nan, "RuntimeError: boom")
    assert bench_proxies._status([ok, ok]) == "ok"
    assert bench_proxies._status([na, na]) == "n/a on 2/2 nets"
    assert bench_proxies._status([ok, broken]) == "invalid (RuntimeError) on 1/2 nets"


def test_every_proxy_is_timed_and_epe_nas_is_not_applicable() -> None:
    alone, together, results = bench_proxies._score_one(tiny_setting(), available())
    assert list(alone) == available() and all(t >= 0 for t in alone.values()) and together > 0
    assert results["epe_nas"].reason.startswith("not applicable")
    assert all(r.valid for name, r in results.items() if name != "epe_nas")


def test_overhead_row() -> None:
    row = bench_proxies._overhead_row(tiny_setting())
    assert row["input"] == "4x3x8x8"
    for name in bench_proxies.OVERHEAD_PROXIES:
        assert float(row[f"{name} ratio"]) > 0
    assert row["saswot <= 1.3x"] in {"yes", "no"}
