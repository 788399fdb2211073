"""``stage=evaluate``: mIoU, per-class IoU, MACs, params and FPS of a trained checkpoint (any network a
``stage=train`` or ``stage=retrain`` checkpoint holds; costs without auxiliary heads)."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from hydra.utils import instantiate
from omegaconf import DictConfig

from segnas.callbacks.history import write_rows_csv
from segnas.lit.fitting import build_datamodule, deployed_cost
from segnas.lit.inference import load_checkpoint
from segnas.metrics.latency import speed_label
from segnas.utils.run import output_dir

log = logging.getLogger(__name__)


def plot_per_class(per_class: dict[str, float], path: Path) -> None:
    """Horizontal bar chart of per-class IoU."""
    names = list(per_class)
    values = [0.0 if math.isnan(v) else v for v in per_class.values()]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(names) + 1))
    ax.barh(names, values, color="tab:blue")
    ax.set_xlabel("IoU (%)")
    ax.set_xlim(0, 100)
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown_table(results: dict[str, Any]) -> str:
    """A Markdown summary of the evaluation."""
    split = results["split"]
    lines = [
        "| metric | value |",
        "|---|---|",
        f"| {split} mIoU (%) | {results[f'{split}/mIoU']:.2f} |",
        f"| MACs (G) @ {results['input']} | {results['macs_g']:.3f} |",
        f"| params (M) | {results['params_m']:.3f} |",
        f"| latency (ms, median) | {results['latency_ms']:.2f} |",
        f"| FPS ({speed_label(results['latency'])}) | {results['fps']:.1f} |",
        "",
        "| class | IoU (%) |",
        "|---|---|",
    ]
    lines += [f"| {name} | {iou:.2f} |" for name, iou in results[f"{split}/per_class_iou"].items()]
    return "\n".join(lines) + "\n"


def run(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate the checkpoint on ``stage.split`` of ``cfg.data`` (default: val) and measure its cost.

    ``stage.split=test`` scores data no search or training has seen (CamVid ``test/`` + ``testannot/``);
    a split whose files are absent fails before the checkpoint is run.
    """
    out = output_dir(cfg)
    split = str(cfg.stage.split)
    module = load_checkpoint(cfg.ckpt_path)
    datamodule = build_datamodule(cfg)
    datamodule.val_split = split
    meta = datamodule.metadata()
    if meta["num_classes"] != module.hparams.num_classes:
        raise ValueError(
            f"checkpoint {cfg.ckpt_path} predicts {module.hparams.num_classes} classes but data "
            f"{cfg.data._target_} has {meta['num_classes']}"
        )
    datamodule.setup("validate")
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[], enable_checkpointing=False, _convert_="all")
    trainer.validate(module, datamodule=datamodule, verbose=False)
    per_class = dict(zip(meta["class_names"], module.last_per_class, strict=True))

    shape = datamodule.eval_input_shape(cfg.stage.input_size)
    results = {
        "split": split,
        f"{split}/mIoU": float(trainer.callback_metrics["val/mIoU"]),
        f"{split}/pixel_acc": float(trainer.callback_metrics["val/pixel_acc"]),
        f"{split}/per_class_iou": per_class,
        **deployed_cost(module.net, shape, cfg.speed),
        "ckpt_path": str(cfg.ckpt_path),
    }
    write_rows_csv(out / "per_class_iou.csv", [{"class": k, "iou": v} for k, v in per_class.items()])
    plot_per_class(per_class, out / "per_class_iou.png")
    (out / "evaluation.md").write_text(markdown_table(results))
    log.info("%s/mIoU %.2f, %.3f GMACs, %.3f M params, %.1f FPS", split, results[f"{split}/mIoU"], results["macs_g"],
             results["params_m"], results["fps"])
    return results
