"""``stage=retrain``: a genotype YAML of any space (HyCTAS, FasterSeg) -> standalone network trained with
the HyCTAS paper's recipe (auxiliary heads, scheduled drop path where the network has it, top-k CE,
optional distillation) -> mIoU, MACs, params, FPS."""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig

from segnas.callbacks.drop_path import DropPathSchedule
from segnas.callbacks.history import write_rows_csv
from segnas.data.base import SegmentationDataModule
from segnas.lit.fitting import (
    build_datamodule,
    build_trainer,
    checkpoint_paths,
    deployed_cost,
    fit,
)
from segnas.lit.inference import load_checkpoint
from segnas.lit.retrain import RetrainModule
from segnas.spaces import as_genotype, network_options
from segnas.utils.config import to_container
from segnas.utils.run import output_dir

log = logging.getLogger(__name__)


def net_config(stage: DictConfig) -> dict[str, Any]:
    """The ``build_network`` config of the retrained network, with the genotype inlined (self-contained
    checkpoint) and the stage's options its space accepts (HyCTAS: all; FasterSeg: ``aux_heads``)."""
    if not stage.get("genotype"):
        raise ValueError(
            "stage=retrain needs arch=hyctas_s|hyctas_m|hyctas_l or stage.genotype=PATH "
            "(a genotype YAML written by stage=search or stage=zero_shot_search)"
        )
    genotype = as_genotype(stage.genotype)
    wanted = {
        "filter_multiplier": int(stage.filter_multiplier),
        "output_stride": int(stage.output_stride),
        "aux_heads": stage.aux_weight > 0,
    }
    if stage.get("head", "segnas") != "segnas":  # the reference code's network (HyCTAS model.head=reference)
        wanted["head"] = stage.head
    accepted = network_options(genotype.space_name)
    ignored = sorted(set(wanted) - set(accepted))
    if ignored:
        log.info("A %s network has no %s: those stage settings are ignored", genotype.space_name, ignored)
    options = {k: v for k, v in wanted.items() if k in accepted}
    return {"_target_": "segnas.models.build_network", "genotype": genotype.to_dict(), **options}


def build_module(cfg: DictConfig, datamodule: SegmentationDataModule) -> RetrainModule:
    """The :class:`RetrainModule` of ``cfg.stage`` + ``cfg.optim`` (+ teacher) for ``datamodule``."""
    stage = cfg.stage
    teacher = None
    if cfg.optim.get("distill_weight", 0) > 0 and not stage.get("teacher_ckpt"):
        raise ValueError("optim.distill_weight > 0 needs stage.teacher_ckpt (a stage=train checkpoint of the teacher)")
    if stage.get("teacher_ckpt"):
        teacher = load_checkpoint(stage.teacher_ckpt).net
        log.info("Distilling from teacher %s", stage.teacher_ckpt)
    meta = datamodule.metadata()
    return RetrainModule(
        net_config=net_config(stage),
        num_classes=meta["num_classes"],
        class_names=meta["class_names"],
        ignore_index=meta["ignore_index"],
        teacher=teacher,
        aux_weight=stage.aux_weight,
        eval_scales=list(stage.eval_scales),
        eval_flip=stage.eval_flip,
        **to_container(cfg.optim),
    )


def run(cfg: DictConfig) -> dict[str, Any]:
    """Retrain, then return val mIoU (%) (last, best), per-class IoU, MACs, params, FPS and checkpoints."""
    out = output_dir(cfg)
    stage = cfg.stage
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule)
    schedule = DropPathSchedule(stage.drop_path_rate, stage.drop_path_interval)
    trainer = build_trainer(cfg, [schedule])
    fit(cfg, trainer, module, datamodule, out, "segmentation")

    names = datamodule.metadata()["class_names"]
    per_class = dict(zip(names, module.last_per_class, strict=True)) if module.last_per_class else {}
    write_rows_csv(out / "per_class_iou.csv", [{"class": k, "iou": v} for k, v in per_class.items()])
    results: dict[str, Any] = {
        "val/mIoU": float(trainer.callback_metrics.get("val/mIoU", float("nan"))),
        "val/mIoU_best": module.best_miou,
        "val/per_class_iou": per_class,
        "eval_scales": module.eval_scales,
        "eval_flip": module.eval_flip,
        "space": module.hparams.net_config["genotype"]["space"],
        "net": {k: v for k, v in module.hparams.net_config.items() if k != "genotype"},
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        **deployed_cost(module.net, datamodule.eval_input_shape(stage.input_size), cfg.speed),
        **checkpoint_paths(trainer),
    }
    log.info(
        "val/mIoU %.2f (best %.2f), %.3f GMACs, %.3f M params, %.1f FPS @ %s",
        results["val/mIoU"],
        results["val/mIoU_best"],
        results["macs_g"],
        results["params_m"],
        results["fps"],
        results["input"],
    )
    return results
