"""One shared forward/backward pass collecting what the data-dependent proxies read.

Which statistics are gathered is chosen by ``needs`` (a set of the names below), so a whole group of
proxies costs one forward pass and one loss backward:

* ``weight_grads``: weights ``W`` and ``dL/dW`` of every scored layer (``nn.Conv2d`` / ``nn.Linear``;
  ``nn.ConvTranspose2d`` is not a ``Conv2d`` and is not scored, as in NASLib and foresight).
* ``fisher``: per scored layer and output channel ``F_k = 0.5 * mean_n (sum_hw a * dL/da)^2``.
* ``nwot``: the NWOT kernel ``K_H = sum over ReLU applications of (N_A - Hamming distance)`` of the
  binary codes ``1[pre-activation > 0]``. Every ReLU-family call of the forward is seen, however it is
  made (:class:`ReLUCodes`): ``nn.ReLU`` / ``LeakyReLU`` / ``ReLU6`` / ``PReLU`` / ``RReLU`` modules,
  ``F.relu``, ``torch.relu``, ``Tensor.relu`` and their in-place forms, each call once.
* ``jacobian``: ``J[n] = d(sum of outputs of sample n)/d(input n)``, flattened (a second backward of the
  same forward graph).

The pass runs on a deep copy of the model in train mode (BN uses batch statistics), so the caller's
model, its gradients and BN buffers are left untouched; with ``disposable=True`` (a network built only to be
scored) it runs on the model itself, and only the scored layers' weights get gradients: the same values
(gradients of the other parameters are never read), without the copy and those other gradients.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

WEIGHT_GRADS = "weight_grads"
FISHER = "fisher"
NWOT = "nwot"
JACOBIAN = "jacobian"
STATISTICS = frozenset({WEIGHT_GRADS, FISHER, NWOT, JACOBIAN})

SCORED_LAYERS: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)
_EXACT_COLUMNS = 2**23  # float32 dot products of 0/1 codes are exact below 2**24 terms

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def scored_layers(model: nn.Module) -> list[nn.Module]:
    """The layers per-weight proxies sum over: every ``nn.Conv2d`` and ``nn.Linear``, in module order."""
    return [m for m in model.modules() if isinstance(m, SCORED_LAYERS)]


def default_loss() -> LossFn:
    """Per-pixel (or per-sample) cross-entropy, pixels labelled 255 ignored."""
    return nn.CrossEntropyLoss(ignore_index=255)


def training_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in train mode with no gradients."""
    clone = copy.deepcopy(model)
    clone.train()
    clone.zero_grad(set_to_none=True)
    return clone


def scoring_net(model: nn.Module, disposable: bool) -> nn.Module:
    """The network a pass runs on: :func:`training_copy`, or with ``disposable`` ``model`` itself in train
    mode with no gradients, where only the scored layers' weights require one (the rest of the backward
    computes nothing the statistics read)."""
    if not disposable:
        return training_copy(model)
    model.train()
    model.zero_grad(set_to_none=True)
    scored = {id(layer.weight) for layer in scored_layers(model)}
    for param in model.parameters():
        param.requires_grad_(id(param) in scored)
    return model


@dataclass
class PassStats:
    """Statistics of one forward/backward pass; fields not requested stay empty/None."""

    output_shape: tuple[int, ...]
    weights: list[torch.Tensor] = field(default_factory=list)
    grads: list[torch.Tensor] = field(default_factory=list)
    fisher: list[torch.Tensor] = field(default_factory=list)
    fan_in: list[int] = field(default_factory=list)
    nwot_kernel: torch.Tensor | None = None
    relu_calls: int = 0
    jacobian: torch.Tensor | None = None


def binary_code_kernel(codes: torch.Tensor) -> torch.Tensor:
    """``sum_d [c_i,d == c_j,d]`` for binary codes ``codes`` [N, D], exact, in float64."""
    n, d = codes.shape
    ones = codes.sum(1, dtype=torch.float64)
    same = torch.zeros(n, n, dtype=torch.float64, device=codes.device)
    for start in range(0, d, _EXACT_COLUMNS):
        chunk = codes[:, start : start + _EXACT_COLUMNS]
        same += (chunk @ chunk.T).double()
    # agreements = both 1 + both 0 = c.c + (D - |c_i| - |c_j| + c.c)
    return d - ones[:, None] - ones[None, :] + 2 * same


# the ReLU family as called; a module's forward calls one of these (nn.ReLU6 calls hardtanh(x, 0, 6))
RELU_FUNCTIONS = frozenset({
    F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_,
    F.leaky_relu, torch._C._nn.leaky_relu, torch._C._nn.leaky_relu_,
    F.relu6, torch._C._nn.relu6, torch._C._nn.relu6_,
    torch.prelu, F.rrelu, torch.rrelu, torch.rrelu_,
})  # fmt: skip
CLIPPED_RELU_FUNCTIONS = frozenset({F.hardtanh, torch._C._nn.hardtanh, torch._C._nn.hardtanh_})


def is_relu_call(func: Callable[..., Any], args: tuple, kwargs: Mapping[str, Any]) -> bool:
    """Whether ``func(*args, **kwargs)`` applies a ReLU-family activation (hardtanh only when clipped at 0)."""
    if func in RELU_FUNCTIONS:
        return True
    if func in CLIPPED_RELU_FUNCTIONS:
        return float(args[1] if len(args) > 1 else kwargs.get("min_val", -1.0)) == 0.0
    return False


class ReLUCodes(TorchFunctionMode):
    """While active, hands the sign pattern ``1[x > 0]`` ([N, D], float) of the input of every ReLU-family
    call on a batch of ``batch_size`` samples to ``on_codes``, read before the call (in-place ReLUs
    overwrite it), in call order; ``calls`` counts them.

    A module's own call (e.g. ``nn.ReLU`` -> ``F.relu``) is seen once: torch runs the handler with the mode
    popped, so what the function calls inside is not seen again. Calls on tensors whose first dimension
    is not the batch (e.g. a weight) carry no per-sample code and are skipped.
    """

    def __init__(self, batch_size: int, on_codes: Callable[[torch.Tensor], None]) -> None:
        super().__init__()
        self.batch_size, self.on_codes, self.calls = batch_size, on_codes, 0

    def __torch_function__(
        self, func: Callable[..., Any], types: Any, args: tuple = (), kwargs: Mapping[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if is_relu_call(func, args, kwargs):
            x = args[0] if args else kwargs.get("input")
            if isinstance(x, torch.Tensor) and x.dim() > 0 and x.shape[0] == self.batch_size:
                self.on_codes((x.detach().reshape(self.batch_size, -1) > 0).float())
                self.calls += 1
        return func(*args, **kwargs)


def _channel_sums(act: torch.Tensor, grad: torch.Tensor, conv: bool) -> torch.Tensor:
    prod = act * grad
    if conv:
        return prod.flatten(2).sum(2)
    return prod.reshape(prod.shape[0], -1, prod.shape[-1]).sum(1)


def collect(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: LossFn | None,
    needs: Iterable[str],
    disposable: bool = False,
) -> PassStats:
    """Run one forward (and the backward passes ``needs`` asks for) on a copy of ``model`` (on ``model``
    itself when ``disposable``: :func:`scoring_net`)."""
    needs = frozenset(needs)
    unknown = needs - STATISTICS
    if unknown:
        raise ValueError(f"unknown statistics {sorted(unknown)}; known: {sorted(STATISTICS)}")
    loss_fn = loss_fn or default_loss()
    net = scoring_net(model, disposable)
    layers = scored_layers(net)
    hooks: list[torch.utils.hooks.RemovableHandle] = []
    grad_hooks: list[torch.utils.hooks.RemovableHandle] = []
    fisher = [torch.zeros(()) for _ in layers]
    kernel = torch.zeros(inputs.shape[0], inputs.shape[0], dtype=torch.float64, device=inputs.device)

    relu_codes: ReLUCodes | None = None
    if NWOT in needs:

        def add_codes(codes: torch.Tensor) -> None:
            nonlocal kernel
            kernel = kernel + binary_code_kernel(codes)

        relu_codes = ReLUCodes(inputs.shape[0], add_codes)

    if FISHER in needs:

        def fisher_hook(index: int, conv: bool) -> Callable[..., None]:
            def forward_hook(_: nn.Module, __: tuple, out: torch.Tensor) -> None:
                if not out.requires_grad:
                    return
                act = out.detach()

                def on_grad(grad: torch.Tensor) -> None:
                    sums = _channel_sums(act, grad.detach(), conv)
                    fisher[index] = fisher[index] + 0.5 * sums.pow(2).mean(0)

                grad_hooks.append(out.register_hook(on_grad))

            return forward_hook

        hooks += [
            layer.register_forward_hook(fisher_hook(i, isinstance(layer, nn.Conv2d)))
            for i, layer in enumerate(layers)
        ]

    x = inputs.detach().clone().requires_grad_(JACOBIAN in needs)
    try:
        with relu_codes or contextlib.nullcontext():
            out = net(x)
        stats = PassStats(output_shape=tuple(out.shape))
        if needs & {WEIGHT_GRADS, FISHER}:
            loss_fn(out, targets).backward(retain_graph=JACOBIAN in needs)
        for handle in grad_hooks:
            handle.remove()
        if JACOBIAN in needs:
            (jac,) = torch.autograd.grad(out.sum(), x, allow_unused=True)
            # an output that ignores the input (e.g. a TNB cell of only 'none' edges) has J = 0
            stats.jacobian = (torch.zeros_like(x) if jac is None else jac).detach().flatten(1)
    finally:
        for handle in hooks + grad_hooks:
            handle.remove()

    if WEIGHT_GRADS in needs:
        stats.weights = [layer.weight.detach() for layer in layers]
        stats.grads = [
            layer.weight.grad.detach() if layer.weight.grad is not None else torch.zeros_like(layer.weight)
            for layer in layers
        ]
    if FISHER in needs:
        stats.fisher = fisher
        stats.fan_in = [layer.weight[0].numel() for layer in layers]
    if relu_codes is not None:
        stats.nwot_kernel, stats.relu_calls = kernel, relu_codes.calls
    return stats
