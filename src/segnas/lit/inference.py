"""Test-time inference: trained checkpoints, single scale or multi-scale with horizontal flip
(probabilities averaged)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segnas.lit.segmentation import SegmentationModule
from segnas.utils.integrity import HASH_KEY, non_finite, weights_sha256

# Checkpoint kinds: the hyper-parameters that identify them and the stage that writes them.
CHECKPOINT_KINDS: dict[str, tuple[frozenset[str], str]] = {
    "segmentation": (frozenset({"net_config", "num_classes"}), "stage=train or stage=retrain"),
    "panoptic": (frozenset({"net_config", "categories"}), "stage=panoptic"),
    "supernet": (frozenset({"space_config", "num_classes"}), "stage=supernet"),
}
LIGHTNING_KEY = "pytorch-lightning_version"  # in every checkpoint Lightning writes
RESUME_KEYS = ("loops", "optimizer_states")  # what a checkpoint needs to resume training from


def read_checkpoint(path: str | Path, kind: str, resumable: bool = False) -> dict[str, Any]:
    """The Lightning checkpoint at ``path`` (loaded on the CPU with ``weights_only=True``: tensors and plain
    containers only, no code runs), checked to be a ``kind`` checkpoint (:data:`CHECKPOINT_KINDS`) whose
    weights match their saved hash and are finite, with the training state to resume from when ``resumable``. Errors name the file and what was expected."""
    path = Path(path)
    keys, writer = CHECKPOINT_KINDS[kind]
    expected = f"expected a {kind} checkpoint written by {writer}"
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; {expected}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # arbitrary bytes fail anywhere in the unpickler (KeyError, IndexError, ...)
        raise ValueError(f"checkpoint {path} cannot be read (truncated, not a PyTorch file, or holding objects "
                         f"other than tensors and plain containers): {type(err).__name__}: {err}; {expected}"
                         ) from err
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict) or LIGHTNING_KEY not in ckpt:
        raise ValueError(f"checkpoint {path} is not a Lightning checkpoint (no state_dict or {LIGHTNING_KEY}); "
                         f"{expected}")
    hparams = ckpt.get("hyper_parameters") or {}
    if not keys <= set(hparams):
        raise ValueError(f"checkpoint {path} lacks the hyper-parameters {sorted(keys - set(hparams))} "
                         f"(it has {sorted(hparams)}); {expected}")
    state = ckpt["state_dict"]
    if HASH_KEY in ckpt and weights_sha256(state) != ckpt[HASH_KEY]:
        raise ValueError(f"checkpoint {path} is corrupt: its weights do not match the hash saved with them "
                         "(changed on disk); restore it from a copy or retrain")
    bad = non_finite(state)
    if bad:
        raise ValueError(f"checkpoint {path} holds non-finite weights ({bad[:5]}): a diverged run; {expected}")
    missing = [k for k in RESUME_KEYS if resumable and k not in ckpt]
    if missing:
        raise ValueError(f"checkpoint {path} holds no training state {missing} to resume from (saved with "
                         f"weights only?); {expected}")
    return ckpt


def load_checkpoint(path: str | Path | None) -> SegmentationModule:
    """Load a ``stage=train`` or ``stage=retrain`` checkpoint on the CPU (the network config travels inside)."""
    if not path:
        raise ValueError(
            "this stage needs ckpt_path=PATH (a checkpoint written by stage=train or stage=retrain)"
        )
    read_checkpoint(path, "segmentation")
    return SegmentationModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)


def scaled_size(size: Sequence[int], scale: float, multiple: int = 1) -> tuple[int, int]:
    """``size`` times ``scale``, rounded to the nearest multiple of ``multiple`` (at least ``multiple``)."""
    height, width = (max(multiple, round(s * scale / multiple) * multiple) for s in size)
    return height, width


@torch.no_grad()
def multi_scale_probs(
    net: nn.Module,
    images: Tensor,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    size_multiple: int = 32,
) -> Tensor:
    """Class probabilities ``(B, C, H, W)`` at the input size, averaged over ``scales`` (and flips).

    Each scaled input is resized bilinearly to a multiple of ``size_multiple`` (scale 1.0 keeps the input
    as is); the network's logits are resized back, soft-maxed and averaged.
    """
    if not scales:
        raise ValueError("multi_scale_probs needs at least one scale")
    height, width = images.shape[-2:]
    total = None
    for scale in scales:
        size = (height, width) if scale == 1.0 else scaled_size((height, width), scale, size_multiple)
        x = (
            images
            if size == (height, width)
            else F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        )
        views = [(x, False), (x.flip(-1), True)] if flip else [(x, False)]
        for view, flipped in views:
            logits = net(view)
            if flipped:
                logits = logits.flip(-1)
            logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
            probs = logits.softmax(1)
            total = probs if total is None else total + probs
    return total / (len(scales) * (2 if flip else 1))
