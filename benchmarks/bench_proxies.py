"""Zero-cost proxy benchmarks: seconds per architecture of every proxy, and SasWOT's cost vs a training step.

Sizes follow the issue: TransNAS-Bench-101 nets at 256x256 batch 32, FasterSeg nets at 512x1024 batch 8
(``SEGNAS_BENCH_QUICK=1`` shrinks them to check the code in seconds). Weights are random (timings do not
depend on training), inputs N(0, 1), labels uniform over the classes.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from registry import Table, benchmark
from torch import nn

from segnas.proxies import AvtRanges, ProxyResult, available, evaluate
from segnas.proxies.proxy_file import load_proxy_file
from segnas.proxies.stats import default_loss, scoring_net
from segnas.search.scoring import proxy_file_objective
from segnas.spaces import load_genotype, transnas
from segnas.spaces.fasterseg import FasterSegNet
from segnas.spaces.transnas import TransNASMacroGenotype, TransNASMicroGenotype

GPU = torch.cuda.is_available()
DEVICE = torch.device("cuda" if GPU else "cpu")
QUICK = os.environ.get("SEGNAS_BENCH_QUICK") == "1"
TNB_SHAPE = (2, 64, 64) if QUICK else (32, *transnas.INPUT_SIZE)
FASTERSEG_SHAPE = (2, 128, 256) if QUICK else (8, 512, 1024)
FASTERSEG_CLASSES = 19
# a small and a big net of each TNB space (GMACs per 256x256 image: 2.0, 9.9 micro; 2.3, 6.8 macro)
TNB_ARCHS = {"micro": ("64-41414-2_02_020", "64-41414-3_33_333"), "macro": ("64-4433-basic", "64-1234-basic")}
# saswot's AVT ranges only rescale the score: any valid ranges give the same timing
OPTIONS = {"saswot": {"ranges": AvtRanges((0.0, 1.0), (0.0, 1.0))}}
OVERHEAD_PROXIES = ("saswot", "saswot_minus", "nwot")
# overhead benchmark: the biggest micro net (most ReLUs for NWOT) and the small macro one (fixed costs weigh most)
OVERHEAD_TNB = ("64-41414-3_33_333", "64-4433-basic")
OVERHEAD_REPEATS = 3
GOAL = 1.3


@dataclass(frozen=True)
class Setting:
    """One architecture to score and the batch shape ``(N, H, W)`` it is scored at."""

    group: str
    arch: str
    build: Callable[[], nn.Module]
    shape: tuple[int, int, int]
    num_classes: int

    @property
    def input(self) -> str:
        n, h, w = self.shape
        return f"{n}x3x{h}x{w}"


def _tnb_settings() -> list[Setting]:
    return [
        Setting(f"TNB {space}", arch, functools.partial(transnas.build, arch), TNB_SHAPE, transnas.NUM_CLASSES)
        for space, archs in TNB_ARCHS.items()
        for arch in archs
    ]


def _fasterseg_setting() -> Setting:
    """The shipped FasterSeg net (a sampled one would double the cost of this already long benchmark)."""
    build = functools.partial(FasterSegNet, load_genotype("pkg://fasterseg"), FASTERSEG_CLASSES)
    return Setting("FasterSeg", "pkg://fasterseg", build, FASTERSEG_SHAPE, FASTERSEG_CLASSES)


def _batch(setting: Setting) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs N(0, 1) and uniform labels, on DEVICE."""
    gen = torch.Generator().manual_seed(0)
    n, h, w = setting.shape
    x = torch.randn(n, 3, h, w, generator=gen)
    y = torch.randint(0, setting.num_classes, (n, h, w), generator=gen)
    return x.to(DEVICE), y.to(DEVICE)


def _model(setting: Setting) -> nn.Module:
    torch.manual_seed(0)
    return setting.build().to(DEVICE)


def _now() -> float:
    """``time.perf_counter()`` after the device has finished its queued work."""
    if GPU:
        torch.cuda.synchronize()
    return time.perf_counter()


def _release() -> None:
    gc.collect()
    if GPU:
        torch.cuda.empty_cache()


def _warm_up() -> None:
    """Run every proxy once on a tiny batch (first-call costs: thread pools, fvcore tracing)."""
    build = functools.partial(transnas.build, TNB_ARCHS["micro"][0])
    setting = Setting("warm-up", "", build, (2, 64, 64), transnas.NUM_CLASSES)
    evaluate(available(), _model(setting), *_batch(setting), options=OPTIONS)


def _status(results: list[ProxyResult]) -> str:
    """'ok', or why the proxy was invalid (first reason) and on how many of the nets."""
    bad = [r.reason for r in results if not r.valid]
    if not bad:
        return "ok"
    reason = str(bad[0]).split(":")[0]
    reason = "n/a" if reason == "not applicable" else f"invalid ({reason})"
    return f"{reason} on {len(bad)}/{len(results)} nets"


def _score_one(s: Setting, names: list[str]) -> tuple[dict[str, float], float, dict[str, ProxyResult]]:
    """Seconds of each proxy alone and of all of them in one call on the net ``s``; each proxy's result."""
    model, (x, y) = _model(s), _batch(s)
    alone, results = {}, {}
    for name in names:
        start = _now()
        results |= evaluate([name], model, x, y, options=OPTIONS)
        alone[name] = _now() - start
    start = _now()
    evaluate(names, model, x, y, options=OPTIONS)
    return alone, _now() - start, results


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}"


@benchmark
def proxy_seconds_per_arch() -> Table:
    """Seconds per architecture of each zero-cost proxy alone in one `compute` call (deep copy, passes,
    score), measured once per net: TNB-101 at 256x256 batch 32 (median over a small and a big net of the
    micro space, of the macro space, and over all 4), the shipped FasterSeg net at 512x1024 batch 8.
    Last rows: the sum of the separate calls vs all proxies in ONE call (one shared statistics pass).
    `status`: n/a = the proxy is undefined for the task (NaN in `compute`)."""
    logging.getLogger("segnas.proxies.registry").setLevel(logging.ERROR)  # epe_nas n/a is expected
    _warm_up()
    names = available()
    settings = [*_tnb_settings(), _fasterseg_setting()]
    alone, together, results = {}, {}, {n: [] for n in names}
    for s in settings:
        alone[s.arch], together[s.arch], scored = _score_one(s, names)
        for name in names:
            results[name].append(scored[name])
        _release()
    columns = {f"{g} s": [s.arch for s in settings if s.group == g] for g in ("TNB micro", "TNB macro")}
    columns["TNB all 4 s"] = columns["TNB micro s"] + columns["TNB macro s"]
    columns["FasterSeg s"] = [settings[-1].arch]
    rows: Table = [
        {"proxy": n, **{c: _median([alone[a][n] for a in archs]) for c, archs in columns.items()},
         "status": _status(results[n])}
        for n in names
    ]
    summed = {a: sum(times.values()) for a, times in alone.items()}
    for label, seconds in (("sum of separate calls", summed), ("all in one call", together)):
        rows.append({"proxy": label, **{c: _median([seconds[a] for a in archs]) for c, archs in columns.items()}})
    rows.append({"proxy": "input", **{c: settings[0 if c.startswith("TNB") else -1].input for c in columns}})
    return rows


def _train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """One plain forward + backward (train mode, CE with ignore_index 255), no optimiser step."""
    model.zero_grad(set_to_none=True)
    default_loss()(model(x), y).backward()


def _overhead_times(s: Setting) -> dict[str, list[float]]:
    """Seconds of a plain forward+backward and of each overhead proxy, repeated (interleaved)."""
    model, (x, y) = _model(s), _batch(s)
    model.train()
    steps = {"fwd+bwd": lambda: _train_step(model, x, y)}
    steps |= {n: lambda n=n: evaluate([n], model, x, y, options=OPTIONS) for n in OVERHEAD_PROXIES}
    for key in ("fwd+bwd", "saswot"):  # warm-up (saswot runs the statistics pass of the other two)
        steps[key]()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(OVERHEAD_REPEATS):  # interleaved, so load changes hit every step alike
        for key, step in steps.items():
            start = _now()
            step()
            times[key].append(_now() - start)
    return times


def _overhead_row(s: Setting) -> dict[str, object]:
    times = {k: statistics.median(v) for k, v in _overhead_times(s).items()}
    _release()
    base = times["fwd+bwd"]
    row: dict[str, object] = {"net": f"{s.group} {s.arch}", "input": s.input, "fwd+bwd s": f"{base:.2f}"}
    for name in OVERHEAD_PROXIES:
        row |= {f"{name} s": f"{times[name]:.2f}", f"{name} ratio": f"{times[name] / base:.2f}"}
    row[f"saswot <= {GOAL}x"] = "yes" if times["saswot"] <= GOAL * base else "no"
    return row


@benchmark
def proxy_saswot_overhead() -> Table:
    """Wall time of `compute(['saswot'])` (and of saswot_minus, nwot alone) relative to ONE plain forward +
    backward of the same model on the same batch (train mode, CE ignore_index 255, `loss.backward()`):
    median of 3 interleaved repeats after a warm-up; TNB-101 at 256x256 batch 32 (the biggest micro net, a
    small macro net), the shipped FasterSeg net at 512x1024 batch 8. Goal (issue 5): saswot at most 1.3x."""
    logging.getLogger("segnas.proxies.registry").setLevel(logging.ERROR)
    settings = [s for s in _tnb_settings() if s.arch in OVERHEAD_TNB] + [_fasterseg_setting()]
    return [_overhead_row(s) for s in settings]


BEST_PROXY = Path(__file__).resolve().parents[1] / "experiments" / "saswot_proxy_evolution" / "best_proxy.yaml"
FILE_ARCHS_PER_SPACE = 2 if QUICK else 6
FILE_REPEATS = 1 if QUICK else 2


def _file_paths(genotype: Any) -> dict[str, Callable[[], float]]:
    """best_proxy.yaml's score of ``genotype``'s network by the former path (build, then
    ``ProxyFile.score``: a copy for the pass, flops traced) and by :class:`ProxyFileScore`; the build alone;
    and the floor: the build and the passes the six terms' definitions need (one train-mode forward, the
    loss's backward to the scored weights, the output sum's backward to the input), nothing measured."""
    objective = proxy_file_objective(load_proxy_file(BEST_PROXY), {})

    def old() -> float:
        torch.manual_seed(objective.file.protocol.seed)
        return objective.file.score(objective.build(genotype), objective.inputs, objective.targets)

    def build() -> float:
        torch.manual_seed(objective.file.protocol.seed)
        objective.build(genotype)
        return 0.0

    def floor() -> float:
        torch.manual_seed(objective.file.protocol.seed)
        net = scoring_net(objective.build(genotype), disposable=True)
        x = objective.inputs.clone().requires_grad_(True)
        out = net(x)
        default_loss()(out, objective.targets).backward(retain_graph=True)
        torch.autograd.grad(out.sum(), x)
        return 0.0

    return {"old": old, "new": lambda: objective(genotype), "build": build, "floor": floor}


def _file_row(arch: str, genotype: Any) -> dict[str, object]:
    paths = _file_paths(genotype)
    times: dict[str, list[float]] = {k: [] for k in paths}
    values: dict[str, float] = {}
    for repeat in range(FILE_REPEATS):  # interleaved, the order alternating, so load changes hit both alike
        for key in (("old", "new", "build", "floor") if repeat % 2 == 0 else ("new", "old", "floor", "build")):
            start = _now()
            values[key] = paths[key]()
            times[key].append(_now() - start)
        _release()
    old, new = (statistics.median(times[k]) for k in ("old", "new"))
    return {"arch": arch, "old s": f"{old:.3f}", "new s": f"{new:.3f}", "speed-up": f"{old / new:.2f}",
            "build s": f"{statistics.median(times['build']):.3f}",
            "floor s": f"{statistics.median(times['floor']):.3f}",
            "old / floor": f"{old / statistics.median(times['floor']):.2f}",
            "abs diff": f"{abs(values['old'] - values['new']):.1e}"}


@benchmark
def proxy_file_scoring() -> Table:
    """Seconds per network of best_proxy.yaml (six terms: flops, nwot, jacov, params, snip, grad_norm; batch
    8x3x64x64, seed 0) as `score=proxy score.proxy=...best_proxy.yaml` scores a TNB-101 network, old path vs
    new, interleaved on the same networks (order alternating; median of 2 repeats; random dev-space archs,
    `random.Random(0)`). Old: build, then `ProxyFile.score` (deep copy for the shared pass, gradients of every
    parameter, flops traced by fvcore). New: `ProxyFileScore` (pass on the network built for it, gradients of
    the scored weights only, flops from the analytic cost model). `build s`: the seeded network construction
    alone (RNG-bound, part of both). `floor s`: the build and the three passes the terms' definitions need
    (train-mode forward, the loss's backward to the scored weights, the output sum's backward to the input),
    no statistic computed: no path with the same values can be faster, so `old / floor` bounds the speed-up.
    `abs diff`: |old - new| of the score (NaN: jacov undefined on that net). Load: the 1-minute load average
    before and after (2 shared cores)."""
    logging.getLogger("segnas.proxies").setLevel(logging.ERROR)  # jacov undefined on a few micro nets
    rng = random.Random(0)
    genotypes = {transnas.sample(rng, s): s for s in ("micro", "macro") for _ in range(FILE_ARCHS_PER_SPACE)}
    classes = {"micro": TransNASMicroGenotype, "macro": TransNASMacroGenotype}
    _file_paths(classes["micro"]("64-41414-2_02_020"))["new"]()  # warm-up
    load_before = os.getloadavg()[0]
    rows = [_file_row(arch, classes[space](arch)) for arch, space in genotypes.items()]
    total = {k: sum(float(r[k]) for r in rows) / len(rows) for k in ("old s", "new s", "build s", "floor s")}
    rows.append({"arch": f"mean of {len(rows)}", **{k: f"{v:.3f}" for k, v in total.items()},
                 "speed-up": f"{total['old s'] / total['new s']:.2f}",
                 "old / floor": f"{total['old s'] / total['floor s']:.2f}",
                 "abs diff": f"load {load_before:.1f} -> {os.getloadavg()[0]:.1f}"})
    return rows
