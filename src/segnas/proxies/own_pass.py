"""Proxies whose definitions need passes of their own: grasp, synflow (raw and log), zen.

Each runs on a deep copy of the model, so the caller's model is never modified.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from segnas.proxies.registry import Context, register
from segnas.proxies.stats import scored_layers, training_copy


@register("grasp")
def grasp(ctx: Context) -> float:
    """GraSP as in NASLib/foresight: ``sum -W * (H g)`` with ``g = dL/dW`` and ``H`` the loss Hessian.

    The sign is flipped relative to the GraSP paper (as in those implementations); T = 1.
    """
    net = training_copy(ctx.model)
    weights = [layer.weight for layer in scored_layers(net) if layer.weight.requires_grad]
    loss = ctx.loss_fn(net(ctx.inputs), ctx.targets)
    grads = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
    used = [(w, g) for w, g in zip(weights, grads, strict=True) if g is not None]
    z = sum((g.detach() * g).sum() for _, g in used)
    hess_grads = torch.autograd.grad(z, [w for w, _ in used], allow_unused=True)
    return float(
        sum((-w.detach() * hg).sum() for (w, _), hg in zip(used, hess_grads, strict=True) if hg is not None)
    )


def _strip_batchnorm(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, nn.Identity())
        else:
            _strip_batchnorm(child)


@register("synflow")
def synflow(ctx: Context) -> float:
    """SynFlow: BN removed, float64, |all parameters and buffers|, all-ones input of batch 1,
    ``R = sum(outputs)``; score ``sum |W * dR/dW|`` (raw, not log-transformed).
    """
    net = copy.deepcopy(ctx.model).double().eval()
    _strip_batchnorm(net)
    with torch.no_grad():
        for tensor in [*net.parameters(), *net.buffers()]:
            tensor.abs_()
    net.zero_grad(set_to_none=True)
    ones = torch.ones(1, *ctx.inputs.shape[1:], dtype=torch.float64, device=ctx.inputs.device)
    net(ones).sum().backward()
    return float(
        sum(
            (layer.weight.detach() * layer.weight.grad).abs().sum()
            for layer in scored_layers(net)
            if layer.weight.grad is not None
        )
    )


def naslib_log(value: float) -> float:
    """NASLib's post-processing of synflow: ``log(s)`` for ``s > 0``, ``-log(-s)`` for ``s < 0``, 0 stays 0."""
    if value == 0:
        return 0.0
    return math.log(value) if value > 0 else -math.log(-value)


@register("synflow_log")
def synflow_log(ctx: Context) -> float:
    """:func:`synflow` as NASLib reports it (:func:`naslib_log`); same ranking, another Pearson."""
    return naslib_log(synflow(ctx))


def gaussian_init(net: nn.Module, generator: torch.Generator) -> None:
    """Zen-NAS re-init: Conv2d/Linear weights N(0, 1), biases 0; BN/GN weight 1, bias 0, fresh stats."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                m.weight.normal_(0.0, 1.0, generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.modules.batchnorm._BatchNorm | nn.GroupNorm):
                if m.weight is not None:
                    m.weight.fill_(1.0)
                    m.bias.zero_()
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.reset_running_stats()


def _head_input(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The input of the last scored layer run in ``net(x)`` (TNB: the 32-channel map before the head)."""
    seen: list[torch.Tensor] = []
    hooks = [m.register_forward_pre_hook(lambda _, a: seen.append(a[0])) for m in scored_layers(net)]
    try:
        net(x)
    finally:
        for h in hooks:
            h.remove()
    if not seen:
        raise RuntimeError("zen: the model ran no Conv2d/Linear layer")
    return seen[-1]


@register("zen")
def zen(ctx: Context, mixup_gamma: float = 1e-2, seed: int = 0) -> float:
    """Zen-score: ``log E_n sum |phi(x) - phi(x + gamma eps)| + sum_BN log sqrt(mean running_var)``.

    Gaussian re-init, x and eps ~ N(0, 1) (``seed``), phi = input of the last Conv2d/Linear, train mode.
    """
    net = training_copy(ctx.model)
    generator = torch.Generator(device=ctx.inputs.device).manual_seed(seed)
    gaussian_init(net, generator)
    shape, device = ctx.inputs.shape, ctx.inputs.device
    x = torch.randn(shape, generator=generator, device=device)
    eps = torch.randn(shape, generator=generator, device=device)
    with torch.no_grad():
        delta = (_head_input(net, x) - _head_input(net, x + mixup_gamma * eps)).abs()
        score = math.log(float(delta.flatten(1).sum(1).mean()))
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                score += math.log(math.sqrt(float(m.running_var.mean())))
    return score
