"""`make bench-gpu`: the GPU benchmark, one unattended script (< 8 min on one GPU) -> benchmarks/results/gpu_*.md.

Sections, each under its own time budget (an item that would start past it is recorded as skipped), every
item in try/except so one failure is recorded in its table and the rest still runs; the Markdown file is
rewritten after every row, so a killed run keeps what it had measured:

fps, attention_ops, memory_check, train_step, candidate_evaluation, proxies, latency_table, then
fps_compile (``torch.compile`` FPS, filled into the fps table with whatever time is left).

Without a CUDA device it prints so and exits 0, writing nothing. ``--device cpu --quick`` (hidden; used by
tests/test_bench_gpu.py) runs every section at tiny sizes on the CPU and writes into a temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import gc
import logging
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from segnas.metrics import measure_latency, rank_correlations
from segnas.models import build_network
from segnas.nn import build_op
from segnas.proxies import AvtRanges, available, evaluate
from segnas.search.objectives import MeasuredLatency, SupernetMIoU
from segnas.spaces import get_space, transnas
from segnas.spaces.hyctas import HyCTASGenotype, HyCTASSpace
from segnas.spaces.hyctas.latency_table import LatencyTable, calibration_genotypes
from segnas.spaces.hyctas.memory import activation_memory_mb
from segnas.spaces.hyctas.supernet import HyCTASSupernet

RESULTS = Path(__file__).resolve().parent / "results"
NO_GPU = "no CUDA device: the GPU benchmark needs one; nothing measured, nothing written"
CLASSES = 19
PAPER_FPS = {"HyCTAS-S": "159.2", "HyCTAS-M": "87.8", "HyCTAS-L": "12.4", "FasterSeg": "149 (TensorRT)"}
ATTENTION_OPS = ("conv", "lightweight_conv", "self_attention", "self_attention_reference", "transformer")
PROXY_OPTIONS = {"saswot": {"ranges": AvtRanges((0.0, 1.0), (0.0, 1.0))}}  # ranges only rescale the score

Row = dict[str, object]


@dataclass(frozen=True)
class Config:
    """Sizes and time budgets of one run (:data:`FULL` on the GPU, :data:`QUICK` to check the code)."""

    fps_models: tuple[str, ...] = ("HyCTAS-S", "HyCTAS-M", "HyCTAS-L", "FasterSeg")
    fps_hw: tuple[int, int] = (1024, 2048)
    fps_warmup: int = 10
    fps_seconds: float = 2.0
    op_shape: tuple[int, ...] = (1, 128, 64, 128)  # 1/8 of 512x1024, 128 channels
    op_seconds: float = 1.0
    space: dict[str, int] = field(default_factory=dict)  # get_space("hyctas", **space): conf/space/hyctas.yaml
    train_input: tuple[int, int, int] = (16, 256, 512)  # paper §4.2: supernet batch 16 at 256x512
    step_seconds: float = 2.0
    eval_images: tuple[int, int] = (1000, 500)  # paper §4.2: BN recalibration images, validation images
    eval_input: tuple[int, int, int] = (16, 256, 512)
    candidates: int = 12
    proxy_nets: tuple[tuple[str, tuple[int, int, int]], ...] = (  # a label of _fps_models() or a TNB arch
        ("FasterSeg", (8, 512, 1024)), ("HyCTAS-S", (8, 512, 1024)), ("64-41414-3_33_333", (32, 256, 256)))
    lut_input: tuple[int, int, int, int] = (1, 3, 1024, 2048)  # the search's cost input (hyctas_cityscapes)
    cost_network: tuple[int, int] = (12, 8)  # F and OS of the search's cost network (hyctas_cityscapes)
    lut_networks: int = 20
    lut_warmup: int = 10
    lut_measure_s: float = 0.5
    lut_calibration: int = 8  # calibration networks of the table (the search's default)
    lut_options: dict[str, Any] = field(default_factory=dict)  # LatencyTable timing options (default: the search's)
    proxies: tuple[str, ...] = ()  # the proxies timed together (empty: every registered one)
    memory_input: tuple[int, int, int] = (2, 256, 512)
    memory_networks: int = 10
    compile_backend: str = "inductor"
    budgets: dict[str, float] = field(default_factory=lambda: {
        "fps": 120, "attention_ops": 20, "memory_check": 20, "train_step": 40, "candidate_evaluation": 50,
        "proxies": 45, "latency_table": 70})
    total_s: float = 420.0
    compile_min_s: float = 45.0  # a torch.compile measurement starts only with this much of the run left


FULL = Config()
QUICK = replace(  # every section and every fps variant once, at toy sizes (seconds on one CPU thread)
    FULL, fps_models=("HyCTAS-S",), fps_hw=(32, 64), fps_warmup=1, fps_seconds=0.0,
    op_shape=(1, 16, 8, 16), op_seconds=0.0, space={"layers": 4, "filter_multiplier": 2},
    train_input=(2, 32, 32), step_seconds=0.0, eval_images=(2, 2), eval_input=(2, 32, 32), candidates=2,
    proxy_nets=(("64-41414-2_02_020", (2, 32, 32)),), lut_input=(1, 3, 32, 32), cost_network=(2, 8),
    lut_networks=2, lut_warmup=0, lut_measure_s=0.0, lut_calibration=3,
    lut_options={"warmup": 0, "min_iters": 1, "evict_mb": 0.0, "calibration_warmup": 0, "calibration_s": 0.0,
                 "calibration_rounds": 1},
    proxies=("saswot", "nwot"), memory_input=(2, 32, 32), memory_networks=2, compile_backend="eager",
    total_s=120.0, compile_min_s=0.0, budgets=dict.fromkeys(FULL.budgets, 30.0),
)


# ------------------------------------------------------------------------------------------- helpers
class Clock:
    """Wall time since the start, and progress lines stamped with it."""

    def __init__(self, total_s: float) -> None:
        self.start, self.total_s = time.perf_counter(), total_s

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        """Seconds of the whole run's budget left."""
        return self.total_s - self.elapsed()

    def log(self, message: str) -> None:
        stamp = datetime.datetime.now().strftime("%H:%M:%S")
        print(f"[{stamp} +{self.elapsed():5.0f}s] {message}", flush=True)


@dataclass
class Budget:
    """A section's deadline: the earlier of its own budget and the run's."""

    deadline: float

    def spent(self) -> bool:
        return time.perf_counter() >= self.deadline


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _release() -> None:
    """Return freed CUDA memory between items (nothing to do without CUDA: a CPU run skips the slow gc)."""
    if torch.cuda.is_available():
        gc.collect()
        torch.cuda.empty_cache()


def _failure(exc: BaseException) -> str:
    """A table cell saying what failed: exception type and the first line of its message."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"failed: {type(exc).__name__}: {first[:120]}"


def _median_ms(step: Callable[[], object], device: torch.device, warmup: int, seconds: float,
               min_iters: int = 3) -> float:
    """Median ms of ``step`` (synchronised each time) after ``warmup`` calls, timed for ``seconds``."""
    for _ in range(warmup):
        step()
    _sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_iters or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


class MemoryStats(Protocol):
    """The part of ``torch.cuda`` that memory readings use (tests pass a stand-in with injected readings)."""

    def synchronize(self, device: torch.device) -> None: ...
    def memory_allocated(self, device: torch.device) -> int: ...
    def reset_peak_memory_stats(self, device: torch.device) -> None: ...
    def max_memory_allocated(self, device: torch.device) -> int: ...


def _peak_mb(step: Callable[[], object], device: torch.device, cuda: MemoryStats = torch.cuda) -> float | None:
    """Peak memory allocated by ``step`` above what was allocated before it (MB); None off CUDA."""
    if device.type != "cuda":
        return None
    gc.collect()
    cuda.synchronize(device)
    base = cuda.memory_allocated(device)
    cuda.reset_peak_memory_stats(device)
    step()
    cuda.synchronize(device)
    return (cuda.max_memory_allocated(device) - base) / 2**20


def _mb(value: float | None) -> str:
    return "n/a (CPU)" if value is None else f"{value:.1f}"


def _hyctas_arch(name: str) -> dict:
    """F and OS of a released HyCTAS model: conf/arch/<name>.yaml (paper §4.2; M's F is not stated)."""
    return yaml.safe_load((resources.files("segnas.conf") / "arch" / f"{name}.yaml").read_text())


def _fps_models() -> dict[str, tuple[str, Callable[[], nn.Module]]]:
    """Label -> (settings, builder) of HyCTAS-S/M/L and the shipped FasterSeg architecture."""
    models = {}
    for size in "SML":
        arch = _hyctas_arch(f"hyctas_{size.lower()}")
        fm, os_ = arch["filter_multiplier"], arch["output_stride"]
        build = functools.partial(build_network, arch["genotype"], num_classes=CLASSES, filter_multiplier=fm,
                                  output_stride=os_)
        models[f"HyCTAS-{size}"] = (f"F={fm}, OS={os_}", build)
    models["FasterSeg"] = ("shipped arch", functools.partial(build_network, "pkg://fasterseg", num_classes=CLASSES))
    return models


def _synthetic(n: int, shape: tuple[int, int, int], device: torch.device, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``n`` images N(0, 1) of ``(3, H, W)`` and uniform labels, on ``device`` (shape = (batch, H, W))."""
    gen = torch.Generator(device=device).manual_seed(seed)
    _, h, w = shape
    x = torch.randn(n, 3, h, w, generator=gen, device=device)
    y = torch.randint(0, CLASSES, (n, h, w), generator=gen, device=device)
    return x, y


def _sample(space: HyCTASSpace, rng: np.random.Generator, branches: int) -> HyCTASGenotype:
    """A sample of ``space`` with ``branches`` branches."""
    return next(g for g in iter(lambda: space.sample(rng), None) if g.num_branches == branches)


def _describe(genotype: HyCTASGenotype) -> str:
    return f"{genotype.num_branches} br, depth {genotype.depth}, head {'/'.join(map(str, genotype.head))}"


# ---------------------------------------------------------------------------------------- report
class Report:
    """The Markdown file: a header, then one table per section; rewritten after every change."""

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path, self.header = path, header
        self.sections: dict[str, tuple[str, list[Row]]] = {}
        self.status: dict[str, str] = {}
        self.footer = "Status: running (a run killed here keeps the rows above)."

    def start(self, name: str, doc: str) -> None:
        self.sections[name] = (doc, [])
        self.status[name] = "running"
        self.write()

    def add(self, name: str, row: Row) -> Row:
        self.sections[name][1].append(row)
        self.write()
        return row

    def finish(self, name: str, status: str) -> None:
        self.status[name] = status
        self.write()

    def write(self) -> None:
        lines = list(self.header)
        for name, (doc, rows) in self.sections.items():
            lines += ["", f"## {name}", "", " ".join(doc.split()), "", f"Section {self.status[name]}.", ""]
            lines += _table(rows)
        lines += ["", self.footer]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(self.path)


def _table(rows: list[Row]) -> list[str]:
    if not rows:
        return ["(no rows)"]
    cols = list(dict.fromkeys(c for r in rows for c in r))
    cell = lambda v: str(v).replace("|", "/").replace("\n", " ")  # noqa: E731
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols),
            *("| " + " | ".join(cell(r.get(c, "")) for c in cols) + " |" for r in rows)]


def _driver() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
        return out.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown (nvidia-smi unavailable)"


def _header(device: torch.device, cfg: Config, argv: list[str]) -> list[str]:
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        where = (f"{p.name} ({p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs, "
                 f"compute capability {p.major}.{p.minor}), driver {_driver()}, CUDA {torch.version.cuda}, "
                 f"cuDNN {torch.backends.cudnn.version()}")
    else:
        where = f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads"
    tf32 = (f"TF32: cuDNN convolutions {torch.backends.cudnn.allow_tf32}, "
            f"matmuls {torch.backends.cuda.matmul.allow_tf32}")
    return [
        f"# GPU benchmark: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU (quick check)'}",
        "",
        f"- device: {where}",
        f"- torch {torch.__version__}, Python {platform.python_version()}; {tf32}",
        f"- run: `python benchmarks/gpu.py{''.join(' ' + a for a in argv)}`",
        f"- started {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; time budget "
        f"{cfg.total_s:.0f} s; random weights and synthetic data throughout (timings do not depend on them)",
    ]


# --------------------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class Variant:
    """One way to run a network for the FPS table."""

    name: str
    autocast: torch.dtype | None = None
    channels_last: bool = False
    graph: bool = False


VARIANTS = (
    Variant("fp32"),
    Variant("fp32 channels_last", channels_last=True),
    Variant("fp16 autocast", torch.float16),
    Variant("bf16 autocast", torch.bfloat16),
    Variant("fp16 channels_last", torch.float16, channels_last=True),
    Variant("fp16 CUDA graph", torch.float16, graph=True),
)
COMPILED = "fp16 torch.compile"


class _Autocast(nn.Module):
    """``net`` under ``torch.autocast`` (weight-cast cache off where a CUDA graph captures it)."""

    def __init__(self, net: nn.Module, dtype: torch.dtype, cache: bool = True) -> None:
        super().__init__()
        self.net, self.dtype, self.cache = net, dtype, cache

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(x.device.type, dtype=self.dtype, cache_enabled=self.cache):
            return self.net(x)


class _Graphed(nn.Module):
    """Replays one CUDA graph of ``net``, captured on the first call (after 3 warm-up calls on a side stream),
    on a static copy of the input; returns the static output, overwritten by the next call. ``cuda``: the
    ``torch.cuda`` API used (Stream, current_stream, stream, CUDAGraph, graph; tests pass a CPU stand-in)."""

    def __init__(self, net: nn.Module, cuda: Any = torch.cuda) -> None:
        super().__init__()
        self.net, self.cuda = net, cuda
        self.graph: Any = None
        self.static_in = self.static_out = torch.empty(0)

    def forward(self, x: Tensor) -> Tensor:
        cuda = self.cuda
        if self.graph is None:
            self.static_in = x.clone()
            side = cuda.Stream()
            side.wait_stream(cuda.current_stream())
            with cuda.stream(side):
                for _ in range(3):
                    self.net(self.static_in)
            cuda.current_stream().wait_stream(side)
            self.graph = cuda.CUDAGraph()
            with cuda.graph(self.graph):
                self.static_out = self.net(self.static_in)
        self.static_in.copy_(x)
        self.graph.replay()
        return self.static_out


def _fps(net: nn.Module, variant: Variant, cfg: Config, device: torch.device) -> str:
    """FPS of ``net`` run as ``variant``: warm-up, then timed for seconds (segnas.metrics.measure_latency)."""
    model: nn.Module = net
    if variant.autocast is not None:
        model = _Autocast(model, variant.autocast, cache=not variant.graph)
    if variant.graph:
        if device.type != "cuda":
            raise RuntimeError("CUDA graphs need a CUDA device")
        model = _Graphed(model)
    result = measure_latency(model, (1, 3, *cfg.fps_hw), device, warmup=cfg.fps_warmup,
                             duration_s=cfg.fps_seconds, min_iters=3, channels_last=variant.channels_last)
    return f"{result.fps:.1f}"


def _compiled_fps(net: nn.Module, cfg: Config, device: torch.device) -> str:
    """FPS of ``torch.compile(net)`` under fp16 autocast; the first call (compilation) is timed apart."""
    model = torch.compile(_Autocast(net.eval(), torch.float16), backend=cfg.compile_backend)  # compiled as timed
    x = torch.randn(1, 3, *cfg.fps_hw, device=device)
    start = time.perf_counter()
    with torch.inference_mode():
        model(x)
    _sync(device)
    compile_s = time.perf_counter() - start
    result = measure_latency(model, x.shape, device, warmup=cfg.fps_warmup, duration_s=cfg.fps_seconds,
                             min_iters=3)
    return f"{result.fps:.1f} (compile {compile_s:.0f} s)"


def fps(cfg: Config, device: torch.device, budget: Budget, emit: Callable[[Row], Row]) -> None:
    """HyCTAS-S/M/L (packaged genotypes, F and OS of conf/arch, 19 classes) and the shipped FasterSeg
    architecture at batch 1, 1024x2048: FPS = 1000 / median latency, the paper's protocol (eval,
    `torch.inference_mode`, warm-up, then timed for seconds, synchronised every pass). Variants: fp32,
    fp16/bf16 autocast, channels_last, a CUDA graph of the fp16 forward and `torch.compile` (fp16, measured
    last, with what is left of the run's time). Paper: Table 3 (RTX 3090, fp32; FasterSeg with TensorRT)."""
    models = _fps_models()
    for label in cfg.fps_models:
        settings, build = models[label]
        row: Row = {"model": label, "settings": settings, "input": "1x3x{}x{}".format(*cfg.fps_hw)}
        try:
            torch.manual_seed(0)
            net = build().to(device)
            row["M params"] = f"{sum(p.numel() for p in net.parameters()) / 1e6:.2f}"
            for variant in VARIANTS:
                if budget.spent():
                    row[variant.name] = "skipped (time budget)"
                    continue
                try:
                    row[variant.name] = _fps(net, variant, cfg, device)
                except Exception as exc:
                    row[variant.name] = _failure(exc)
                _release()
        except Exception as exc:
            row["fp32"] = _failure(exc)
        row[COMPILED] = "pending (measured last)"
        row["paper FPS"] = PAPER_FPS[label]
        emit(row)
        _release()


def fps_compile(cfg: Config, device: torch.device, rows: list[Row], clock: Clock, report: Report) -> None:
    """Fill the fps table's `torch.compile` column, fewest parameters first, while the run's time allows."""
    models = _fps_models()
    for row in sorted((r for r in rows if COMPILED in r), key=lambda r: float(str(r.get("M params", "inf")))):
        if clock.left() < cfg.compile_min_s:
            row[COMPILED] = "skipped (time budget)"
        else:
            clock.log(f"fps_compile: {row['model']} ...")
            try:
                torch.manual_seed(0)
                row[COMPILED] = _compiled_fps(models[str(row["model"])][1]().to(device), cfg, device)
            except Exception as exc:
                row[COMPILED] = _failure(exc)
            torch.compiler.reset()
            _release()
        clock.log(f"fps_compile: {row['model']}: {row[COMPILED]}")
        report.write()


def attention_ops(cfg: Config, device: torch.device, budget: Budget, emit: Callable[[Row], Row]) -> None:
    """Operators at 1/8 of a 512x1024 input (64x128 tokens, 128 channels, batch 1; `segnas.nn.build_op`):
    inference ms (fp32 and fp16 autocast), training forward+backward ms, and peak memory above the
    input and weights (`torch.cuda.max_memory_allocated`) of inference and of forward+backward. `fp16 error`:
    max |fp16 - fp32| / max |fp32| of the inference output (random weights), or non-finite."""
    c = cfg.op_shape[1]
    for name in ATTENTION_OPS:
        if budget.spent() and name != ATTENTION_OPS[0]:
            emit({"operator": name, "fp32 ms": "skipped (time budget)"})
            continue
        row: Row = {"operator": name, "input": "x".join(map(str, cfg.op_shape))}
        try:
            op = build_op(name, c, c, 1).to(device)
            x = torch.randn(*cfg.op_shape, device=device)

            def infer(dtype: torch.dtype | None, op: nn.Module = op, x: Tensor = x) -> Tensor:
                cast = contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype)
                with torch.inference_mode(), cast:
                    return op(x)

            def train(op: nn.Module = op, x: Tensor = x) -> None:
                op(x).sum().backward()

            op.eval()
            row["fp32 ms"] = f"{_median_ms(lambda: infer(None), device, 3, cfg.op_seconds):.2f}"
            row["fp16 ms"] = f"{_median_ms(lambda: infer(torch.float16), device, 3, cfg.op_seconds):.2f}"
            row["fp32 peak MB"] = _mb(_peak_mb(lambda: infer(None), device))
            exact, low = infer(None), infer(torch.float16).float()
            finite = bool(torch.isfinite(low).all())
            row["fp16 error"] = f"{(low - exact).abs().max() / exact.abs().max():.1e}" if finite else "non-finite"
            op.train()
            row["fwd+bwd ms"] = f"{_median_ms(train, device, 2, cfg.op_seconds):.2f}"
            op.zero_grad(set_to_none=True)
            row["fwd+bwd peak MB"] = _mb(_peak_mb(train, device))
        except Exception as exc:
            row["error"] = _failure(exc)
        emit(row)
        _release()


def _training_memory(net: nn.Module, x: Tensor, y: Tensor, device: torch.device,
                     cuda: MemoryStats = torch.cuda) -> tuple[float, float]:
    """MB allocated when the backward starts (what autograd keeps) and peak MB of forward + backward."""
    gc.collect()
    cuda.synchronize(device)
    base = cuda.memory_allocated(device)
    cuda.reset_peak_memory_stats(device)
    loss = F.cross_entropy(net(x), y, ignore_index=255)
    kept = (cuda.memory_allocated(device) - base) / 2**20
    loss.backward()
    cuda.synchronize(device)
    peak = (cuda.max_memory_allocated(device) - base) / 2**20
    net.zero_grad(set_to_none=True)
    return kept, peak


def _kept_and_peak(genotype: HyCTASGenotype, space: HyCTASSpace, cfg: Config, device: torch.device,
                   seed: int) -> dict[str, tuple[float, float]]:
    """Attention kernels ("default", "math") -> (kept, peak) MB of one fp32 training step of ``genotype``."""
    torch.manual_seed(seed)
    net = build_network(genotype, num_classes=CLASSES, **space.build_options()).to(device).train()
    x, y = _synthetic(cfg.memory_input[0], cfg.memory_input, device, seed=seed)
    readings = {}
    for kind in ("default", "math"):
        with sdpa_kernel(SDPBackend.MATH) if kind == "math" else contextlib.nullcontext():
            readings[kind] = _training_memory(net, x, y, device)
    return readings


def memory_check(cfg: Config, device: torch.device, budget: Budget, emit: Callable[[Row], Row]) -> None:
    """The fitted activation-memory model (`segnas.spaces.hyctas.memory.activation_memory_mb`, fp32,
    unfused attention) vs memory measured on sub-networks sampled from the default space (F=8, OS 8), fp32
    training forward + cross-entropy at batch 2 x 256x512: `kept` = allocated when the backward starts, above
    weights and input (what the model estimates), with PyTorch's default attention kernels and with the math
    kernel; `peak` = `torch.cuda.max_memory_allocated` over forward + backward. Error = estimate / kept - 1."""
    space = get_space("hyctas", **cfg.space)
    rng = np.random.default_rng(0)
    batch, h, w = cfg.memory_input
    errors: dict[str, list[float]] = {"default": [], "math": []}
    for i in range(cfg.memory_networks):
        if budget.spent() and i:
            emit({"network": f"{i}..{cfg.memory_networks - 1}", "estimate MB": "skipped (time budget)"})
            break
        genotype = space.sample(rng)
        estimate = activation_memory_mb(genotype, space.filter_multiplier, batch, h, w)
        row: Row = {"network": f"sample {i}: {_describe(genotype)}", "input": f"{batch}x3x{h}x{w}",
                    "estimate MB": f"{estimate:.1f}"}
        try:
            if device.type != "cuda":
                row["kept MB (default attention)"] = _mb(None)
            else:
                for kind, (kept, peak) in _kept_and_peak(genotype, space, cfg, device, i).items():
                    errors[kind].append(estimate / kept - 1.0)
                    row[f"kept MB ({kind} attention)"] = f"{kept:.1f}"
                    row[f"error ({kind})"] = f"{100 * errors[kind][-1]:+.1f} %"
                    row[f"peak MB ({kind})"] = f"{peak:.1f}"
        except Exception as exc:
            row["error"] = _failure(exc)
        emit(row)
        _release()
    summary: Row = {"network": "median / max abs error"}
    for kind, errs in errors.items():
        if errs:
            a = np.abs(errs)
            summary[f"error ({kind})"] = f"{100 * np.median(a):.1f} % / {100 * a.max():.1f} %"
    emit(summary)


def _step(forward: Callable[[], Tensor], y: Tensor, optimizer: torch.optim.Optimizer) -> None:
    """One training step: zero grads, forward + cross-entropy, backward, SGD step."""
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(forward(), y, ignore_index=255).backward()
    optimizer.step()


def _sgd(params: Iterator[nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=1e-4, momentum=0.9, weight_decay=5e-4)  # paper §4.2 (small lr: stable)


def train_step(cfg: Config, device: torch.device, budget: Budget, emit: Callable[[Row], Row]) -> None:
    """One training step (forward + cross-entropy + backward + SGD with momentum, fp32, train mode) of a
    sampled sub-network inside the supernet (`HyCTASSupernet` of the default space, SGD over all its weights)
    vs the same genotype's standalone network (`supernet.extract`), batch 16 x 256x512 (paper §4.2): median
    ms after 2 warm-up steps, timed for seconds; peak memory of one step. Goal (issue 16): ratio <= 1.1."""
    space = get_space("hyctas", **cfg.space)
    supernet = HyCTASSupernet.from_space(space, num_classes=CLASSES).to(device).train()
    shared_opt = _sgd(supernet.parameters())
    x, y = _synthetic(cfg.train_input[0], cfg.train_input, device)
    rng = np.random.default_rng(0)
    for branches in (1, 2, 3):
        genotype = _sample(space, rng, branches)
        row: Row = {"genotype": _describe(genotype), "input": "{}x3x{}x{}".format(*cfg.train_input)}
        if budget.spent() and branches > 1:
            emit({**row, "supernet ms": "skipped (time budget)"})
            continue
        try:
            net = supernet.extract(genotype).train()
            alone_opt = _sgd(net.parameters())
            steps = {"supernet": lambda g=genotype: _step(lambda: supernet(x, g), y, shared_opt),
                     "standalone": lambda n=net, o=alone_opt: _step(lambda: n(x), y, o)}
            ms = {k: _median_ms(s, device, 2, cfg.step_seconds) for k, s in steps.items()}
            row |= {f"{k} ms": f"{v:.1f}" for k, v in ms.items()}
            row["ratio"] = f"{ms['supernet'] / ms['standalone']:.3f}"
            row |= {f"{k} peak MB": _mb(_peak_mb(s, device)) for k, s in steps.items()}
        except Exception as exc:
            row["error"] = _failure(exc)
        emit(row)
        _release()


def candidate_evaluation(cfg: Config, device: torch.device, budget: Budget, emit: Callable[[Row], Row]) -> None:
    """Candidate evaluations of the supernet search (`segnas.search.objectives.SupernetMIoU`: extract the
    weights, recalibrate BatchNorm on 1000 images, validate on 500, batch 16 at 256x512: paper §4.2) with a
    randomly initialised supernet of the default space on synthetic batches; the first candidate of each
    branch count is a warm-up. Last column: the paper's 2400 candidates at that rate."""
    space = get_space("hyctas", **cfg.space)
    supernet = HyCTASSupernet.from_space(space, num_classes=CLASSES).to(device)
    batch = cfg.eval_input[0]
    recal_x, recal_y = _synthetic(cfg.eval_images[0], cfg.eval_input, device, seed=1)
    val_x, val_y = _synthetic(cfg.eval_images[1], cfg.eval_input, device, seed=2)
    objective = SupernetMIoU(supernet, list(zip(recal_x.split(batch), recal_y.split(batch), strict=True)),
                             list(zip(val_x.split(batch), val_y.split(batch), strict=True)), CLASSES)
    rng = np.random.default_rng(0)
    per_branch = max(2, cfg.candidates // 3)
    all_times: list[float] = []
    for branches in (1, 2, 3):
        times: list[float] = []
        for k in range(per_branch + 1):
            if budget.spent() and len(times) >= 1:
                break
            genotype = _sample(space, rng, branches)
            _sync(device)
            start = time.perf_counter()
            objective(genotype)
            _sync(device)
            if k:  # the first one warms up
                times.append(time.perf_counter() - start)
        row: Row = {"branches": branches, "images recal + val": "{} + {}".format(*cfg.eval_images),
                    "input": "{}x3x{}x{}".format(*cfg.eval_input), "candidates timed": len(times)}
        if times:
            all_times += times
            row |= {"s/candidate": f"{statistics.median(times):.2f}",
                    "candidates/s": f"{1 / statistics.median(times):.2f}"}
        emit(row)
        _release()
    if all_times:
        mean = statistics.fmean(all_times)
        emit({"branches": "all", "candidates timed": len(all_times), "s/candidate": f"{mean:.2f} (mean)",
              "candidates/s": f"{1 / mean:.2f}", "2400 candidates, GPU-hours": f"{2400 * mean / 3600:.2f}"})


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Only errors of ``logger`` inside the block."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _proxy_row(label: str, shape: tuple[int, int, int], device: torch.device, names: list[str]) -> Row:
    """Proxy timings of one net: ``label`` of :func:`_fps_models` or a TNB-101 arch, batch ``(N, H, W)``;
    ``names``: the proxies timed together."""
    models = _fps_models()
    row: Row = {"net": label if label in models else f"TNB {label}", "input": "{}x3x{}x{}".format(*shape)}
    try:
        torch.manual_seed(0)
        if label in models:
            model, classes = models[label][1]().to(device), CLASSES
        else:
            model, classes = transnas.build(label).to(device), transnas.NUM_CLASSES
        gen = torch.Generator(device=device).manual_seed(0)
        x = torch.randn(shape[0], 3, *shape[1:], generator=gen, device=device)
        y = torch.randint(0, classes, shape, generator=gen, device=device)

        def fwd_bwd() -> None:
            model.train().zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y, ignore_index=255).backward()

        evaluate(names, model, x, y, options=PROXY_OPTIONS)  # warm-up
        row["fwd+bwd s"] = f"{_median_ms(fwd_bwd, device, 1, 0.0) / 1000:.3f}"
        for which in (["saswot"], ["nwot"], names):
            _sync(device)
            start = time.perf_counter()
            results = evaluate(which, model, x, y, options=PROXY_OPTIONS)
            _sync(device)
            key = f"{which[0]} s" if len(which) == 1 else f"all {len(names)} in one call s"
            row[key] = f"{time.perf_counter() - start:.3f}"
        row["invalid"] = ", ".join(n for n, r in results.items() if not r.valid) or "none"
    except Exception as exc:
        row["error"] = _failure(exc)
    return row


def proxies(cfg: Config, device: torch.device, budget: Budget, emit: Callable[[Row], Row]) -> None:
    """Seconds per architecture of zero-cost proxies (`segnas.proxies.evaluate`: copy, passes, score) on
    random weights and a synthetic batch: saswot alone, nwot alone, and every registered proxy in ONE call
    (one shared statistics pass), beside one plain forward + backward of the same batch; after a warm-up
    call. FasterSeg (shipped) and HyCTAS-S at 512x1024 batch 8, the biggest TNB-101 micro net at 256x256
    batch 32 (benchmarks/bench_proxies.py)."""
    with _quiet("segnas.proxies.registry"):  # epe_nas is not applicable to dense targets: a warning per call
        for i, (label, shape) in enumerate(cfg.proxy_nets):
            if budget.spent() and i:
                emit({"net": label, "saswot s": "skipped (time budget)"})
                continue
            emit(_proxy_row(label, shape, device, list(cfg.proxies) or available()))
            _release()


def latency_table(cfg: Config, device: torch.device, budget: Budget, emit: Callable[[Row], Row]) -> None:
    """Lookup-table latency (`segnas.spaces.hyctas.latency_table.LatencyTable` with the search's defaults: the sum
    of per-piece entries timed alone, corrected by offset + scale fitted on 8 calibration networks) vs the measured batch-1 latency (`MeasuredLatency`, 10 warm-up passes)
    of up to 20 networks sampled from the default space, built as the search's cost network (F=12, OS 8) at
    its cost input 1024x2048 (conf/experiment/hyctas_cityscapes.yaml). `within 10 %`: share of networks
    whose table latency is within +-10 % of the measured one (goal, issue 16: >= 90 %)."""
    space = get_space("hyctas", **cfg.space)
    fm, os_ = cfg.cost_network
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as folder:
        table = LatencyTable(folder, cfg.lut_input, fm, CLASSES, os_, device=device,
                             calibration=calibration_genotypes(space, cfg.lut_calibration), **cfg.lut_options)
        build = functools.partial(build_network, num_classes=CLASSES, filter_multiplier=fm, output_stride=os_)
        measured = MeasuredLatency(build, cfg.lut_input, device, warmup=cfg.lut_warmup,
                                   duration_s=cfg.lut_measure_s)
        lut, actual, build_s = [], [], 0.0
        for i in range(cfg.lut_networks):
            if budget.spent() and i >= 2:
                break
            genotype = space.sample(rng)
            start = time.perf_counter()
            lut.append(table(genotype))
            build_s += time.perf_counter() - start
            actual.append(measured(genotype))
            _release()
        n_entries = len(table.entries)
    rel = np.array(lut) / np.array(actual) - 1.0
    corr = rank_correlations(lut, actual)
    emit({"input": "x".join(map(str, cfg.lut_input)), "networks": len(lut), "within 10 %":
          f"{100 * np.mean(np.abs(rel) <= 0.10):.0f}", "within 5 %": f"{100 * np.mean(np.abs(rel) <= 0.05):.0f}",
          "Kendall": f"{corr['kendall']:.3f}", "Pearson": f"{corr['pearson']:.3f}",
          "median measured/table": f"{np.median(np.array(actual) / np.array(lut)):.2f}",
          "median measured ms": f"{np.median(actual):.2f}", "table entries": n_entries,
          "table build s": f"{build_s:.1f}"})


SECTIONS: tuple[Callable[[Config, torch.device, Budget, Callable[[Row], Row]], None], ...] = (
    fps, attention_ops, memory_check, train_step, candidate_evaluation, proxies, latency_table)


# ------------------------------------------------------------------------------------------- main
def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def run(cfg: Config, device: torch.device, out: Path, argv: list[str]) -> Path:
    """Run every section into ``out/gpu_<device>.md``; return its path."""
    clock = Clock(cfg.total_s)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    report = Report(out / f"gpu_{_slug(name)}.md", _header(device, cfg, argv))
    seconds: dict[str, float] = {}
    clock.log(f"writing {report.path}")
    for section in SECTIONS:
        key = section.__name__
        budget = Budget(min(time.perf_counter() + cfg.budgets[key], clock.start + cfg.total_s))
        clock.log(f"{key}: start (budget {cfg.budgets[key]:.0f} s, run left {clock.left():.0f} s)")
        report.start(key, section.__doc__ or "")
        start = time.perf_counter()
        torch.backends.cudnn.benchmark = False  # measure_latency turns it on for the latency it measures

        def emit(row: Row, key: str = key) -> Row:
            clock.log(f"{key}: " + ", ".join(f"{k}={v}" for k, v in row.items()))
            return report.add(key, row)

        try:
            section(cfg, device, budget, emit)
        except Exception as exc:  # a failure outside any item (e.g. building the supernet)
            emit({"error": _failure(exc)})
        seconds[key] = time.perf_counter() - start
        report.finish(key, f"took {seconds[key]:.0f} s")
        _release()
    start = time.perf_counter()
    report.finish("fps", f"took {seconds['fps']:.0f} s, its torch.compile column running last")
    fps_compile(cfg, device, report.sections["fps"][1], clock, report)
    report.finish("fps", f"took {seconds['fps']:.0f} s + {time.perf_counter() - start:.0f} s for the "
                         "torch.compile column (run last)")
    report.footer = f"Status: complete in {clock.elapsed():.0f} s."
    report.write()
    clock.log(f"done in {clock.elapsed():.0f} s: {report.path}")
    return report.path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder of gpu_<device>.md (default: results/)")
    parser.add_argument("--budget-s", type=float, default=None, help="time budget of the whole run (s)")
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(NO_GPU, flush=True)
        return 0
    cfg = QUICK if args.quick else FULL
    if args.budget_s is not None:
        scale = args.budget_s / cfg.total_s
        cfg = replace(cfg, total_s=args.budget_s, budgets={k: v * scale for k, v in cfg.budgets.items()})
    out = args.out or (Path(tempfile.mkdtemp(prefix="segnas_bench_gpu_")) if args.quick else RESULTS)
    run(cfg, device, out, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
