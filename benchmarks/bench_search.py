"""HyCTAS search benchmarks: cost of one candidate evaluation, lookup-table latency agreement, search wall time."""

from __future__ import annotations

import functools
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from registry import Table, benchmark

from segnas.data.synthetic import SyntheticDataModule
from segnas.models import build_network
from segnas.models.supernet import HyCTASSupernet
from segnas.search.algorithms import run_nsga2
from segnas.search.archive import Archive
from segnas.search.evaluator import Evaluator
from segnas.search.latency_table import LatencyTable, agreement
from segnas.search.objectives import (
    MeasuredLatency,
    SupernetMIoU,
    bn_recalibrate,
    evaluate_miou,
    load_batches,
)
from segnas.search.problem import Goal, SearchProblem
from segnas.spaces import get_space

GPU = torch.cuda.is_available()
DEVICE = torch.device("cuda" if GPU else "cpu")
SIZE = (256, 512) if GPU else (128, 128)


def _setting() -> tuple:
    """Space, supernet (random weights: timings do not depend on training) and synthetic batches."""
    space = get_space("hyctas", layers=12 if GPU else 6, filter_multiplier=8 if GPU else 4)
    dm = SyntheticDataModule(num_train=64, num_val=32, height=SIZE[0], width=SIZE[1], crop_size=SIZE)
    dm.setup("fit")
    supernet = HyCTASSupernet.from_space(space, num_classes=dm.num_classes).to(DEVICE)
    recal = load_batches(dm.train_set, range(64), batch_size=16)
    val = load_batches(dm.val_set, range(32), batch_size=16)
    return space, dm, supernet, recal, val


def _sync() -> None:
    if GPU:
        torch.cuda.synchronize()


@benchmark
def search_candidate_evaluation() -> Table:
    """Seconds per candidate: weight extraction, BN recalibration (64 images) and validation (32 images)."""
    space, dm, supernet, recal, val = _setting()
    images = [x.to(DEVICE) for x, _ in recal]
    val = [(x.to(DEVICE), y.to(DEVICE)) for x, y in val]
    rng = np.random.default_rng(0)
    rows: Table = []
    for n in (1, 2, 3):
        times = {"extract": [], "recalibrate": [], "validate": []}
        for _ in range(4):
            g = next(g for g in iter(lambda: space.sample(rng), None) if g.num_branches == n)
            t0 = time.perf_counter()
            net = supernet.extract(g)
            _sync()
            t1 = time.perf_counter()
            bn_recalibrate(net, images)
            _sync()
            t2 = time.perf_counter()
            evaluate_miou(net, val, dm.num_classes)
            _sync()
            t3 = time.perf_counter()
            for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                times[key].append(dt)
        med = {k: float(np.median(v)) for k, v in times.items()}
        rows.append({"branches": n, "input": "x".join(map(str, SIZE)), **{f"{k} s": f"{v:.3f}" for k, v in med.items()},
                     "total s/candidate": f"{sum(med.values()):.3f}"})
    return rows


@benchmark
def search_latency_table_agreement() -> Table:
    """Lookup-table latency (sum of per-op entries) vs the measured latency of 20 whole networks."""
    space = get_space("hyctas", layers=12 if GPU else 6, filter_multiplier=8 if GPU else 4)
    shape = (1, 3, 512, 1024) if GPU else (1, 3, 256, 256)
    rng = np.random.default_rng(1)
    genotypes = [space.sample(rng) for _ in range(20)]
    with tempfile.TemporaryDirectory() as folder:
        table = LatencyTable(folder, shape, space.filter_multiplier, 19, device=DEVICE, duration_s=0.1)
        start = time.perf_counter()
        for g in genotypes:
            table(g)
        build_s = time.perf_counter() - start
        build = functools.partial(build_network, num_classes=19, **space.build_options())
        measured = MeasuredLatency(build, shape, DEVICE, duration_s=0.5)
        report = agreement(table, measured, genotypes)
    ratio = np.median(np.array(report["measured_ms"]) / np.array(report["lut_ms"]))
    return [{"input": "x".join(map(str, shape)), "networks": report["n"], "table entries": len(table.entries),
             "table build s": f"{build_s:.1f}", "Pearson": f"{report['pearson']:.3f}",
             "Kendall": f"{report['kendall']:.3f}", "median measured/table": f"{ratio:.2f}"}]


@benchmark
def search_wall_time() -> Table:
    """NSGA-II wall time with the real objectives (supernet mIoU + lookup-table latency), 8 x 4 generations."""
    space, dm, supernet, recal, val = _setting()
    with tempfile.TemporaryDirectory() as folder:
        objectives = {
            "latency_ms": LatencyTable(folder, (1, 3, *SIZE), space.filter_multiplier, dm.num_classes, device=DEVICE),
            "miou": SupernetMIoU(supernet, recal, val, dm.num_classes),
        }
        evaluator = Evaluator(objectives, Archive(Path(folder) / "archive.jsonl", key=space.key))
        problem = SearchProblem(space, evaluator, [Goal("miou", maximize=True), Goal("latency_ms")])
        start = time.perf_counter()
        evaluated = run_nsga2(problem, population=8, generations=4, seed=0, progress=False)
        wall = time.perf_counter() - start
    return [{"population x generations": "8 x 4", "evaluations": len(evaluated), "input": "x".join(map(str, SIZE)),
             "wall s": f"{wall:.1f}", "s/evaluation": f"{wall / len(evaluated):.3f}"}]
