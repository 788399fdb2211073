"""What every saved model carries and every load checks: a content hash of its weights and finite values."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch

HASH_KEY = "segnas_weights_sha256"  # beside Lightning's keys in every checkpoint segnas writes


def weights_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors' names, dtypes, shapes and bytes (in the dict's order)."""
    digest = hashlib.sha256()
    for name, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            continue
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def non_finite(state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity."""
    return [name for name, t in state_dict.items()
            if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all())]
