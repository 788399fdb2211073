"""Foundation benchmarks: data loading, training step, latency protocol spread."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import torch
from registry import Table, benchmark

from segnas.data.camvid import CamVidDataModule
from segnas.data.synthetic import SyntheticDataModule
from segnas.lit.losses import hard_pixel_ce
from segnas.metrics import measure_latency
from segnas.models.deeplab import DeepLabV3Plus

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path:
    return Path(os.environ.get("SEGNAS_DATA", REPO.parent / "shared" / "data"))


def _images_per_second(datamodule, num_batches: int) -> float:
    loader = datamodule.train_dataloader()
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    start, seen = time.perf_counter(), 0
    for _ in range(num_batches):
        seen += next(it)["image"].shape[0]
    return seen / (time.perf_counter() - start)


@benchmark
def data_loading() -> Table:
    """Training images/s with augmentation (random scale, pad, crop, flip, jitter, normalise)."""
    rows: Table = []
    camvid = _data_root() / "camvid"
    configs = [("synthetic 128x128", lambda w: SyntheticDataModule(num_workers=w, batch_size=8))]
    if camvid.is_dir():
        for scale, crop in ((1.0, (360, 480)), (0.5, (160, 224))):
            configs.append((f"CamVid scale {scale} crop {crop[0]}x{crop[1]}",
                            lambda w, s=scale, c=crop: CamVidDataModule(camvid, image_scale=s, crop_size=c,
                                                                        num_workers=w, batch_size=8)))
    for name, make in configs:
        for workers in (0, 2):
            dm = make(workers)
            dm.setup("fit")
            rows.append({"dataset": name, "workers": workers, "images/s": f"{_images_per_second(dm, 10):.1f}"})
    return rows


@benchmark
def train_step() -> Table:
    """Seconds per optimisation step of the DeepLabV3+ baseline (forward + backward + SGD)."""
    rows: Table = []
    for backbone, size, batch in (("resnet18", 128, 8), ("resnet18", 256, 8), ("resnet50", 256, 4)):
        net = DeepLabV3Plus(11, backbone, aspp_channels=128, decoder_channels=128)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        x = torch.randn(batch, 3, size, size)
        y = torch.randint(0, 11, (batch, size, size))
        times = []
        for i in range(6):
            start = time.perf_counter()
            opt.zero_grad()
            hard_pixel_ce(net(x), y).backward()
            opt.step()
            if i >= 1:
                times.append(time.perf_counter() - start)
        rows.append({"model": f"DeepLabV3+ {backbone}", "input": f"{batch}x3x{size}x{size}",
                     "s/step (median of 5)": f"{statistics.median(times):.3f}"})
    return rows


@benchmark
def latency_spread() -> Table:
    """Spread of the latency protocol over 5 repeats (same model, same input)."""
    net = DeepLabV3Plus(19, "resnet18", aspp_channels=128, decoder_channels=128)
    rows: Table = []
    for shape in ((1, 3, 256, 512), (1, 3, 512, 1024)):
        medians = [measure_latency(net, shape, warmup=3, duration_s=2.0).median_ms for _ in range(5)]
        rows.append({"input": "x".join(map(str, shape)), "median ms per repeat": ", ".join(f"{m:.1f}" for m in medians),
                     "mean": f"{statistics.fmean(medians):.1f}", "std": f"{statistics.pstdev(medians):.2f}",
                     "CV %": f"{100 * statistics.pstdev(medians) / statistics.fmean(medians):.1f}"})
    return rows


