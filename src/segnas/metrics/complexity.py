"""Multiply-accumulates (MACs) and parameter counts, the way segmentation papers report "FLOPs".

fvcore counts one fused multiply-add as one flop, i.e. MACs. It skips
``aten::scaled_dot_product_attention``; we add a handle that counts both attention matmuls
(``Q K^T`` and ``A V``), so self-attention operators are not reported as free.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from math import prod
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

with warnings.catch_warnings():  # fvcore scripts a loss at import time with a deprecated torch.jit API
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import get_shape

log = logging.getLogger(__name__)


def _sdpa_macs(inputs: list[Any], outputs: list[Any]) -> int:
    """MACs of scaled dot-product attention: ``Q K^T`` plus ``softmax(.) V``."""
    q, k, v = (get_shape(t) for t in inputs[:3])
    batch = prod(q[:-2])
    len_q, dim_qk = q[-2], q[-1]
    len_kv, dim_v = k[-2], v[-1]
    return batch * len_q * len_kv * (dim_qk + dim_v)


def _zero(inputs: list[Any], outputs: list[Any]) -> int:
    return 0


# Ops that cost no multiply-accumulates (or whose cost is negligible), silenced explicitly.
FREE_OPS = (
    "aten::add", "aten::add_", "aten::mul", "aten::mul_", "aten::relu", "aten::relu_", "aten::sigmoid",
    "aten::softmax", "aten::gelu", "aten::div", "aten::sub", "aten::rsub", "aten::max_pool2d",
    "aten::dropout", "aten::hardtanh", "aten::hardtanh_", "aten::silu", "aten::silu_", "aten::mean",
    "aten::sum", "aten::exp", "aten::pow", "aten::sqrt", "aten::clamp", "aten::clamp_min", "aten::neg",
    "aten::cat", "aten::pad", "aten::constant_pad_nd", "aten::flatten", "aten::contiguous",
    "aten::floor_divide", "aten::expand_as", "aten::zeros_like", "aten::ones_like", "aten::fill_",
    "aten::bernoulli_", "aten::empty_like", "aten::scalar_tensor", "aten::where", "aten::lt", "aten::gt",
)


def flop_analysis(model: nn.Module, args: tuple[torch.Tensor, ...]) -> FlopCountAnalysis:
    """fvcore's analysis of ``model(*args)`` with segnas's counting rules: attention matmuls counted, the
    ops of :data:`FREE_OPS` free, no warnings (call under ``torch.no_grad()`` in eval mode)."""
    analysis = FlopCountAnalysis(model, args)
    analysis.set_op_handle("aten::scaled_dot_product_attention", _sdpa_macs)
    analysis.set_op_handle(**dict.fromkeys(FREE_OPS, _zero))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return analysis


def count_macs(model: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...]) -> int:
    """Total MACs of one forward pass of ``model`` on ``inputs`` (eval mode, no grad)."""
    was_training = model.training
    model.eval()
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    try:
        with torch.no_grad():
            analysis = flop_analysis(model, args)
            total = int(analysis.total())
            skipped = analysis.unsupported_ops()
            if skipped:
                log.debug("MAC count skipped ops: %s", dict(skipped))
    finally:
        model.train(was_training)
    return total


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def count_macs_params(model: nn.Module, input_shape: Sequence[int]) -> tuple[int, int]:
    """MACs (attention matmuls included) and params of ``model`` for a random input of ``input_shape``."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.randn(*input_shape, device=device)
    return count_macs(model, x), count_params(model)


class _AttentionMacs(TorchFunctionMode):
    """Sums the MACs of ``F.scaled_dot_product_attention`` calls (``Q K^T`` and ``A V``)."""

    def __init__(self) -> None:
        super().__init__()
        self.macs = 0

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func is F.scaled_dot_product_attention:
            q, k, v = args[:3]
            self.macs += q.shape[:-1].numel() * k.shape[-2] * (q.shape[-1] + v.shape[-1])
        return func(*args, **(kwargs or {}))


def attention_macs(model: nn.Module, shape: Sequence[int]) -> int:
    """MACs of the attention matmuls of one eval forward of ``model`` on a random input of ``shape`` (what
    counters such as thop, which count no matmul, leave out)."""
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    counter = _AttentionMacs()
    with torch.no_grad(), counter:
        model(torch.randn(*shape, device=param.device))
    model.train(was_training)
    return counter.macs
