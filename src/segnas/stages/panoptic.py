"""``stage=panoptic``: Panoptic-DeepLab-style heads on a searched HyCTAS backbone -> fit -> predictions in
COCO panoptic format (JSON + PNGs) and PQ/SQ/RQ (all, things, stuff, per class) by :func:`pq_compute`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from segnas.callbacks.drop_path import DropPathSchedule
from segnas.callbacks.history import write_rows_csv
from segnas.callbacks.latency import LatencyMonitor
from segnas.data.base import SegmentationDataModule
from segnas.lit.fitting import build_datamodule, build_trainer, checkpoint_paths, fit
from segnas.lit.panoptic import PanopticModule, ground_truth_segments
from segnas.metrics.panoptic import pq_compute, pq_percent
from segnas.models.panoptic_postprocess import PanopticPredictionWriter
from segnas.spaces import HyCTASGenotype, as_genotype
from segnas.utils.config import to_container
from segnas.utils.run import output_dir

log = logging.getLogger(__name__)
OPTIM_KEYS = ("lr", "momentum", "weight_decay", "nesterov", "poly_power", "warmup_steps", "warmup_factor")


def dataset_categories(datamodule: SegmentationDataModule) -> list[dict[str, Any]]:
    """COCO-style categories in train-id order: from the dataset's metadata, or (synthetic) from its class
    names and ``thing_classes``."""
    meta = datamodule.metadata()
    if "categories" in meta:
        by_id = {int(c["id"]): c for c in meta["categories"]}
        return [
            {"id": int(i), "name": by_id[int(i)]["name"], "isthing": int(by_id[int(i)]["isthing"])}
            for i in meta["category_ids"]
        ]
    things = getattr(datamodule, "thing_classes", None)
    if things is None:
        raise ValueError(
            f"stage=panoptic needs a dataset with instance labels (data=synthetic, cityscapes_panoptic, "
            f"coco_panoptic); {type(datamodule).__name__} has no thing classes"
        )
    return [
        {"id": i, "name": name, "isthing": int(i in set(things))}
        for i, name in enumerate(meta["class_names"])
    ]


def panoptic_genotype(spec: Any) -> HyCTASGenotype:
    """The HyCTAS genotype of ``stage.genotype``; other spaces are refused (the instance decoder needs the
    HyCTAS trunk's multi-branch features)."""
    genotype = as_genotype(spec)
    if not isinstance(genotype, HyCTASGenotype):
        raise ValueError(
            f"stage=panoptic builds its heads on a HyCTAS backbone; stage.genotype={spec} is a "
            f"{genotype.space_name} genotype (supported space: hyctas)"
        )
    return genotype


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


def image_names(dataset: Any) -> list[tuple[Any, str]]:
    """``(image_id, file stem)`` per validation sample, from the dataset's records when it has them."""
    records = getattr(getattr(dataset, "dataset", dataset), "records", None)
    if records:
        return [(r.image_id, Path(r.image).stem) for r in records[: len(dataset)]]
    return [(i, f"{i:06d}") for i in range(len(dataset))]


@torch.no_grad()
def write_predictions(
    module: PanopticModule, datamodule: SegmentationDataModule, categories: list[dict[str, Any]], out: Path
) -> tuple[Path, Path, Path, Path]:
    """Predict the validation split and write predictions and ground truth in COCO panoptic format.

    Returns ``(gt_json, gt_folder, pred_json, pred_folder)``. The ground truth is written from the loaded
    validation samples (at ``data.image_scale``), so it has the predictions' size.
    """
    names = image_names(datamodule.val_set)
    pred = PanopticPredictionWriter(out, categories, "panoptic_pred")
    gt = PanopticPredictionWriter(out, categories, "panoptic_gt")
    module.eval()
    hp = module.hparams
    position = 0
    for batch in datamodule.val_dataloader():
        outputs = module(batch["image"].to(module.device))
        for i in range(batch["image"].shape[0]):
            image_id, stem = names[position]
            position += 1
            gt_ids, gt_segments = ground_truth_segments(
                batch["mask"][i],
                batch["instance"][i],
                module.thing_ids,
                module.category_ids,
                hp.ignore_index,
                hp.label_divisor,
            )
            gt.add(image_id, stem, gt_ids, gt_segments)
            pred.add(image_id, stem, *module.predict_panoptic(outputs, i))
    return gt.write(), gt.folder, pred.write(), pred.folder


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train, write COCO-panoptic predictions of the validation split and return PQ/SQ/RQ in %."""
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
    results: dict[str, Any] = {
        **pq_percent(pq),
        "per_class": per_class,
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
        "PQ %.2f (things %.2f, stuff %.2f), SQ %.2f, RQ %.2f, mIoU %.2f",
        results["PQ"],
        results["PQ_th"],
        results["PQ_st"],
        results["SQ"],
        results["RQ"],
        results["val/mIoU"],
    )
    return results
