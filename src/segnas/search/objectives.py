"""Every objective of the searches: callables ``genotype -> float`` usable without Hydra.

Quality:
- :class:`SupernetMIoU`: mIoU (%) of a sub-network with the supernet's weights after re-estimating its
  BatchNorm statistics on a fixed set of training images (paper §4.2: 1000 Cityscapes images).
- :class:`StandaloneMIoU`: validation mIoU (%) of the network trained from scratch for a short budget.
- :class:`ProxyScore`: a zero-cost proxy of the freshly (seeded) initialised network on one batch.
- :class:`ProxyFileScore`: a proxy file's proxy (e.g. an evolved combination) with the file's own protocol.

Cost (the standalone network from a ``build`` callable, e.g. ``partial(build_network, num_classes=19)``):
- :class:`MeasuredLatency`: median batch-1 latency (ms) on a device.
- :class:`segnas.spaces.hyctas.latency_table.LatencyTable`: the per-operator lookup-table latency model.
- :class:`Macs`, :class:`Params`: GMACs (attention matmuls included) and M parameters, analytic for
  :func:`~segnas.models.build_network` builders (:mod:`segnas.spaces.costs`), traced otherwise.
- :class:`ActivationMemory`: the space's estimate of training activation memory (MB).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from segnas.data.base import SegmentationDataset
from segnas.metrics import confusion_matrix, measure_latency, miou
from segnas.proxies import evaluate
from segnas.proxies.proxy_file import ProxyFile
from segnas.search.evaluator import InvalidScore
from segnas.spaces import builder_costs, save_genotype
from segnas.spaces.hyctas import HyCTASGenotype, HyCTASSupernet
from segnas.utils.hashing import text_sha1

log = logging.getLogger(__name__)

Batch = tuple[Tensor, Tensor]
Builder = Callable[[Any], nn.Module]


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
    """Dataset-level mIoU (%) of ``net`` (eval mode) over ``batches``; :class:`InvalidScore` when the logits are
    not finite (a diverged network's argmax would give a meaningless mIoU)."""
    device = next(net.parameters()).device
    confmat = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    for images, masks in batches:
        logits = net(images.to(device))
        if not torch.isfinite(logits).all():
            raise InvalidScore("non-finite logits (diverged weights or BatchNorm statistics)")
        confmat += confusion_matrix(logits.argmax(1), masks.to(device), num_classes, ignore_index)
    return miou(confmat)[0]


STEM_CACHE_LIMIT_MB = 2048.0  # SupernetMIoU keeps the stem's outputs when they take at most this much memory


@torch.no_grad()
def stem_output_mb(stem: nn.Module, batches: Sequence[Tensor]) -> float:
    """Megabytes the stem's outputs on ``batches`` take, extrapolated from one image of the first batch."""
    if not batches:
        return 0.0
    outputs = copy.deepcopy(stem).eval()(batches[0][:1])
    per_image = sum(t.numel() * t.element_size() for t in outputs)
    return per_image * sum(len(x) for x in batches) / 2**20


class SharedStemOutputs(nn.Module):
    """A stand-in for the stem of every network extracted from one supernet: the stem's outputs on the fixed
    recalibration images (train mode: batch statistics) and validation images (eval mode: the statistics
    recalibrated on those images), computed once. The stem is not searched, so its weights and its
    recalibrated BatchNorm statistics are the same for every candidate and the scores are bit-identical to
    running it each time (~20 % of the default search's time). It has no BatchNorm of its own, so
    :func:`bn_recalibrate` leaves it alone; any other input fails loudly."""

    def __init__(self, stem: nn.Module, recalibration: Sequence[Tensor], validation: Sequence[Tensor]) -> None:
        super().__init__()
        stem = copy.deepcopy(stem)
        norms = [m for m in stem.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        with torch.no_grad():
            stem.train()
            train = {self._key(x, True): stem(x) for x in recalibration}
            stem.eval()
            val = {self._key(x, False): stem(x) for x in validation}
        self.outputs = {**train, **val}

    @staticmethod
    def _key(x: Tensor, training: bool) -> tuple[int, tuple[int, ...], bool]:
        return x.data_ptr(), tuple(x.shape), training

    def forward(self, x: Tensor) -> Any:
        """The stem's outputs for one of the fixed batches, in this module's train/eval mode."""
        key = self._key(x, self.training)
        if key not in self.outputs:
            raise KeyError("SharedStemOutputs only answers the recalibration (train mode) and validation (eval "
                           "mode) batches it was built with")
        return self.outputs[key]


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
        self.stem: SharedStemOutputs | bool | None = None  # from the first extracted network; False: not kept

    def _shared_stem(self, stem: nn.Module) -> SharedStemOutputs | bool:
        """The stem's outputs on the fixed images, built once, or False when they would exceed
        :data:`STEM_CACHE_LIMIT_MB` (the stem then runs per candidate)."""
        if self.stem is None:
            images = [x for x, _ in self.validation]
            megabytes = stem_output_mb(stem, [*self.recalibration, *images])
            keep = megabytes <= STEM_CACHE_LIMIT_MB
            self.stem = SharedStemOutputs(stem, self.recalibration, images) if keep else False
            log.info("stem outputs of the fixed images: %.0f MB, %s", megabytes,
                     "computed once" if keep else f"over {STEM_CACHE_LIMIT_MB:.0f} MB: recomputed per candidate")
        return self.stem

    def __call__(self, genotype: HyCTASGenotype) -> float:
        net = self.supernet.extract(genotype)
        if shared := self._shared_stem(net.stem):
            net.stem = shared
        bn_recalibrate(net, self.recalibration)
        return evaluate_miou(net, self.validation, self.num_classes, self.ignore_index)


class MeasuredLatency:
    """Median latency (ms) of the standalone network: batch 1, warm-up, synchronised, timed for a duration."""

    def __init__(
        self,
        build: Builder,
        input_shape: Sequence[int],
        device: str | torch.device = "cpu",
        warmup: int = 3,
        duration_s: float = 0.2,
        min_iters: int = 5,
    ) -> None:
        self.build, self.input_shape, self.device = build, tuple(input_shape), torch.device(device)
        self.warmup, self.duration_s, self.min_iters = warmup, duration_s, min_iters

    def __call__(self, genotype: Any) -> float:
        net = self.build(genotype).eval().to(self.device)
        result = measure_latency(
            net, self.input_shape, self.device, warmup=self.warmup, duration_s=self.duration_s,
            min_iters=self.min_iters,
        )
        return result.median_ms


class Macs:
    """GMACs of one forward pass of the standalone network at ``input_shape`` (:func:`builder_costs`)."""

    def __init__(self, build: Builder, input_shape: Sequence[int]) -> None:
        self.build, self.input_shape = build, tuple(input_shape)

    def __call__(self, genotype: Any) -> float:
        return builder_costs(self.build, genotype, self.input_shape)[0] / 1e9


class Params:
    """Millions of parameters of the standalone network (:func:`builder_costs`; the count does not depend on
    ``input_shape``, the input of a traced network and part of the cost model's configuration)."""

    def __init__(self, build: Builder, input_shape: Sequence[int] = (1, 3, 64, 64)) -> None:
        self.build, self.input_shape = build, tuple(input_shape)

    def __call__(self, genotype: Any) -> float:
        return builder_costs(self.build, genotype, self.input_shape)[1] / 1e6


class ActivationMemory:
    """The space's estimate of the training activation memory (MB) of a genotype (``space.memory_mb``)."""

    def __init__(self, estimate: Callable[[Any], float]) -> None:
        self.estimate = estimate

    def __call__(self, genotype: Any) -> float:
        return float(self.estimate(genotype))


class ProxyScore:
    """A zero-cost proxy of a genotype's network, initialised with the same seed for every candidate,
    on one fixed batch; a network that fails to build or a proxy that fails or is not finite raises
    :class:`~segnas.search.evaluator.InvalidScore` (the evaluator archives NaN and the reason: never fatal).

    Args:
        proxy: a name of :func:`segnas.proxies.available`.
        build: genotype -> network.
        inputs, targets: the scoring batch.
        options: keyword options of the proxy (e.g. saswot's calibrated ``ranges``).
        seed: the initialisation seed.
    """

    def __init__(
        self, proxy: str, build: Builder, inputs: Tensor, targets: Tensor,
        options: Mapping[str, Any] | None = None, seed: int = 0,
    ) -> None:
        self.proxy, self.build, self.inputs, self.targets = proxy, build, inputs, targets
        self.options, self.seed = dict(options or {}), seed

    def __call__(self, genotype: Any) -> float:
        torch.manual_seed(self.seed)
        try:
            net = self.build(genotype)
        except Exception as exc:  # a failing candidate is invalid, never fatal
            raise InvalidScore(f"{self.proxy}: the network cannot be built: {type(exc).__name__}: {exc}") from exc
        result = evaluate([self.proxy], net, self.inputs, self.targets, options={self.proxy: self.options})[self.proxy]
        if not result.valid:
            raise InvalidScore(f"{self.proxy}: {result.reason}")
        return result.value


class ProxyFileScore:
    """A proxy file's score of a genotype's network, initialised with the file's seed, on its protocol's batch;
    a network that fails to build or an undefined (NaN) score raises
    :class:`~segnas.search.evaluator.InvalidScore`.

    The network is built for this score only, so the statistics pass runs on it (no copy, gradients of the
    scored weights only) and a combination's ``flops`` leaf is the builder's MAC count (:func:`builder_costs`:
    analytic for ``build_network`` builders, equal to the traced count): the same values as
    ``proxy_file.score(network, inputs, targets)``, faster (TransNAS-Bench-101 networks:
    ``benchmarks/results/proxy_file_scoring.md``).
    """

    def __init__(self, proxy_file: ProxyFile, build: Builder, inputs: Tensor, targets: Tensor) -> None:
        self.file, self.build, self.inputs, self.targets = proxy_file, build, inputs, targets

    def known(self, genotype: Any) -> dict[str, float]:
        """The leaves known without the network: ``flops`` (MACs of one sample at the batch's size)."""
        leaves = getattr(self.file.definition, "proxies", ())
        if "flops" not in leaves:
            return {}
        return {"flops": float(builder_costs(self.build, genotype, (1, *self.inputs.shape[1:]))[0])}

    def __call__(self, genotype: Any) -> float:
        torch.manual_seed(self.file.protocol.seed)
        try:
            net = self.build(genotype)
        except Exception as exc:  # a failing candidate is invalid, never fatal
            raise InvalidScore(f"{self.file.name}: the network cannot be built: {type(exc).__name__}: {exc}") from exc
        value = self.file.score(net, self.inputs, self.targets, disposable=True, known=self.known(genotype))
        if not math.isfinite(value):
            raise InvalidScore(f"{self.file.name}: undefined on this network ({value})")
        return value


class StandaloneMIoU:
    """Final validation mIoU (%) of a genotype's network trained from scratch for a short budget.

    Every network is trained with the same seed (whatever the order) in ``folder/<key hash>``.

    Args:
        module: genotype -> LightningModule to fit (its network built from the genotype's contents).
        trainer: folder -> a Lightning trainer (max epochs, no checkpoints or loggers).
        datamodule: the data.
        folder: where each network's genotype and trainer files go.
        key: canonical key of a genotype (names its folder).
        seed: the training seed.
    """

    def __init__(
        self, module: Callable[[Any], L.LightningModule], trainer: Callable[[Path], L.Trainer],
        datamodule: L.LightningDataModule, folder: Path, key: Callable[[Any], str], seed: int = 0,
    ) -> None:
        self.module, self.trainer, self.datamodule = module, trainer, datamodule
        self.folder, self.key, self.seed = Path(folder), key, seed

    def __call__(self, genotype: Any) -> float:
        name = text_sha1(self.key(genotype), 12)
        path = save_genotype(genotype, self.folder / name / "genotype.yaml")
        L.seed_everything(self.seed, workers=True, verbose=False)
        trainer = self.trainer(path.parent)
        trainer.fit(self.module(genotype), datamodule=self.datamodule)
        return float(trainer.callback_metrics["val/mIoU"])
