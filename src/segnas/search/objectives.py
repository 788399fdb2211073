"""Objectives of the architecture search: callables ``genotype -> float`` usable without Hydra.

- :class:`SupernetMIoU`: mIoU (%) of a sub-network with the supernet's weights after re-estimating its
  BatchNorm statistics on a fixed set of training images (paper §4.2: 1000 Cityscapes images).
- :class:`MeasuredLatency`: median batch-1 latency (ms) of the standalone network on a device.
- :class:`Macs`, :class:`Params`: GMACs (attention matmuls included) and M parameters.
- :class:`segnas.search.latency_table.LatencyTable`: the per-operator lookup-table latency model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from segnas.data.base import SegmentationDataset
from segnas.metrics import confusion_matrix, count_macs, count_params, measure_latency, miou
from segnas.models.hyctas_net import HyCTASNet
from segnas.models.supernet import HyCTASSupernet
from segnas.spaces.hyctas import HyCTASGenotype

Batch = tuple[Tensor, Tensor]


def load_batches(
    dataset: SegmentationDataset, indices: Sequence[int], batch_size: int, seed: int = 0
) -> list[Batch]:
    """``(images, masks)`` batches of ``dataset[(i, seed + i)]`` for ``indices`` (fixed augmentation)."""
    samples = [dataset[(int(i), seed + int(i))] for i in indices]
    return [
        (
            torch.stack([s["image"] for s in samples[k : k + batch_size]]),
            torch.stack([s["mask"] for s in samples[k : k + batch_size]]),
        )
        for k in range(0, len(samples), batch_size)
    ]


@torch.no_grad()
def bn_recalibrate(net: nn.Module, images: Iterable[Tensor]) -> None:
    """Reset every BatchNorm's running statistics and re-estimate them as the plain average over ``images``.

    The network is left in eval mode.
    """
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    net.train()
    for x in images:
        net(x)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    net.eval()


@torch.no_grad()
def evaluate_miou(net: nn.Module, batches: Iterable[Batch], num_classes: int, ignore_index: int = 255) -> float:
    """Dataset-level mIoU (%) of ``net`` (eval mode) over ``batches``."""
    device = next(net.parameters()).device
    confmat = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    for images, masks in batches:
        pred = net(images.to(device)).argmax(1)
        confmat += confusion_matrix(pred, masks.to(device), num_classes, ignore_index)
    return miou(confmat)[0]


class SupernetMIoU:
    """Supernet-estimated mIoU (%) of a genotype: extract its weights, recalibrate BN, validate.

    Args:
        supernet: the trained weight-sharing supernet (its device is used).
        recalibration: training batches whose images re-estimate the BatchNorm statistics.
        validation: the validation subset.
        num_classes, ignore_index: of the labels.
    """

    def __init__(
        self,
        supernet: HyCTASSupernet,
        recalibration: Sequence[Batch],
        validation: Sequence[Batch],
        num_classes: int,
        ignore_index: int = 255,
    ) -> None:
        self.supernet = supernet.eval()
        device = next(supernet.parameters()).device
        self.recalibration = [images.to(device) for images, _ in recalibration]
        self.validation = [(images.to(device), masks.to(device)) for images, masks in validation]
        self.num_classes, self.ignore_index = num_classes, ignore_index

    def __call__(self, genotype: HyCTASGenotype) -> float:
        net = self.supernet.extract(genotype)
        bn_recalibrate(net, self.recalibration)
        return evaluate_miou(net, self.validation, self.num_classes, self.ignore_index)


class NetworkBuilder:
    """Standalone :class:`HyCTASNet` of a genotype (randomly initialised, eval mode) for cost objectives."""

    def __init__(self, num_classes: int, filter_multiplier: int, output_stride: int = 8) -> None:
        self.num_classes, self.filter_multiplier, self.output_stride = num_classes, filter_multiplier, output_stride

    def __call__(self, genotype: HyCTASGenotype) -> HyCTASNet:
        return HyCTASNet(genotype, self.num_classes, self.filter_multiplier, self.output_stride).eval()


class MeasuredLatency:
    """Median latency (ms) of the standalone network: batch 1, warm-up, synchronised, timed for a duration."""

    def __init__(
        self,
        build: NetworkBuilder,
        input_shape: Sequence[int],
        device: str | torch.device = "cpu",
        warmup: int = 3,
        duration_s: float = 0.2,
        min_iters: int = 5,
    ) -> None:
        self.build, self.input_shape, self.device = build, tuple(input_shape), torch.device(device)
        self.warmup, self.duration_s, self.min_iters = warmup, duration_s, min_iters

    def __call__(self, genotype: HyCTASGenotype) -> float:
        net = self.build(genotype).to(self.device)
        result = measure_latency(
            net, self.input_shape, self.device, warmup=self.warmup, duration_s=self.duration_s,
            min_iters=self.min_iters,
        )
        return result.median_ms


class Macs:
    """GMACs of one forward pass of the standalone network at ``input_shape``."""

    def __init__(self, build: NetworkBuilder, input_shape: Sequence[int]) -> None:
        self.build, self.input_shape = build, tuple(input_shape)

    def __call__(self, genotype: HyCTASGenotype) -> float:
        return count_macs(self.build(genotype), torch.randn(*self.input_shape)) / 1e9


class Params:
    """Millions of parameters of the standalone network."""

    def __init__(self, build: NetworkBuilder) -> None:
        self.build = build

    def __call__(self, genotype: HyCTASGenotype) -> float:
        return count_params(self.build(genotype)) / 1e6
