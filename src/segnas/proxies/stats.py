"""One shared forward/backward pass collecting what the data-dependent proxies read.

Which statistics are gathered is chosen by ``needs`` (a set of the names below), so a whole group of
proxies costs one forward pass and one loss backward:

* ``weight_grads``: weights ``W`` and ``dL/dW`` of every scored layer (``nn.Conv2d`` / ``nn.Linear``;
  ``nn.ConvTranspose2d`` is not a ``Conv2d`` and is not scored, as in NASLib and foresight).
* ``fisher``: per scored layer and output channel ``F_k = 0.5 * mean_n (sum_hw a * dL/da)^2``.
* ``nwot``: the NWOT kernel ``K_H = sum over ReLU-like modules of (N_A - Hamming distance)`` of the
  binary codes ``1[pre-activation > 0]`` (every torch activation module whose name contains ``ReLU``).
* ``jacobian``: ``J[n] = d(sum of outputs of sample n)/d(input n)``, flattened (a second backward of the
  same forward graph).

The pass runs on a deep copy of the model in train mode (BN uses batch statistics), so the caller's
model, its gradients and BN buffers are left untouched.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

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


@dataclass
class PassStats:
    """Statistics of one forward/backward pass; fields not requested stay empty/None."""

    output_shape: tuple[int, ...]
    weights: list[torch.Tensor] = field(default_factory=list)
    grads: list[torch.Tensor] = field(default_factory=list)
    fisher: list[torch.Tensor] = field(default_factory=list)
    fan_in: list[int] = field(default_factory=list)
    nwot_kernel: torch.Tensor | None = None
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


def _is_relu_like(module: nn.Module) -> bool:
    """torch's ReLU family (ReLU, LeakyReLU, ReLU6, ...), not user blocks that merely contain one."""
    cls = type(module)
    return cls.__module__.startswith("torch.nn") and "ReLU" in cls.__name__


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
) -> PassStats:
    """Run one forward (and the backward passes ``needs`` asks for) on a copy of ``model``."""
    needs = frozenset(needs)
    unknown = needs - STATISTICS
    if unknown:
        raise ValueError(f"unknown statistics {sorted(unknown)}; known: {sorted(STATISTICS)}")
    loss_fn = loss_fn or default_loss()
    net = training_copy(model)
    layers = scored_layers(net)
    hooks: list[torch.utils.hooks.RemovableHandle] = []
    grad_hooks: list[torch.utils.hooks.RemovableHandle] = []
    fisher = [torch.zeros(()) for _ in layers]
    kernel = torch.zeros(inputs.shape[0], inputs.shape[0], dtype=torch.float64, device=inputs.device)

    if NWOT in needs:

        def nwot_hook(_: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            nonlocal kernel
            with torch.no_grad():
                kernel = kernel + binary_code_kernel((args[0].detach().flatten(1) > 0).float())

        hooks += [m.register_forward_pre_hook(nwot_hook) for m in net.modules() if _is_relu_like(m)]

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
    if NWOT in needs:
        stats.nwot_kernel = kernel
    return stats
