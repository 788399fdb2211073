"""FPS of HyCTAS-S/M/L (the packaged genotypes, paper filter multipliers and output strides) on this CPU.

Usage: OMP_NUM_THREADS=1 .venv/bin/python experiments/hyctas_fps/measure_fps.py --height 256 --width 512
Prints a Markdown table: median wall latency and FPS, and the process CPU time per forward (warm-up
included) with the FPS it implies, which is what a single-threaded run would reach on an idle core: the
machine is shared, so wall-clock latency includes waiting for a core.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from segnas.conf import __file__ as conf_init
from segnas.metrics import count_macs_params, measure_latency
from segnas.models import build_network

WARMUP = 2
PAPER_FPS = {"hyctas_s": 159.2, "hyctas_m": 87.8, "hyctas_l": 12.4}  # Table 3, RTX 3090, 1024x2048


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shape = (1, 3, args.height, args.width)
    arch_dir = Path(conf_init).parent / "arch"
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} thread(s), "
        f"input {args.height}x{args.width}, batch 1, fp32\n"
    )
    print(
        "| arch | F | OS | GMACs | params (M) | layout | wall median ms | wall FPS | CPU ms/forward | CPU FPS "
        "| CPU s | wall s | paper FPS (3090, 1024x2048) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in PAPER_FPS:
        arch = OmegaConf.load(arch_dir / f"{name}.yaml")
        net = build_network(arch.genotype, 19, filter_multiplier=arch.filter_multiplier,
                            output_stride=arch.output_stride).eval()
        macs, params = count_macs_params(net, shape)
        for channels_last in (False, True):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            result = measure_latency(
                net,
                shape,
                device="cpu",
                warmup=WARMUP,
                duration_s=args.duration,
                min_iters=3,
                channels_last=channels_last,
            )
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            layout = "channels_last" if channels_last else "NCHW"
            cpu_ms = 1000 * cpu / (result.n_iters + WARMUP)
            print(
                f"| {name} | {arch.filter_multiplier} | {arch.output_stride} | {macs / 1e9:.2f} | {params / 1e6:.2f} "
                f"| {layout} | {result.median_ms:.1f} | {result.fps:.2f} | {cpu_ms:.1f} | {1000 / cpu_ms:.2f} "
                f"| {cpu:.1f} | {wall:.1f} "
                f"| {PAPER_FPS[name]} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
