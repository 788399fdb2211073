"""One way to fingerprint what a result depends on: JSON data, tensors, module weights and files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch


def data_sha1(data: Any, length: int | None = None) -> str:
    """SHA-1 of ``data`` as canonical JSON (sorted keys; non-JSON values by ``str``), optionally cut."""
    digest = hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    return digest[:length] if length else digest


def text_sha1(text: str, length: int | None = None) -> str:
    """SHA-1 of a string, optionally cut to ``length`` hex digits."""
    digest = hashlib.sha1(text.encode()).hexdigest()
    return digest[:length] if length else digest


def tensor_sha1(tensor: torch.Tensor, length: int | None = None) -> str:
    """SHA-1 of a tensor's bytes (on the CPU, contiguous), optionally cut."""
    digest = hashlib.sha1(tensor.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
    return digest[:length] if length else digest


def weights_sha1(module: torch.nn.Module) -> str:
    """SHA-1 of a module's state (parameter and buffer names and bytes): what an archive's scores depend on."""
    digest = hashlib.sha1()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
