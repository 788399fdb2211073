"""Proxies computed without data or from the shared pass (definitions as in NASLib / foresight).

Per-weight measures sum over every element of every scored layer (``nn.Conv2d`` / ``nn.Linear``).
"""

from __future__ import annotations

import numpy as np
import torch

from segnas.metrics.complexity import count_macs_params, count_params
from segnas.proxies.registry import Context, NotApplicable, register
from segnas.proxies.stats import FISHER, JACOBIAN, NWOT, WEIGHT_GRADS, scored_layers

_JACOV_EPS = 1e-5


@register("params")
def params(ctx: Context) -> float:
    """Number of parameters (all of them, scored layer or not)."""
    return float(count_params(ctx.model))


@register("flops")
def flops(ctx: Context) -> float:
    """MACs of one sample (batch 1, the batch's C, H, W) as counted by fvcore."""
    macs, _ = count_macs_params(ctx.model, (1, *ctx.inputs.shape[1:]))
    return float(macs)


@register("l2_norm")
def l2_norm(ctx: Context) -> float:
    """Sum over scored layers of the Frobenius norm of the weight (no data)."""
    return float(sum(layer.weight.detach().norm() for layer in scored_layers(ctx.model)))


@register("grad_norm", needs=[WEIGHT_GRADS])
def grad_norm(ctx: Context) -> float:
    """Sum over scored layers of ``||dL/dW||_2`` (per-layer norms, not the global norm)."""
    return float(sum(g.norm() for g in ctx.require_stats().grads))


@register("snip", needs=[WEIGHT_GRADS])
def snip(ctx: Context) -> float:
    """Connection sensitivity ``sum |W * dL/dW|``."""
    stats = ctx.require_stats()
    return float(sum((w * g).abs_().sum() for w, g in zip(stats.weights, stats.grads, strict=True)))


@register("plain", needs=[WEIGHT_GRADS])
def plain(ctx: Context) -> float:
    """Signed ``sum W * dL/dW``."""
    stats = ctx.require_stats()
    return float(sum((w * g).sum() for w, g in zip(stats.weights, stats.grads, strict=True)))


@register("fisher", needs=[FISHER])
def fisher(ctx: Context) -> float:
    """Channel Fisher ``F_k = 0.5 mean_n (sum_hw a dL/da)^2`` broadcast to the channel's weights.

    I.e. ``sum_layers fan_in * sum_k F_k`` (fan_in = weights per output channel), as NASLib sums it.
    """
    stats = ctx.require_stats()
    return float(sum(fan * f.abs().sum() for fan, f in zip(stats.fan_in, stats.fisher, strict=True)))


@register("nwot", needs=[NWOT])
def nwot(ctx: Context) -> float:
    """``log|det K_H|`` of the ReLU binary-code kernel (Mellor et al. 2021, v2)."""
    kernel = ctx.require_stats().nwot_kernel
    assert kernel is not None
    return float(torch.linalg.slogdet(kernel).logabsdet)


def _jacobian(ctx: Context) -> np.ndarray:
    jac = ctx.require_stats().jacobian
    assert jac is not None
    return jac.double().cpu().numpy()


@register("jacov", needs=[JACOBIAN])
def jacov(ctx: Context) -> float:
    """``-sum_i [log(v_i + k) + 1/(v_i + k)]`` over the eigenvalues of the input-Jacobian correlation."""
    corr = np.corrcoef(_jacobian(ctx))
    if not np.isfinite(corr).all():
        raise ValueError("Jacobian correlation undefined (a sample's Jacobian is constant, e.g. zero)")
    eig = np.linalg.eigvalsh(corr)
    return float(-np.sum(np.log(eig + _JACOV_EPS) + 1.0 / (eig + _JACOV_EPS)))


@register("epe_nas", needs=[JACOBIAN])
def epe_nas(ctx: Context) -> float:
    """EPE-NAS: per-class Jacobian correlation scores; defined only for one class label per sample."""
    labels = ctx.targets
    if labels.ndim != 1:
        raise NotApplicable(
            f"epe_nas needs one class label per sample, got targets of shape {tuple(labels.shape)}"
        )
    jac = _jacobian(ctx)
    num_classes = ctx.require_stats().output_shape[-1]
    per_class = {}
    for label in labels.unique().tolist():
        corr = np.atleast_2d(np.corrcoef(jac[(labels == label).cpu().numpy()]))
        score = float(np.sum(np.log(np.abs(corr) + _JACOV_EPS)))
        per_class[label] = score / len(corr) if num_classes > 100 else score
    values = np.array(list(per_class.values()))
    if num_classes <= 100:
        return float(np.abs(values).sum())
    return float(np.abs(values[:, None] - values[None, :]).sum() / len(values))
