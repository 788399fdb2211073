"""Pieces every training-like stage uses: data, callbacks, loggers, trainer, checkpoint lookup."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from segnas.data.base import SegmentationDataModule

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
    """The Lightning trainer of ``cfg.trainer`` with ``cfg.callbacks`` and ``cfg.logger``."""
    callbacks = _instantiate_group(cfg.get("callbacks")) + list(extra_callbacks or [])
    loggers = _instantiate_group(cfg.get("logger"))
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
