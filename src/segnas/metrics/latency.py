"""Latency / FPS measurement: eval mode, batch 1, warm-up, synchronised, timed for a set duration."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
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
) -> LatencyResult:
    """Time forward passes of ``model`` and return median/mean/p90 ms and FPS (1000 / median).

    The model is run in eval mode under ``torch.inference_mode``; every iteration is synchronised
    on CUDA so each sample is the full latency of one forward. ``before_each`` (e.g. a cache eviction)
    runs before every timed pass, outside its timing. The model's train/eval mode, device and dtype are
    restored afterwards.
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
        with torch.inference_mode():
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
    )
