"""Wiring every stage shares: data, callbacks, loggers, trainer, checkpoint lookup, the supernet."""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf

from segnas.callbacks.csv_log import ResumingCSVLogger
from segnas.data.base import SegmentationDataModule
from segnas.lit.inference import read_checkpoint
from segnas.lit.segmentation import SegmentationModule
from segnas.lit.supernet import SupernetModule
from segnas.proxies import get as get_proxy
from segnas.search.objectives import StandaloneMIoU, SupernetMIoU, load_batches
from segnas.utils.loggers import build_loggers
from segnas.utils.quiet import lightning_banners_once

log = logging.getLogger(__name__)


def instantiate_unwrapped(node: DictConfig, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, re-raising our own clear input errors instead of Hydra's wrapper."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        if isinstance(err.__cause__, FileNotFoundError | ValueError | TypeError):
            raise err.__cause__ from None
        raise


def build_datamodule(cfg: DictConfig) -> SegmentationDataModule:
    """Instantiate ``cfg.data``."""
    return instantiate_unwrapped(cfg.data, _convert_="all")


def _instantiate_group(group: DictConfig | None) -> list[Any]:
    if not group:
        return []
    if not isinstance(group, DictConfig):
        raise TypeError(f"expected a mapping of name -> config, got {type(group).__name__}")
    return [instantiate(node, _convert_="all") for node in group.values() if node is not None and "_target_" in node]


def build_trainer(cfg: DictConfig, extra_callbacks: list[L.Callback] | None = None, **overrides: Any) -> L.Trainer:
    """The Lightning trainer of ``cfg.trainer`` with ``cfg.callbacks`` and ``cfg.logger`` (a CSV logger
    continues the run folder's ``metrics.csv`` when the run resumes)."""
    callbacks = _instantiate_group(cfg.get("callbacks")) + list(extra_callbacks or [])
    loggers = [ResumingCSVLogger.continuing(lg) if type(lg) is CSVLogger else lg for lg in build_loggers(cfg)]
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, _convert_="all", **overrides)


def resolve_ckpt(cfg: DictConfig, out_dir: Path) -> str | None:
    """``cfg.ckpt_path`` if set (must exist), else this run folder's ``last.ckpt`` when ``cfg.resume``."""
    if cfg.get("ckpt_path"):
        path = Path(cfg.ckpt_path)
        if not path.is_file():
            raise FileNotFoundError(f"ckpt_path={path} does not exist")
        return str(path)
    last = out_dir / "checkpoints" / "last.ckpt"
    if cfg.get("resume", True) and last.is_file():
        log.info("Resuming from %s", last)
        return str(last)
    return None


def fit(cfg: DictConfig, trainer: L.Trainer, module: L.LightningModule, datamodule: L.LightningDataModule,
        out_dir: Path, kind: str) -> None:  # fmt: skip
    """``trainer.fit`` resumed from :func:`resolve_ckpt` (checked to be a ``kind`` checkpoint, loaded with
    ``weights_only=True``); when the fit ran no validation (the checkpoint had already reached the budget),
    the final weights are validated, so the metrics a stage reports are theirs."""
    ckpt = resolve_ckpt(cfg, out_dir)
    if ckpt is not None:
        read_checkpoint(ckpt, kind, resumable=True)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
    if "val/mIoU" not in trainer.callback_metrics:
        trainer.validate(module, datamodule=datamodule, verbose=False)


def to_container(node: DictConfig) -> dict[str, Any]:
    """A resolved plain-dict copy of a config node."""
    return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]


def checkpoint_paths(trainer: L.Trainer) -> dict[str, str]:
    """Paths of the best (monitored) and last (unmonitored) checkpoints of the trainer's ModelCheckpoints."""
    paths: dict[str, str] = {}
    for ckpt in trainer.checkpoint_callbacks:
        if isinstance(ckpt, ModelCheckpoint) and ckpt.best_model_path:
            paths["best_ckpt" if ckpt.monitor else "last_ckpt"] = ckpt.best_model_path
    return paths


def proxy_options(proxy: str, options: DictConfig | None, key: str) -> dict[str, Any]:
    """``options`` (config ``key``) as keyword arguments of ``proxy``; an unknown proxy or keyword fails
    naming it."""
    accepted = set(inspect.signature(get_proxy(proxy).fn).parameters) - {"ctx", "ranges"}
    given = to_container(options) if options else {}
    unknown = sorted(set(given) - accepted)
    if unknown:
        raise ValueError(f"{key}: {unknown} are not options of proxy {proxy!r} (it accepts {sorted(accepted)})")
    return given


def device_of(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_supernet_module(
    cfg: DictConfig, settings: DictConfig, metadata: dict[str, Any]
) -> SupernetModule:
    """The supernet LightningModule of ``cfg.space`` merged with ``settings.space_overrides`` and trained
    with ``settings.module`` (the ``supernet`` config block)."""
    overrides = settings.get("space_overrides")
    space_config = {**to_container(cfg.space), **(to_container(overrides) if overrides else {})}
    return SupernetModule(
        space_config=space_config,
        num_classes=metadata["num_classes"],
        ignore_index=metadata["ignore_index"],
        seed=int(cfg.seed),
        **to_container(settings.module),
    )


def prepare_supernet(
    cfg: DictConfig, datamodule: SegmentationDataModule, out: Path
) -> tuple[SupernetModule, L.Trainer | None]:
    """The supernet of ``cfg.stage.supernet.ckpt``, or one trained now into ``out/checkpoints`` for
    ``cfg.stage.supernet.epochs`` (resumed from there when the folder already holds a checkpoint) by a
    one-process trainer: a multi-process (DDP) supernet is trained by ``stage=supernet`` first."""
    settings = cfg.stage.supernet
    if settings.ckpt:
        log.info("Loading supernet %s", settings.ckpt)
        read_checkpoint(settings.ckpt, "supernet")
        return SupernetModule.load_from_checkpoint(settings.ckpt, map_location="cpu", weights_only=True), None
    module = build_supernet_module(cfg, settings, datamodule.metadata())
    trainer = build_trainer(cfg, max_epochs=int(settings.epochs))
    if trainer.world_size > 1:
        raise ValueError(f"trainer.devices={trainer.num_devices} x trainer.num_nodes={trainer.num_nodes}: the "
                         f"{cfg.stage.name} stage trains its supernet in one process; train it on several with "
                         "stage=supernet trainer=ddp|ddp_cpu first and pass stage.supernet.ckpt=<its last.ckpt>")
    log.info("No supernet checkpoint given: training one for %d epochs", settings.epochs)
    fit(cfg, trainer, module, datamodule, out, "supernet")
    return module, trainer


def weights_sha1(module: torch.nn.Module) -> str:
    """SHA-1 of a module's state (parameter and buffer names and bytes): what an archive's scores depend on."""
    digest = hashlib.sha1()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def supernet_miou(
    cfg: DictConfig, module: SupernetModule, datamodule: SegmentationDataModule, device: torch.device
) -> SupernetMIoU:
    """Supernet mIoU after BN recalibration on ``stage.evaluation.recalibration_images`` random training
    images (fixed augmentation), on the first ``stage.evaluation.val_images`` validation images."""
    ev, meta = cfg.stage.evaluation, datamodule.metadata()
    datamodule.setup("fit")
    rng = np.random.default_rng(int(cfg.seed))
    n_train, n_val = len(datamodule.train_set), len(datamodule.val_set)
    recal_idx = rng.choice(n_train, size=min(int(ev.recalibration_images), n_train), replace=False)
    recal = load_batches(datamodule.train_set, sorted(recal_idx.tolist()), int(ev.batch_size), int(cfg.seed))
    val = load_batches(datamodule.val_set, range(min(int(ev.val_images), n_val)), int(ev.batch_size))
    return SupernetMIoU(module.supernet.to(device), recal, val, meta["num_classes"], meta["ignore_index"])


def standalone_miou(
    cfg: DictConfig, datamodule: SegmentationDataModule, folder: Path, key: Callable[[Any], str],
    epochs: int, **network_options: Any,
) -> StandaloneMIoU:
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


def scoring_batch(
    data: DictConfig | None, inputs: str, batch_size: int, size: tuple[int, int], num_classes: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One batch for zero-cost proxies: images, labels and their class count.

    ``inputs="random"``: N(0, 1) images with uniform labels over ``num_classes`` (seeded);
    ``inputs="data"``: the first training batch of the ``data`` config at ``size`` and its class count.
    """
    height, width = size
    if inputs == "random":
        gen = torch.Generator().manual_seed(seed)
        images = torch.randn(batch_size, 3, height, width, generator=gen)
        return images, torch.randint(0, num_classes, (batch_size, height, width), generator=gen), num_classes
    if inputs == "data":
        if data is None:
            raise ValueError("stage.inputs=data needs a `data` config group (e.g. data=synthetic)")
        datamodule = instantiate(data, batch_size=batch_size, crop_size=[height, width], _convert_="all")
        datamodule.setup("fit")
        batch = next(iter(datamodule.train_dataloader()))
        return batch["image"], batch["mask"], int(datamodule.metadata()["num_classes"])
    raise ValueError(f"stage.inputs must be 'random' or 'data', got {inputs!r}")


def transnas_scoring_batch(cfg: DictConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The proxy batch of the TransNAS-Bench-101 stages from ``cfg.stage`` (``inputs``, ``batch_size``,
    ``resolution``) and ``cfg.seed``; data classes the benchmark's 17-way head lacks are ignored (255)."""
    from segnas.spaces import transnas  # the benchmark's head only matters to these stages

    res = int(cfg.stage.resolution)
    images, labels, _ = scoring_batch(
        cfg.get("data"),
        str(cfg.stage.inputs),
        int(cfg.stage.batch_size),
        (res, res),
        transnas.NUM_CLASSES,
        int(cfg.seed),
    )
    labels = labels.clone()
    labels[labels >= transnas.NUM_CLASSES] = 255
    return images, labels
