"""Small helpers over composed configs: plain-dict copies and device names."""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf


def to_container(node: DictConfig | None) -> dict[str, Any]:
    """A resolved plain-dict copy of a config node (``{}`` for None)."""
    if node is None:
        return {}
    return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]


def plain(node: DictConfig | None) -> dict[str, Any]:
    """:func:`to_container` without the ``_target_`` key: the settings of an instantiable node as data."""
    return {k: v for k, v in to_container(node).items() if k != "_target_"}


def device_of(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
