"""``stage=predict``: a Cityscapes test-server submission from a trained checkpoint.

Every ``ROOT/leftImg8bit/{split}/<city>/<city>_<seq>_<frame>_leftImg8bit.png`` is predicted at its original
resolution (``stage.scales`` other than 1.0 resize the input; the probabilities come back at full size) and
written as ``<out>/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png``: 8-bit Cityscapes label ids (train ids
mapped back, :func:`train_to_label_ids`), the format of the benchmark's pixel-level semantic labeling task.
Where the split has ``gtFine/*_labelIds.png`` (val), the written files are scored against them (mIoU of the
19 classes, read back from disk: the check that the submission holds what the network predicts).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image

from segnas.data.base import read_image, read_label
from segnas.data.cityscapes import CITYSCAPES_CLASSES, label_to_train_lut, list_images, train_to_label_ids
from segnas.data.transforms import eval_transform
from segnas.lit.inference import load_checkpoint, multi_scale_probs
from segnas.metrics.segmentation import confusion_matrix, miou
from segnas.models import deploy_net
from segnas.utils.run import output_dir

log = logging.getLogger(__name__)


@torch.no_grad()
def predict_label_ids(net: torch.nn.Module, image: np.ndarray, device: str, scales: list[float],
                      flip: bool) -> np.ndarray:
    """Cityscapes label ids (H, W) uint8 of an RGB image (H, W, 3) at its own resolution."""
    normalized = eval_transform()(image=image)["image"]
    tensor = torch.from_numpy(normalized).permute(2, 0, 1)[None].float().to(device)
    train_ids = multi_scale_probs(net, tensor, scales, flip).argmax(1)[0]
    return train_to_label_ids(train_ids.cpu().numpy().astype(np.uint8))


def ground_truth(image: Path, root: Path, split: str) -> Path:
    """``gtFine/{split}/<city>/<frame>_gtFine_labelIds.png`` of a leftImg8bit image (it may not exist)."""
    name = image.name.replace("_leftImg8bit.png", "_gtFine_labelIds.png")
    return root / "gtFine" / split / image.parent.name / name


def run(cfg: DictConfig) -> dict[str, Any]:
    """Write the label-id PNGs of ``stage.split`` of ``stage.root``; score them where ground truth exists."""
    stage = cfg.stage
    if not stage.root:
        raise ValueError("stage=predict needs the Cityscapes root: data=cityscapes data.root=PATH (or stage.root=PATH)")
    module = load_checkpoint(cfg.get("ckpt_path"))
    if module.hparams.num_classes != len(CITYSCAPES_CLASSES):
        raise ValueError(f"checkpoint {cfg.ckpt_path} predicts {module.hparams.num_classes} classes; a Cityscapes "
                         f"submission needs the {len(CITYSCAPES_CLASSES)} train classes")
    device = stage.device or ("cuda" if torch.cuda.is_available() else "cpu")
    net = deploy_net(module.net).eval().to(device)
    root, split = Path(stage.root), str(stage.split)
    images = list_images(root, split)[: stage.max_images]
    folder = output_dir(cfg) / split
    lut = torch.from_numpy(label_to_train_lut())
    confmat = torch.zeros(len(CITYSCAPES_CLASSES), len(CITYSCAPES_CLASSES), dtype=torch.long)
    scored = 0
    for image_path in images:
        label_ids = predict_label_ids(net, read_image(image_path), device, list(stage.scales), bool(stage.flip))
        path = folder / image_path.parent.name / image_path.name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(label_ids).save(path)
        truth = ground_truth(image_path, root, split)
        if truth.is_file():
            written = torch.from_numpy(read_label(path).astype(np.int64))
            confmat += confusion_matrix(lut[written], lut[torch.from_numpy(read_label(truth).astype(np.int64))],
                                        len(CITYSCAPES_CLASSES))
            scored += 1
    results: dict[str, Any] = {"split": split, "images": len(images), "folder": str(folder),
                               "ckpt_path": str(cfg.ckpt_path), "scales": list(stage.scales), "flip": bool(stage.flip)}
    if scored:
        mean_iou, per_class = miou(confmat)
        results |= {"scored_images": scored, f"{split}/mIoU": mean_iou,
                    f"{split}/per_class_iou": dict(zip(CITYSCAPES_CLASSES, per_class, strict=True))}
    log.info("Wrote %d label-id PNGs to %s%s", len(images), folder,
             f" ({split} mIoU {results[f'{split}/mIoU']:.2f} on {scored})" if scored else "")
    return results
