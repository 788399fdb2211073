"""Latency model: cache-evicting entry timing, the calibrated correction and the agreement hit rates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from segnas.metrics import measure_latency
from segnas.search.costs import agreement
from segnas.spaces import get_space
from segnas.spaces.hyctas.latency_table import LatencyTable, calibration_genotypes, fit_correction

INPUT = (1, 3, 32, 48)
FAST = {"duration_s": 0.0, "min_iters": 2, "warmup": 1, "evict_mb": 1.0}


def test_fit_correction_recovers_an_affine_law_and_falls_back_to_a_scale() -> None:
    table = [2.0, 5.0, 9.0, 14.0]
    offset, scale = fit_correction(table, [1.5 + 1.3 * t for t in table])
    assert offset == pytest.approx(1.5) and scale == pytest.approx(1.3)
    assert fit_correction([2.0, 4.0], [3.0, 5.0]) == (0.0, pytest.approx(1.375))


def test_measure_latency_runs_before_each_outside_every_timed_pass() -> None:
    calls = []
    result = measure_latency(torch.nn.Conv2d(3, 4, 3), (1, 3, 8, 8), duration_s=0.0, min_iters=4, warmup=1,
                             before_each=lambda: calls.append(1))
    assert len(calls) == result.n_iters == 4


def test_calibrated_table_corrects_the_sum_and_caches_the_fit(tmp_path: Path) -> None:
    space = get_space("hyctas", layers=4, min_layers=4, filter_multiplier=2)
    calibration = calibration_genotypes(space, 3)
    assert calibration == calibration_genotypes(space, 3)
    assert sorted(g.num_branches for g in calibration) == [1, 2, 3]
    table = LatencyTable(tmp_path, INPUT, 2, 5, calibration=calibration, calibration_s=0.0,
                         calibration_rounds=1, **FAST)
    genotype = space.sample(np.random.default_rng(0))
    value = table(genotype)
    fit = table.fit
    assert fit is not None and len(fit["measured_ms"]) == 3 and fit["scale"] > 0
    assert value == pytest.approx(fit["offset_ms"] + fit["scale"] * table.sum_ms(genotype))

    cached = LatencyTable(tmp_path, INPUT, 2, 5, calibration=calibration, calibration_s=0.0,
                          calibration_rounds=1, **FAST)
    assert cached(genotype) == value and cached.fit == fit and cached.n_measured == 0
    assert cached.identity() == table.identity() and "fit" in cached.identity()  # a cached fit: the same table
    plain = LatencyTable(tmp_path, INPUT, 2, 5, **FAST)
    assert plain.path != table.path and plain.fit is None
    assert plain(genotype) == pytest.approx(plain.sum_ms(genotype))


def test_agreement_reports_the_share_within_10_and_5_percent() -> None:
    genotypes = ["a", "b", "c", "d"]
    predicted = dict(zip(genotypes, [100.0, 104.0, 108.0, 130.0], strict=True))
    report = agreement(predicted.__getitem__, lambda g: 100.0 + genotypes.index(g), genotypes)
    assert report["within_10"] == pytest.approx(75.0) and report["within_5"] == pytest.approx(50.0)


def test_a_table_calibrated_on_a_busy_machine_is_flagged_and_never_cached(tmp_path: Path, monkeypatch) -> None:
    from types import SimpleNamespace

    from segnas.spaces.hyctas import latency_table

    space = get_space("hyctas", layers=4, min_layers=4, filter_multiplier=2)
    calibration = calibration_genotypes(space, 2)
    rounds = iter([1.0, 1.0, 3.0, 3.0])  # the second round 3x slower: another process took the cores

    def jittery(*args, **kwargs) -> SimpleNamespace:
        return SimpleNamespace(median_ms=next(rounds))

    settings = {"calibration": calibration, "calibration_s": 0.0, "calibration_rounds": 2, **FAST}
    table = LatencyTable(tmp_path, INPUT, 2, 5, **settings)
    for genotype in calibration:
        table.sum_ms(genotype)  # the entries, timed for real
    monkeypatch.setattr(latency_table, "measure_latency", jittery)
    table(calibration[0])
    info = table.describe()
    assert info["reliable"] is False and info["repeat_spread"] > 0.1 and info["load_when_built"]["cpus"] >= 1
    again = LatencyTable(tmp_path, INPUT, 2, 5, **settings)
    assert again.path == table.path and again.entries == table.entries and again.fit is None  # calibrated anew
    rounds = iter([1.0, 1.0, 2.0, 2.0])  # fitted anew (as unreliable): another fit, another identity, so an
    assert again.identity()["fit"] != table.identity()["fit"]  # archive priced with the first one is refused
    assert again.identity()["id"] == table.identity()["id"]
    rebuilt = LatencyTable(tmp_path, INPUT, 2, 5, rebuild=True, **settings)
    assert rebuilt.entries == {} and table.path.with_name(table.path.name + ".stale").is_file()


def test_a_table_keeps_its_id_until_it_is_rebuilt(tmp_path: Path) -> None:
    space = get_space("hyctas", layers=4, min_layers=4, filter_multiplier=2)
    table = LatencyTable(tmp_path, INPUT, 2, 5, **FAST)
    table.sum_ms(space.sample(np.random.default_rng(0)))
    identity = table.identity()
    assert identity["file"] == table.path.name and len(identity["id"]) == 32
    assert LatencyTable(tmp_path, INPUT, 2, 5, **FAST).identity() == identity  # reopened: the same table
    rebuilt = LatencyTable(tmp_path, INPUT, 2, 5, rebuild=True, **FAST).identity()
    assert rebuilt["file"] == identity["file"] and rebuilt["id"] != identity["id"]
