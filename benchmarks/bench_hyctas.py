"""HyCTAS benchmarks: supernet vs standalone forward and training-step time, self-attention vs transformer cost."""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import torch
from registry import Table, benchmark

from segnas.lit.losses import hard_pixel_ce
from segnas.lit.optim import sgd
from segnas.metrics import count_macs_params, measure_latency
from segnas.models import build_network
from segnas.nn import build_op
from segnas.spaces import get_space
from segnas.spaces.hyctas.supernet import HyCTASSupernet


class _Bound(torch.nn.Module):
    """The supernet with one genotype fixed, so it can be timed like any model."""

    def __init__(self, supernet: HyCTASSupernet, genotype) -> None:
        super().__init__()
        self.supernet, self.genotype = supernet, genotype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.supernet(x, self.genotype)


@benchmark
def hyctas_supernet_overhead() -> Table:
    """Forward time of sampled genotypes in the supernet vs their standalone networks (goal <= 1.15x)."""
    space = get_space("hyctas", layers=12, filter_multiplier=8)
    supernet = HyCTASSupernet.from_space(space, num_classes=19).eval()
    shape = (1, 3, 512, 1024) if torch.cuda.is_available() else (1, 3, 256, 512)
    rows: Table = []
    for seed in range(3):
        genotype = space.sample(np.random.default_rng(seed))
        shared = measure_latency(_Bound(supernet, genotype), shape, warmup=3, duration_s=2.0).median_ms
        alone = measure_latency(supernet.extract(genotype), shape, warmup=3, duration_s=2.0).median_ms
        rows.append({"genotype": f"seed {seed}, head strides {genotype.head}", "input": "x".join(map(str, shape)),
                     "supernet ms": f"{shared:.2f}", "standalone ms": f"{alone:.2f}", "ratio": f"{shared / alone:.3f}"})
    return rows


def _step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
          y: torch.Tensor) -> float:
    """Seconds of one training step: zero grads, forward, hard-pixel CE, backward, SGD step."""
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    hard_pixel_ce(model(x), y).backward()
    optimizer.step()
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


@benchmark
def hyctas_supernet_train_step() -> Table:
    """Training step (forward + backward + SGD, as `SupernetModule`) of a sampled genotype in the supernet (its
    optimiser over all supernet weights) vs the same genotype's standalone network (`build_network`), same input;
    steps interleaved, median of 8 after 2 warm-up steps each (goal, issue 16: ratio <= 1.1)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    space = get_space("hyctas", layers=12, filter_multiplier=8)
    supernet = HyCTASSupernet.from_space(space, num_classes=19).to(device).train()
    shared_opt = sgd(supernet.parameters(), 0.01)
    rows: Table = []
    for shape in ((8, 3, 128, 128), (2, 3, 256, 512)):
        x = torch.randn(*shape, device=device)
        y = torch.randint(0, 19, (shape[0], *shape[2:]), device=device)
        for seed in range(2):
            genotype = space.sample(np.random.default_rng(seed))
            alone = build_network(genotype, 19, **space.build_options()).to(device).train()
            alone_opt = sgd(alone.parameters(), 0.01)
            times: dict[str, list[float]] = {"supernet": [], "standalone": []}
            for i in range(10):
                for key, model, opt in (("supernet", _Bound(supernet, genotype), shared_opt),
                                        ("standalone", alone, alone_opt)):
                    dt = _step(model, opt, x, y)
                    if i >= 2:
                        times[key].append(dt)
            shared, single = (statistics.median(times[k]) for k in ("supernet", "standalone"))
            rows.append({"genotype": f"seed {seed}: {genotype.num_branches} branches, depth {genotype.depth}",
                         "input": "x".join(map(str, shape)), "supernet s/step": f"{shared:.3f}",
                         "standalone s/step": f"{single:.3f}", "ratio": f"{shared / single:.3f}",
                         "load (1 min)": f"{os.getloadavg()[0]:.1f}"})
    return rows


def _peak_memory_mb(op: torch.nn.Module, shape: tuple[int, ...]) -> str:
    if not torch.cuda.is_available():
        return "n/a (CPU)"
    op = op.cuda().eval()
    x = torch.randn(*shape, device="cuda")
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        op(x)
    return f"{(torch.cuda.max_memory_allocated() - base) / 2**20:.1f}"


@benchmark
def hyctas_attention_ops() -> Table:
    """Operators at 1/8 of a 512x1024 input (64x128 tokens, 128 channels): time, MACs, peak memory."""
    shape = (1, 128, 64, 128)
    rows: Table = []
    for name in ("conv", "lightweight_conv", "self_attention", "transformer"):
        op = build_op(name, 128, 128, 1)
        macs, params = count_macs_params(op, shape)
        ms = measure_latency(op, shape, warmup=2, duration_s=2.0, min_iters=3).median_ms
        rows.append({"operator": name, "GMACs": f"{macs / 1e9:.2f}", "M params": f"{params / 1e6:.3f}",
                     "ms": f"{ms:.2f}", "peak MB": _peak_memory_mb(op, shape)})
    return rows
