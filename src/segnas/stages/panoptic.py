"""``stage=panoptic``: Panoptic-DeepLab-style heads on a searched HyCTAS backbone -> fit -> predictions in
COCO panoptic format (JSON + PNGs), PQ/SQ/RQ (all, things, stuff, per class) by :func:`pq_compute` and the
instance AP of the thing segments (COCO mask AP, :func:`instance_ap`)."""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig

from segnas.callbacks.drop_path import DropPathSchedule
from segnas.callbacks.history import write_rows_csv
from segnas.callbacks.latency import LatencyMonitor
from segnas.lit.fitting import build_datamodule, build_trainer, checkpoint_paths, fit
from segnas.lit.panoptic import PanopticModule, dataset_categories, panoptic_genotype, write_predictions
from segnas.metrics.instance_ap import instance_ap
from segnas.metrics.panoptic import pq_compute, pq_percent
from segnas.utils.config import to_container
from segnas.utils.run import output_dir

log = logging.getLogger(__name__)
OPTIM_KEYS = ("lr", "momentum", "weight_decay", "nesterov", "poly_power", "warmup_steps", "warmup_factor")


def build_module(cfg: DictConfig, categories: list[dict[str, Any]], ignore_index: int) -> PanopticModule:
    """The :class:`PanopticModule` of ``cfg.stage`` (net, loss, targets, post-processing) + ``cfg.optim``."""
    stage = cfg.stage
    net_config = {
        "_target_": "segnas.models.panoptic_deeplab.build_panoptic_hyctas",
        "genotype": panoptic_genotype(stage.genotype).to_dict(),
        "filter_multiplier": int(stage.filter_multiplier),
        "instance_width": stage.instance_width,
        "head_width": int(stage.head_width),
    }
    optim = {k: v for k, v in to_container(cfg.optim).items() if k in OPTIM_KEYS}
    return PanopticModule(
        net_config,
        categories,
        ignore_index,
        **optim,
        **to_container(stage.loss),
        **to_container(stage.targets),
        **to_container(stage.postprocess),
        grad_clip_norm=stage.grad_clip_norm,
    )


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train, write COCO-panoptic predictions of the validation split and return PQ/SQ/RQ and AP in %."""
    out = output_dir(cfg)
    stage = cfg.stage
    datamodule = build_datamodule(cfg)
    categories = dataset_categories(datamodule)
    module = build_module(cfg, categories, datamodule.metadata()["ignore_index"])
    trainer = build_trainer(cfg, [DropPathSchedule(stage.drop_path_rate, stage.drop_path_interval)])
    fit(cfg, trainer, module, datamodule, out, "panoptic")

    files = write_predictions(module, datamodule, categories, out)
    pq = pq_compute(*files)
    names = {c["id"]: c["name"] for c in categories}
    per_class = {
        names[k]: {m: (100 * v if m in ("pq", "sq", "rq") else v) for m, v in row.items()}
        for k, row in pq["per_class"].items()
    }
    write_rows_csv(out / "per_class_pq.csv", [{"class": k, **v} for k, v in per_class.items()])
    ap = instance_ap(*files, max_dets=int(stage.instance_max_dets))
    results: dict[str, Any] = {
        **pq_percent(pq),
        "AP": ap["AP"],
        "AP50": ap["AP50"],
        "AP75": ap["AP75"],
        "per_class": per_class,
        "per_class_ap": {names[k]: v for k, v in ap["per_class"].items()},
        "val/mIoU": float(trainer.callback_metrics.get("val/mIoU", float("nan"))),
        "predictions": {"json": str(files[2]), "folder": str(files[3])},
        "ground_truth": {"json": str(files[0]), "folder": str(files[1])},
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        **checkpoint_paths(trainer),
    }
    for callback in trainer.callbacks:
        if isinstance(callback, LatencyMonitor) and callback.last:
            results["fps"] = callback.last["fps"]
    log.info(
        "PQ %.2f (things %.2f, stuff %.2f), SQ %.2f, RQ %.2f, AP %.2f, mIoU %.2f",
        results["PQ"],
        results["PQ_th"],
        results["PQ_st"],
        results["SQ"],
        results["RQ"],
        results["AP"],
        results["val/mIoU"],
    )
    return results
