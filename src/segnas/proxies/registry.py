"""The proxy registry and :func:`compute`, which scores a set of proxies with one shared pass.

A proxy is a function ``fn(ctx, **options) -> float`` registered with the statistics it reads
(:mod:`segnas.proxies.stats`). :func:`evaluate` gathers the union of those statistics in one
forward/backward pass, then runs each proxy; proxies with their own passes (grasp, synflow, zen)
or none (params, flops, l2_norm) ignore the shared statistics. Failures never propagate: a proxy that
raises, is not applicable or returns NaN/inf gets an invalid :class:`ProxyResult` with the reason.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from segnas.proxies.stats import LossFn, PassStats, collect, default_loss

log = logging.getLogger(__name__)


class NotApplicable(Exception):
    """Raised by a proxy that is undefined for this model or batch (e.g. epe_nas on dense targets)."""


@dataclass(frozen=True)
class Context:
    """What a proxy sees: the caller's model (never modified), the batch, the loss and shared stats."""

    model: nn.Module
    inputs: torch.Tensor
    targets: torch.Tensor
    loss_fn: LossFn
    stats: PassStats | None

    def require_stats(self) -> PassStats:
        """The shared-pass statistics (raises if the pass failed or was not run)."""
        if self.stats is None:
            raise RuntimeError("shared statistics pass was not run")
        return self.stats


@dataclass(frozen=True)
class ProxyResult:
    """A proxy value; ``reason`` says why it is invalid (not applicable, error, NaN/inf)."""

    value: float
    reason: str | None = None

    @property
    def valid(self) -> bool:
        """True when the score is a finite number."""
        return self.reason is None


@dataclass(frozen=True)
class ProxySpec:
    """A registered proxy: its name, the shared statistics it reads and its function."""

    name: str
    needs: frozenset[str]
    fn: Callable[..., float]

    def score(
        self,
        model: nn.Module,
        batch: tuple[torch.Tensor, torch.Tensor],
        loss_fn: LossFn | None = None,
        **options: Any,
    ) -> float:
        """This proxy's score of ``model`` on ``batch = (inputs, targets)``; NaN when invalid."""
        inputs, targets = batch
        return compute([self.name], model, inputs, targets, loss_fn, options={self.name: options})[self.name]


_REGISTRY: dict[str, ProxySpec] = {}


def register(name: str, needs: Iterable[str] = ()) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Decorator registering ``fn(ctx, **options) -> float`` as proxy ``name``."""

    def wrap(fn: Callable[..., float]) -> Callable[..., float]:
        if name in _REGISTRY:
            raise ValueError(f"proxy {name!r} is already registered")
        _REGISTRY[name] = ProxySpec(name, frozenset(needs), fn)
        return fn

    return wrap


def available() -> list[str]:
    """Names of all registered proxies, in registration order."""
    return list(_REGISTRY)


def get(name: str) -> ProxySpec:
    """The registered proxy ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown proxy {name!r}; available: {available()}") from None


def _options_of(name: str) -> dict[str, Any]:
    """The keyword options proxy ``name`` takes (``ctx`` and the computed ``ranges`` aside), with their
    defaults (``inspect.Parameter.empty`` where it has none)."""
    return {k: p.default for k, p in inspect.signature(get(name).fn).parameters.items() if k not in ("ctx", "ranges")}


def check_options(name: str, options: Mapping[str, Any] | None, key: str) -> dict[str, Any]:
    """``options`` (config ``key``) as keyword arguments of proxy ``name``; an unknown proxy or keyword fails
    naming it."""
    accepted = set(_options_of(name))
    given = dict(options or {})
    unknown = sorted(set(given) - accepted)
    if unknown:
        raise ValueError(f"{key}: {unknown} are not options of proxy {name!r} (it accepts {sorted(accepted)})")
    return given


def proxies_options(names: Iterable[str], options: Mapping[str, Any] | None, key: str) -> dict[str, dict[str, Any]]:
    """Per proxy of ``names``, its keyword options from ``options`` (config ``key``: proxy name -> options);
    an option of a proxy not in ``names``, or one the proxy does not take, fails naming it."""
    names, given = [str(n) for n in names], dict(options or {})
    stray = sorted(set(given) - set(names))
    if stray:
        raise ValueError(f"{key}: options of {stray}, which are not among the scored proxies {names}")
    return {n: check_options(n, given.get(n), f"{key}.{n}") for n in names}


def resolved_options(name: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every keyword option of proxy ``name`` with its value: ``options`` over the function's defaults
    (``ranges``, computed data, left out). What a score depends on beyond the batch: archives key on it, so a
    changed default never reuses scores computed under the old one."""
    defaults = {k: v for k, v in _options_of(name).items() if v is not inspect.Parameter.empty}
    return {**defaults, **{k: v for k, v in (options or {}).items() if k != "ranges"}}


def _run(spec: ProxySpec, ctx: Context, options: Mapping[str, Any]) -> ProxyResult:
    try:
        value = float(spec.fn(ctx, **options))
    except NotApplicable as exc:
        return ProxyResult(math.nan, f"not applicable: {exc}")
    except Exception as exc:  # a search must survive any single broken proxy/architecture
        return ProxyResult(math.nan, f"{type(exc).__name__}: {exc}")
    if not math.isfinite(value):
        return ProxyResult(math.nan, f"non-finite score {value}")
    return ProxyResult(value)


def evaluate(
    names: Iterable[str],
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: LossFn | None = None,
    *,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    disposable: bool = False,
) -> dict[str, ProxyResult]:
    """Score ``model`` with the proxies ``names``; shared statistics are collected in one pass.

    ``options[name]`` are keyword arguments of that proxy (e.g. ``{"saswot": {"ranges": ...}}``).
    ``disposable``: ``model`` was built only to be scored, so the pass runs on it rather than on a copy
    (:func:`segnas.proxies.stats.scoring_net`, same values); the proxies that read the model itself score it
    before that pass changes it (train mode, BN buffers, which weights require gradients), so a network with
    random layers (dropout) sees the global generator in another order than without.
    """
    specs = [get(n) for n in names]
    options = options or {}
    loss_fn = loss_fn or default_loss()
    results = {}
    if disposable:
        bare = Context(model, inputs, targets, loss_fn, None)
        results = {s.name: _run(s, bare, options.get(s.name, {})) for s in specs if not s.needs}
    needs = frozenset().union(*(s.needs for s in specs))
    stats, failure = None, None
    if needs:
        try:
            stats = collect(model, inputs, targets, loss_fn, needs, disposable)
        except Exception as exc:  # reported per dependent proxy below
            failure = f"statistics pass failed: {type(exc).__name__}: {exc}"
    ctx = Context(model, inputs, targets, loss_fn, stats)
    for spec in specs:
        if spec.name not in results:
            failed = ProxyResult(math.nan, failure) if spec.needs and failure else None
            results[spec.name] = failed or _run(spec, ctx, options.get(spec.name, {}))
    for name, result in results.items():
        if not result.valid:
            log.warning("proxy %s invalid: %s", name, result.reason)
    return {spec.name: results[spec.name] for spec in specs}


def compute(
    names: Iterable[str],
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: LossFn | None = None,
    *,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    disposable: bool = False,
) -> dict[str, float]:
    """Like :func:`evaluate` but plain floats; invalid scores are NaN."""
    results = evaluate(names, model, inputs, targets, loss_fn, options=options, disposable=disposable)
    return {name: r.value for name, r in results.items()}
