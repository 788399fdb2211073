"""``stage=train``: fit a segmenter on a dataset, keep the best/last checkpoints, report mIoU and speed."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from omegaconf import DictConfig

from segnas.callbacks.history import write_rows_csv
from segnas.callbacks.latency import LatencyMonitor
from segnas.lit.fitting import build_datamodule, build_trainer, checkpoint_paths, fit
from segnas.lit.inference import load_checkpoint
from segnas.lit.segmentation import SegmentationModule
from segnas.utils.config import to_container
from segnas.utils.run import output_dir

log = logging.getLogger(__name__)


def build_module(cfg: DictConfig, datamodule) -> SegmentationModule:
    """The segmentation LightningModule of ``cfg.model`` + ``cfg.optim`` (+ teacher) for ``datamodule``."""
    teacher = None
    teacher_ckpt = cfg.stage.get("teacher_ckpt")
    if teacher_ckpt:
        teacher = load_checkpoint(teacher_ckpt).net
        log.info("Distilling from teacher %s", teacher_ckpt)
    meta = datamodule.metadata()
    return SegmentationModule(
        net_config=to_container(cfg.model),
        num_classes=meta["num_classes"],
        class_names=meta["class_names"],
        ignore_index=meta["ignore_index"],
        teacher=teacher,
        **to_container(cfg.optim),
    )


def run(cfg: DictConfig, extra_callbacks: list[L.Callback] | None = None) -> dict[str, Any]:
    """Train, then return final/best val mIoU (%), per-class IoU, latency and checkpoint paths."""
    out = output_dir(cfg)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule)
    trainer = build_trainer(cfg, extra_callbacks)
    fit(cfg, trainer, module, datamodule, out, "segmentation")

    names = datamodule.metadata()["class_names"]
    per_class = dict(zip(names, module.last_per_class, strict=True)) if module.last_per_class else {}
    write_rows_csv(out / "per_class_iou.csv", [{"class": k, "iou": v} for k, v in per_class.items()])
    results: dict[str, Any] = {
        "val/mIoU": float(trainer.callback_metrics.get("val/mIoU", float("nan"))),
        "val/mIoU_best": module.best_miou,
        "val/pixel_acc": float(trainer.callback_metrics.get("val/pixel_acc", float("nan"))),
        "val/per_class_iou": per_class,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        **checkpoint_paths(trainer),
    }
    for callback in trainer.callbacks:
        if isinstance(callback, LatencyMonitor) and callback.last:
            results["latency"] = callback.last
            results["fps"] = callback.last["fps"]
    log.info("val/mIoU %.2f (best %.2f)", results["val/mIoU"], results["val/mIoU_best"])
    return results
