"""Lightning wiring from a composed config: the data module, the trainer with its callbacks and loggers, and
a fit that resumes from the run folder's checkpoint (usable by any stage or script with a Hydra config)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig

from segnas.callbacks.csv_log import ResumingCSVLogger
from segnas.data.base import SegmentationDataModule
from segnas.lit.inference import read_checkpoint
from segnas.utils.integrity import non_finite
from segnas.utils.loggers import build_loggers

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
    ``weights_only=True``); a fit that leaves non-finite weights fails whatever the callbacks; when the fit ran no validation (the checkpoint had already reached the budget),
    the final weights are validated, so the metrics a stage reports are theirs."""
    ckpt = resolve_ckpt(cfg, out_dir)
    if ckpt is not None:
        read_checkpoint(ckpt, kind, resumable=True)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
    bad = non_finite(module.state_dict())
    if bad:
        raise RuntimeError(f"training diverged: non-finite weights in {bad[:5]} after the fit (lower the learning "
                           "rate); no result is reported")
    if "val/mIoU" not in trainer.callback_metrics:
        trainer.validate(module, datamodule=datamodule, verbose=False)


def checkpoint_paths(trainer: L.Trainer) -> dict[str, str]:
    """Paths of the best (monitored) and last (unmonitored) checkpoints of the trainer's ModelCheckpoints."""
    paths: dict[str, str] = {}
    for ckpt in trainer.checkpoint_callbacks:
        if isinstance(ckpt, ModelCheckpoint) and ckpt.best_model_path:
            paths["best_ckpt" if ckpt.monitor else "last_ckpt"] = ckpt.best_model_path
    return paths
