"""The ``score=`` components: how a search scores a candidate, each owning its settings.

- :class:`SupernetScoring` (``score=supernet``): mIoU (%) of the sub-network in a trained weight-sharing
  supernet after BN recalibration (HyCTAS); the space is the supernet's.
- :class:`ProxyScoring` (``score=proxy``): a zero-cost proxy of the freshly initialised network on one batch
  (SasWOT); saswot is normalised over architectures within the search's fixed budgets; or a proxy file's.
- :class:`StandaloneScoring` (``score=standalone``): mIoU (%) after a short training from scratch.

A component is made by ``hydra.utils.instantiate(cfg.score)``; :func:`segnas.search.build_problem` calls
:meth:`space` (which space, which network options), then :meth:`objective` (the ``genotype -> float``), and
archives :meth:`context` (what the scores depend on) with every result.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate, to_absolute_path
from omegaconf import DictConfig, OmegaConf

from segnas.data.base import SegmentationDataModule
from segnas.lit.fitting import build_datamodule, build_trainer, checkpoint_paths, fit
from segnas.lit.inference import read_checkpoint
from segnas.lit.segmentation import SegmentationModule
from segnas.lit.supernet import SupernetModule
from segnas.models import build_network
from segnas.proxies import calibrate_cached, check_options, resolved_options
from segnas.proxies.batch import resolve_inputs, scoring_batch
from segnas.proxies.proxy_file import ProxyFile, is_proxy_file, load_proxy_file
from segnas.proxies.saswot import NORMALIZATIONS
from segnas.search.distributed import Ranks
from segnas.search.evaluator import Objective
from segnas.search.objectives import ProxyFileScore, ProxyScore, StandaloneMIoU, SupernetMIoU, load_batches
from segnas.spaces import transnas
from segnas.spaces.base import SearchSpace
from segnas.utils.config import plain, to_container
from segnas.utils.hashing import weights_sha1
from segnas.utils.quiet import lightning_banners_once

log = logging.getLogger(__name__)

Builder = Callable[[Any], torch.nn.Module]
# Trainer settings that change no result (progress, logging cadence, folders): left out of score contexts.
TRAINER_COSMETICS = ("enable_progress_bar", "enable_model_summary", "log_every_n_steps", "default_root_dir",
                     "callbacks", "logger")


@dataclass
class RunSetup:
    """What a score needs from the run: the root config (data, trainer, optim, seed), the run folder, the
    processes and the device the score runs on."""

    cfg: DictConfig
    out: Path
    ranks: Ranks
    device: torch.device

    @property
    def seed(self) -> int:
        return int(self.cfg.seed)

    @cached_property
    def datamodule(self) -> SegmentationDataModule:
        """The ``data`` group's data module (built once, on first use)."""
        return build_datamodule(self.cfg)


def trainer_context(trainer: DictConfig) -> dict[str, Any]:
    """The trainer settings a trained score depends on (cosmetic ones left out)."""
    return plain(OmegaConf.masked_copy(trainer, [k for k in trainer if k not in TRAINER_COSMETICS]))


class SupernetScoring:
    """Supernet mIoU after BN recalibration on ``evaluation.recalibration_images`` random training images,
    on the first ``evaluation.val_images`` validation images (paper §3.4).

    Args:
        supernet: ``score.supernet``: the ``supernet`` group's settings (``space_overrides``, ``module``),
            ``ckpt`` (a ``stage=supernet`` checkpoint; None trains one into the run folder first) and ``epochs``
            (that training's budget).
        evaluation: ``recalibration_images``, ``val_images``, ``batch_size``.
    """

    name: ClassVar[str] = "supernet"
    metric: ClassVar[str] = "miou"

    def __init__(self, supernet: Mapping[str, Any], evaluation: Mapping[str, Any]) -> None:
        self.settings, self.evaluation = dict(supernet), dict(evaluation)
        self.ckpt, self.epochs = self.settings.pop("ckpt", None), int(self.settings.pop("epochs", 4))
        self.module: SupernetModule | None = None
        self.trainer: L.Trainer | None = None

    def uses_data(self, data: DictConfig | None) -> bool:
        return True

    def num_classes(self, run: RunSetup) -> int:
        """The dataset's classes."""
        return int(run.datamodule.metadata()["num_classes"])

    def space(self, run: RunSetup) -> tuple[SearchSpace, dict[str, Any]]:
        """The supernet's space and its sub-networks' options (loads or trains the supernet)."""
        self.module, self.trainer = prepare_supernet(run.cfg, self.settings, self.ckpt, self.epochs,
                                                     run.datamodule, run.out)
        return self.module.space, {"output_stride": int(self.module.hparams.output_stride)}

    def objective(self, run: RunSetup, space: SearchSpace, network: Mapping[str, Any],
                  costs: Mapping[str, Objective], budgets: Mapping[str, float]) -> Objective:
        """:class:`SupernetMIoU` on the run's data."""
        assert self.module is not None, "call space() first"
        return supernet_miou(self.module, run.datamodule, self.evaluation, run.seed, run.device)

    def context(self, run: RunSetup) -> dict[str, Any]:
        assert self.module is not None, "call space() first"
        return {"evaluation": self.evaluation, "supernet_weights_sha1": weights_sha1(self.module.supernet)}

    def report(self) -> dict[str, Any]:
        """The checkpoint the scores came from."""
        ckpt = self.ckpt or (checkpoint_paths(self.trainer).get("last_ckpt") if self.trainer else None)
        return {"supernet_ckpt": ckpt}

    def loggers(self) -> list[Any]:
        """The loggers of the supernet training run in this process (none when loaded)."""
        return list(self.trainer.loggers) if self.trainer is not None else []


class ProxyScoring:
    """A zero-cost proxy on one batch (``batch``: ``inputs`` auto | random | data, ``num_classes`` without
    data, ``batch_size``, ``resolution`` [H, W], ``saswot_calibration_archs``); saswot normalised by
    ``normalize`` (avt: the paper's min/max; rank) over random architectures within the fixed budgets.

    A ``proxy`` ending in ``.yaml`` is a proxy file (:mod:`segnas.proxies.proxy_file`, e.g.
    ``experiments/saswot_proxy_evolution/best_proxy.yaml``; absolute or relative to the launch directory): it
    scores TransNAS-Bench-101 networks (17 classes) with its own protocol (batch, resolution, seed, BN quirk),
    whatever ``batch`` says; its costs are counted at TNB's 256 x 256.

    Args:
        proxy: a name of :func:`segnas.proxies.available`, or a proxy file.
        options: the proxy's keyword options (e.g. ``{loss_reduction: image}`` for saswot).
        normalize: saswot's normalisation.
        batch: the scoring batch settings.
    """

    name: ClassVar[str] = "proxy"
    metric: ClassVar[str] = "score"

    def __init__(self, proxy: str = "saswot", options: Mapping[str, Any] | None = None, normalize: str = "avt",
                 batch: Mapping[str, Any] | None = None) -> None:
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"score.normalize must be one of {list(NORMALIZATIONS)}, got {normalize!r}")
        self.proxy, self.normalize = str(proxy), normalize
        self.file = load_proxy_file(to_absolute_path(self.proxy)) if is_proxy_file(self.proxy) else None
        if self.file is not None and options:
            raise ValueError(f"score.options: the proxy file {self.proxy} takes none (its definition and protocol "
                             "are in the file)")
        self.options = {} if self.file is not None else check_options(self.proxy, options, "score.options")
        self.batch = dict(batch or {})

    def uses_data(self, data: DictConfig | None) -> bool:
        return self.file is None and resolve_inputs(str(self.batch["inputs"]), data) == "data"

    def space(self, run: RunSetup) -> tuple[SearchSpace, dict[str, Any]]:
        return space_of(run.cfg), {}

    def num_classes(self, run: RunSetup) -> int:
        """The scored networks' classes: the dataset's with data inputs, else ``batch.num_classes`` (a proxy
        file: TNB's 17)."""
        if self.file is not None:
            return transnas.NUM_CLASSES
        if self.uses_data(run.cfg.get("data")):
            return int(run.datamodule.metadata()["num_classes"])
        return int(self.batch["num_classes"])

    def cost_input(self) -> list[int]:
        """The default cost input without data: one image at the batch's resolution (a proxy file: TNB's)."""
        if self.file is not None:
            return [1, 3, *transnas.INPUT_SIZE]
        return [1, 3, *(int(v) for v in self.batch["resolution"])]

    def objective(self, run: RunSetup, space: SearchSpace, network: Mapping[str, Any],
                  costs: Mapping[str, Objective], budgets: Mapping[str, float]) -> ProxyScore | ProxyFileScore:
        if self.file is not None:
            return proxy_file_objective(self.file, network)
        return proxy_objective(self.proxy, self.options, self.normalize, self.batch, run, space, network,
                               costs, budgets)

    def context(self, run: RunSetup) -> dict[str, Any]:
        if self.file is not None:
            return {"proxy_file": self.file.context()}
        return {"proxy_batch": self.batch, "proxy_options": resolved_options(self.proxy, self.options)}

    def report(self) -> dict[str, Any]:
        return {"proxy_file": str(self.file.path)} if self.file is not None else {}

    def loggers(self) -> list[Any]:
        return []


class StandaloneScoring:
    """mIoU (%) after ``epochs`` epochs of training each network from scratch (``optim``, ``trainer``)."""

    name: ClassVar[str] = "standalone"
    metric: ClassVar[str] = "miou"

    def __init__(self, epochs: int = 2) -> None:
        self.epochs = int(epochs)

    def uses_data(self, data: DictConfig | None) -> bool:
        return True

    def num_classes(self, run: RunSetup) -> int:
        """The dataset's classes."""
        return int(run.datamodule.metadata()["num_classes"])

    def space(self, run: RunSetup) -> tuple[SearchSpace, dict[str, Any]]:
        return space_of(run.cfg), {}

    def objective(self, run: RunSetup, space: SearchSpace, network: Mapping[str, Any],
                  costs: Mapping[str, Objective], budgets: Mapping[str, float]) -> StandaloneMIoU:
        return standalone_miou(run.cfg, run.datamodule, run.out / "standalone", space.key, self.epochs, **network)

    def context(self, run: RunSetup) -> dict[str, Any]:
        return {"optim": to_container(run.cfg.optim), "trainer": trainer_context(run.cfg.trainer)}

    def report(self) -> dict[str, Any]:
        return {}

    def loggers(self) -> list[Any]:
        return []


def space_of(cfg: DictConfig) -> SearchSpace:
    """The ``space`` group's space (``hydra.utils.instantiate``)."""
    return instantiate(cfg.space, _convert_="all")


def proxy_objective(proxy: str, options: Mapping[str, Any], normalize: str, batch: Mapping[str, Any],
                    run: RunSetup, space: SearchSpace, network: Mapping[str, Any], costs: Mapping[str, Objective],
                    budgets: Mapping[str, float], cache: str = "saswot_avt.jsonl") -> ProxyScore:
    """A :class:`ProxyScore` of ``build_network(genotype, **network)`` on the ``batch`` settings' batch; saswot
    is calibrated (``normalize``) on ``batch["saswot_calibration_archs"]`` random architectures within
    ``budgets`` (costs from ``costs``), cached in ``run.out / cache``."""
    data = run.cfg.get("data")
    inputs_kind = resolve_inputs(str(batch["inputs"]), data)
    num_classes = int(run.datamodule.metadata()["num_classes"]) if inputs_kind == "data" \
        else int(batch["num_classes"])
    build = builder(num_classes, **network)
    inputs, targets, _ = scoring_batch(data, inputs_kind, int(batch["batch_size"]),
                                       tuple(int(v) for v in batch["resolution"]), num_classes, run.seed)
    kwargs = dict(options)
    if proxy == "saswot":
        kwargs["ranges"] = saswot_ranges(space, build, costs, budgets, inputs, targets, batch, run, cache,
                                         kwargs)
        kwargs["normalize"] = normalize
    return ProxyScore(proxy, build, inputs, targets, kwargs, run.seed)


def proxy_file_objective(proxy_file: ProxyFile, network: Mapping[str, Any]) -> ProxyFileScore:
    """A :class:`ProxyFileScore` of ``build_network(genotype, 17, **network)`` (the BN quirk as the file's
    protocol says, where the network has one) on the protocol's batch."""
    protocol = proxy_file.protocol
    options = {**network, **({"bn_quirk": protocol.bn_quirk} if "bn_quirk" in network else {})}
    size = (protocol.resolution, protocol.resolution)
    inputs, targets, _ = scoring_batch(None, protocol.inputs, protocol.batch_size, size, transnas.NUM_CLASSES,
                                       protocol.seed)
    return ProxyFileScore(proxy_file, builder(transnas.NUM_CLASSES, **options), inputs, targets)


def saswot_ranges(space: SearchSpace, build: Builder, costs: Mapping[str, Objective],
                  budgets: Mapping[str, float], inputs: torch.Tensor, targets: torch.Tensor,
                  batch: Mapping[str, Any], run: RunSetup, cache: str, options: Mapping[str, Any]) -> Any:
    """saswot's calibration over random architectures of ``space`` within ``budgets`` (cached)."""
    sample_rng = np.random.default_rng(run.seed + 1)

    def sample_model(rng: Any) -> torch.nn.Module:
        for _ in range(1000):
            genotype = space.sample(sample_rng)
            if all(costs[m](genotype) <= b for m, b in budgets.items()):
                torch.manual_seed(rng.randrange(2**31))
                return build(genotype)
        raise ValueError(f"saswot calibration: no architecture within the budgets {budgets} in 1000 draws")

    cost_input = getattr(costs.get("macs_g"), "input_shape", None)
    within = f"|budgets={json.dumps(dict(budgets), sort_keys=True)}@{list(cost_input or [])}" if budgets else ""
    return calibrate_cached(sample_model, int(batch["saswot_calibration_archs"]), inputs, targets,
                            space=f"search-{space.name}{within}", cache=run.out / cache, seed=run.seed, **options)


def prepare_supernet(cfg: DictConfig, settings: Mapping[str, Any], ckpt: str | None, epochs: int,
                     datamodule: SegmentationDataModule, out: Path) -> tuple[SupernetModule, L.Trainer | None]:
    """The supernet of ``ckpt``, or one trained now into ``out/checkpoints`` for ``epochs`` (resumed from there
    when the folder already holds a checkpoint) by a one-process trainer: a multi-process (DDP) supernet is
    trained by ``stage=supernet`` first."""
    if ckpt:
        log.info("Loading supernet %s", ckpt)
        read_checkpoint(ckpt, "supernet")
        return SupernetModule.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True), None
    module = build_supernet_module(cfg, settings, datamodule.metadata())
    trainer = build_trainer(cfg, max_epochs=epochs)
    if trainer.world_size > 1:
        raise ValueError(f"trainer.devices={trainer.num_devices} x trainer.num_nodes={trainer.num_nodes}: the "
                         f"{cfg.stage.name} stage trains its supernet in one process; train it on several with "
                         "stage=supernet trainer=ddp|ddp_cpu first and pass score.supernet.ckpt=<its last.ckpt>")
    log.info("No supernet checkpoint given: training one for %d epochs", epochs)
    fit(cfg, trainer, module, datamodule, out, "supernet")
    return module, trainer


SAMPLING_KEYS = ("sampling", "sandwich_random", "inplace_distill")


def build_supernet_module(cfg: DictConfig, settings: Mapping[str, Any], metadata: dict[str, Any]) -> SupernetModule:
    """The supernet LightningModule of ``cfg.space`` merged with ``settings["space_overrides"]``, trained with
    ``settings["module"]`` and the path sampling of ``settings`` (``sampling``, ``sandwich_random``,
    ``inplace_distill``)."""
    overrides = settings.get("space_overrides") or {}
    space_config = {**plain(cfg.space), **overrides}
    sampling = {k: settings[k] for k in SAMPLING_KEYS if k in settings}
    return SupernetModule(space_config=space_config, num_classes=metadata["num_classes"],
                          ignore_index=metadata["ignore_index"], seed=int(cfg.seed), **dict(settings["module"]),
                          **sampling)


def supernet_miou(module: SupernetModule, datamodule: SegmentationDataModule, evaluation: Mapping[str, Any],
                  seed: int, device: torch.device) -> SupernetMIoU:
    """Supernet mIoU after BN recalibration on ``evaluation["recalibration_images"]`` random training images
    (fixed augmentation), on the first ``evaluation["val_images"]`` validation images."""
    meta = datamodule.metadata()
    datamodule.setup("fit")
    rng = np.random.default_rng(seed)
    n_train, n_val = len(datamodule.train_set), len(datamodule.val_set)
    batch_size = int(evaluation["batch_size"])
    recal_idx = rng.choice(n_train, size=min(int(evaluation["recalibration_images"]), n_train), replace=False)
    recal = load_batches(datamodule.train_set, sorted(recal_idx.tolist()), batch_size, seed)
    val = load_batches(datamodule.val_set, range(min(int(evaluation["val_images"]), n_val)), batch_size)
    return SupernetMIoU(module.supernet.to(device), recal, val, meta["num_classes"], meta["ignore_index"])


def standalone_miou(cfg: DictConfig, datamodule: SegmentationDataModule, folder: Path, key: Callable[[Any], str],
                    epochs: int, **network_options: Any) -> StandaloneMIoU:
    """mIoU after ``epochs`` epochs of training each network from scratch (``cfg.optim``, ``cfg.trainer``
    without checkpoints, loggers, model summaries or progress bars, the run's seed), networks built by
    ``build_network(**network_options)``."""
    meta = datamodule.metadata()

    def module(genotype: Any) -> SegmentationModule:
        return SegmentationModule(
            net_config={"_target_": "segnas.models.build_network", "genotype": genotype.to_dict(),
                        **network_options},
            num_classes=meta["num_classes"], class_names=meta["class_names"], ignore_index=meta["ignore_index"],
            **to_container(cfg.optim),
        )

    def trainer(root: Path) -> L.Trainer:
        return instantiate(cfg.trainer, max_epochs=epochs, logger=False, callbacks=[], enable_checkpointing=False,
                           enable_model_summary=False, enable_progress_bar=False, default_root_dir=str(root))

    lightning_banners_once()  # one banner per run, not one per trained network
    return StandaloneMIoU(module, trainer, datamodule, folder, key, int(cfg.seed))


def builder(num_classes: int, **options: Any) -> Builder:
    """``genotype -> network`` with ``num_classes`` outputs and the given ``build_network`` options."""
    return functools.partial(build_network, num_classes=num_classes, **options)
