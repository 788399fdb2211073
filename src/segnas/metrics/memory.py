"""Peak GPU memory of an inference forward."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def peak_memory_mb(model: nn.Module, shape: Sequence[int], device: torch.device) -> float | None:
    """Peak CUDA memory (MB) of one inference forward of ``model`` on a random input of ``shape``, above the
    memory allocated before it (the weights); None on a device other than CUDA."""
    if device.type != "cuda":
        return None
    model = model.to(device).eval()
    x = torch.randn(*shape, device=device)
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode():
        model(x)
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) / 2**20
