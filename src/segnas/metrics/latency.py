"""Latency / FPS measurement: eval mode, batch 1, warm-up, synchronised, timed for a set duration.

:class:`SpeedProtocol` is the one protocol every stage reports a trained network's FPS with (``speed=`` config
group: warm-up, duration, CPU threads, device), so FPS of the same network agree between stages; each result
carries the protocol it was measured with."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LatencyResult:
    """Summary of a latency measurement; times in milliseconds."""

    median_ms: float
    mean_ms: float
    p90_ms: float
    std_ms: float
    fps: float
    n_iters: int
    device: str
    dtype: str
    input_shape: tuple[int, ...]
    threads: int  # torch's CPU intra-op threads while timing
    warmup: int

    def as_dict(self) -> dict:
        return asdict(self)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int] = (1, 3, 512, 1024),
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    warmup: int = 10,
    duration_s: float = 2.0,
    min_iters: int = 10,
    max_iters: int = 10_000,
    channels_last: bool = False,
    before_each: Callable[[], object] | None = None,
    threads: int | None = None,
) -> LatencyResult:
    """Time forward passes of ``model`` and return median/mean/p90 ms and FPS (1000 / median).

    The model is run in eval mode under ``torch.inference_mode``; every iteration is synchronised
    on CUDA so each sample is the full latency of one forward. ``before_each`` (e.g. a cache eviction)
    runs before every timed pass, outside its timing. ``threads``: torch's CPU threads while timing (None: as
    set). The model's train/eval mode, device and dtype and torch's thread count are restored afterwards.
    """
    param = next(model.parameters(), None)
    orig_device = param.device if param is not None else torch.device("cpu")
    orig_dtype = param.dtype if param is not None else torch.float32
    device = torch.device(device) if device is not None else orig_device
    was_training = model.training
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.eval().to(device=device, dtype=dtype)
    if channels_last:
        model.to(memory_format=memory_format)
    x = torch.randn(*input_shape, device=device, dtype=dtype).contiguous(memory_format=memory_format)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    times: list[float] = []
    try:
        with torch.inference_mode(), _cpu_threads(threads):
            used_threads = torch.get_num_threads()
            for _ in range(warmup):
                model(x)
            _sync(device)
            start = time.perf_counter()
            while len(times) < max_iters and (len(times) < min_iters or time.perf_counter() - start < duration_s):
                if before_each is not None:
                    before_each()
                    _sync(device)
                t0 = time.perf_counter()
                model(x)
                _sync(device)
                times.append((time.perf_counter() - t0) * 1000.0)
    finally:
        model.to(device=orig_device, dtype=orig_dtype, memory_format=torch.contiguous_format).train(was_training)
    ordered = sorted(times)
    median = statistics.median(ordered)
    return LatencyResult(
        median_ms=median,
        mean_ms=statistics.fmean(ordered),
        p90_ms=ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        std_ms=statistics.pstdev(ordered),
        fps=1000.0 / median,
        n_iters=len(ordered),
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        dtype=str(dtype).replace("torch.", ""),
        input_shape=tuple(int(s) for s in input_shape),
        threads=used_threads,
        warmup=warmup,
    )


@contextmanager
def _cpu_threads(threads: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class SpeedProtocol:
    """How a stage measures the FPS of the network it trained or evaluated (the ``speed=`` config group).

    Args:
        warmup: untimed forward passes first.
        duration_s: timed passes for at least this long (and ``min_iters``).
        min_iters: at least this many timed passes.
        threads: torch's CPU threads while timing (fixed so that a stage's FPS does not depend on how many
            threads its training used; ignored on CUDA); None: as the process has them.
        device: where to time (``cpu``, ``cuda``); None: where the model is.
    """

    warmup: int = 10
    duration_s: float = 2.0
    min_iters: int = 10
    threads: int | None = 1
    device: str | None = None

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.duration_s <= 0 or self.min_iters < 1:
            raise ValueError(f"speed: warmup >= 0, duration_s > 0 and min_iters >= 1 needed, got {self}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"speed.threads must be >= 1 or null, got {self.threads}")

    def measure(self, model: nn.Module, input_shape: Sequence[int]) -> LatencyResult:
        """Latency and FPS of ``model`` at ``input_shape`` under this protocol."""
        return measure_latency(model, input_shape, device=self.device, warmup=self.warmup,
                               duration_s=self.duration_s, min_iters=self.min_iters, threads=self.threads)


def speed_label(latency: dict) -> str:
    """How a :meth:`LatencyResult.as_dict` was measured, for tables: device, dtype, threads, input."""
    height, width = latency["input_shape"][-2:]
    threads = latency.get("threads")
    on = f", {threads} thread{'s' if threads != 1 else ''}" if latency["device"] == "cpu" and threads else ""
    return f"{latency['device']}, {latency['dtype']}{on}, {height}x{width}"
