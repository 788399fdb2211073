"""Lightning wiring from a composed config: the data module, the trainer with its callbacks and loggers, and
a fit that resumes from the run folder's checkpoint (usable by any stage or script with a Hydra config)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig

from segnas.callbacks.csv_log import ResumingCSVLogger
from segnas.data.base import SegmentationDataModule
from segnas.lit.inference import read_checkpoint
from segnas.metrics import count_macs_params
from segnas.models import deploy_net
from segnas.utils import Refused
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


# The trainer settings that fix a run's length in optimizer steps; a checkpoint records them, and a run with
# other values never resumes it where its learning-rate schedule was laid out over that length (a poly decay).
SCHEDULE_KEY = "segnas_schedule"
SCHEDULE_SETTINGS = ("max_epochs", "max_steps", "limit_train_batches", "accumulate_grad_batches")


def schedule_settings(trainer: L.Trainer) -> dict[str, Any]:
    """The trainer's :data:`SCHEDULE_SETTINGS`."""
    return {key: getattr(trainer, key) for key in SCHEDULE_SETTINGS}


class RecordSchedule(L.Callback):
    """Saves :func:`schedule_settings` in every checkpoint (under :data:`SCHEDULE_KEY`)."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint[SCHEDULE_KEY] = schedule_settings(trainer)


def _has_length(state: Any) -> bool:
    """Whether a learning-rate scheduler's state (nested for a sequence of schedulers) has a total length."""
    if isinstance(state, dict):
        return "total_iters" in state or any(_has_length(v) for v in state.values())
    return isinstance(state, list | tuple) and any(_has_length(v) for v in state)


def check_schedule(checkpoint: dict[str, Any], trainer: L.Trainer, ckpt: str) -> None:
    """Refuse to resume ``ckpt`` (read as ``checkpoint``) with other :data:`SCHEDULE_SETTINGS` than it recorded
    when its learning-rate schedule has a length (a poly decay: its learning rate reached 0 at the old end, so
    training it further gives no run of the new length); the message names the keys. A schedule without a length
    (a per-epoch exponential decay) continues: a longer run is the uninterrupted run of the new length."""
    saved = checkpoint.get(SCHEDULE_KEY)
    if saved is None or not _has_length(checkpoint.get("lr_schedulers")):
        return
    changed = {k: v for k, v in schedule_settings(trainer).items() if saved.get(k, v) != v}
    if changed:
        given = ", ".join(f"trainer.{k}={v} (it was trained with {saved[k]})" for k, v in changed.items())
        raise Refused(f"cannot resume {ckpt} with {given}: its learning-rate schedule decays over its own "
                      "length, so the result would match no uninterrupted run. Train the new length from the "
                      "start (another hydra.run.dir, or resume=false), or keep the old settings")


def build_trainer(cfg: DictConfig, extra_callbacks: list[L.Callback] | None = None, **overrides: Any) -> L.Trainer:
    """The Lightning trainer of ``cfg.trainer`` with ``cfg.callbacks`` and ``cfg.logger`` (a CSV logger
    continues the run folder's ``metrics.csv`` when the run resumes) and :class:`RecordSchedule`."""
    callbacks = _instantiate_group(cfg.get("callbacks")) + list(extra_callbacks or []) + [RecordSchedule()]
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
    ``weights_only=True``; refused with other schedule settings, :func:`check_schedule`); a fit that leaves non-finite weights fails whatever the callbacks; when the fit ran no validation (the checkpoint had already reached the budget),
    the final weights are validated, so the metrics a stage reports are theirs."""
    ckpt = resolve_ckpt(cfg, out_dir)
    if ckpt is not None:
        check_schedule(read_checkpoint(ckpt, kind, resumable=True), trainer, ckpt)
    check_checkpoint_folders(trainer)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
    bad = non_finite(module.state_dict())
    if bad:
        raise RuntimeError(f"training diverged: non-finite weights in {bad[:5]} after the fit (lower the learning "
                           "rate); no result is reported")
    if "val/mIoU" not in trainer.callback_metrics:
        trainer.validate(module, datamodule=datamodule, verbose=False)


def check_checkpoint_folders(trainer: L.Trainer) -> None:
    """Create the folders the trainer's checkpoints go to and write a file into each, so a folder that cannot
    hold them fails before training, naming it (it failed after the first epoch with "No such file"); the
    folders the check created are removed again (a run that fails later, e.g. on its data, leaves none)."""
    for folder in sorted({Path(c.dirpath) for c in trainer.checkpoint_callbacks if getattr(c, "dirpath", None)}):
        try:
            created = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
            for path in created:
                path.rmdir()
        except OSError as err:
            raise OSError(err.errno, f"the checkpoint folder {folder} cannot hold checkpoints ({err.strerror}): "
                                     "make it a writable folder or use another run folder (hydra.run.dir=...)"
                          ) from err


def checkpoint_paths(trainer: L.Trainer) -> dict[str, str]:
    """Paths of the best (monitored) and last (unmonitored) checkpoints of the trainer's ModelCheckpoints."""
    paths: dict[str, str] = {}
    for ckpt in trainer.checkpoint_callbacks:
        if isinstance(ckpt, ModelCheckpoint) and ckpt.best_model_path:
            paths["best_ckpt" if ckpt.monitor else "last_ckpt"] = ckpt.best_model_path
    return paths


def deployed_cost(net: torch.nn.Module, input_shape: tuple[int, ...], speed: DictConfig) -> dict[str, Any]:
    """MACs, params, latency and FPS of the deployed ``net`` (no auxiliary heads) at ``input_shape``, timed
    with the ``speed`` protocol (its settings are in ``latency``)."""
    deployed = deploy_net(net).eval()
    macs, params = count_macs_params(deployed, input_shape)
    latency = instantiate(speed).measure(deployed, input_shape)
    return {
        "macs_g": macs / 1e9,
        "flops_g": macs / 1e9,  # deprecated alias of macs_g (GMACs), removed in 0.3
        "params_m": params / 1e6,
        "latency_ms": latency.median_ms,
        "fps": latency.fps,
        "latency": latency.as_dict(),
        "input": "x".join(str(s) for s in input_shape[-2:]),
    }
