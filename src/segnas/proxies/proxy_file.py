"""Proxy files: a searched proxy together with the scoring protocol it was found with, as one YAML.

A proxy file (e.g. ``experiments/saswot_proxy_evolution/best_proxy.yaml``) holds

* ``name`` (optional; default: the file stem): the key of its results (``results.json``, tables);
* ``kind``: ``combination`` (a weighted sum of normalised hand-designed proxies, :class:`Combination`) or
  ``expression`` (an expression over per-layer statistics, :class:`~segnas.proxies.expression.Expression`);
* ``combination: {terms: [{proxy, transform, center, scale, weight}, ...]}`` or ``expression: {inputs,
  unary, binary, elem_reduce, layer_reduce, activation_pool}``;
* ``protocol``: how the networks are scored, independent of any stage's settings: ``inputs`` (``random``:
  N(0, 1) images and uniform labels over the 17 TNB-101 classes, drawn from ``seed``), ``batch_size``,
  ``resolution`` (square), ``seed`` (the batch's and the network initialisation's seed) and ``bn_quirk``
  (TNB's residual BatchNorm, :mod:`segnas.spaces.transnas`);
* anything else (``provenance``, ``heldout``, ...) is kept as documentation and ignored.

A combination term is ``weight * (transform(score) - center) / scale``: fixed constants (recorded when the
proxy was searched), so an architecture's value never depends on which other architectures are scored.
:func:`load_proxy_file` validates everything (keys, proxy names, transforms, operations) and raises
``ValueError`` naming the file and the key.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from segnas.proxies.expression import Expression, layer_statistics
from segnas.proxies.registry import available, compute, resolved_options

log = logging.getLogger(__name__)

TRANSFORMS: dict[str, Callable[[float], float]] = {
    "identity": lambda v: v,
    "log": lambda v: math.log(v) if v > 0 else math.nan,  # flops, params, norms: positive
    "abslog": lambda v: math.copysign(math.log(abs(v) + 1e-9), v),
}
KINDS = ("combination", "expression")
INPUTS = ("random",)
PROTOCOL_KEYS = {"inputs": str, "batch_size": int, "resolution": int, "seed": int, "bn_quirk": bool}
TERM_KEYS = {"proxy": str, "transform": str, "center": float, "scale": float, "weight": float}


@dataclass(frozen=True)
class Term:
    """One normalised proxy of a combination: ``weight * (transform(score) - center) / scale``."""

    proxy: str
    transform: str
    center: float
    scale: float
    weight: float

    def value(self, score: float) -> float:
        """This term's contribution for a raw proxy ``score`` (NaN when undefined)."""
        return self.weight * (TRANSFORMS[self.transform](score) - self.center) / self.scale

    def __str__(self) -> str:
        leaf = self.proxy if self.transform == "identity" else f"{self.transform}({self.proxy})"
        return f"{self.weight:g}*({leaf}-{self.center:.4g})/{self.scale:.4g}"


@dataclass(frozen=True)
class Combination:
    """A weighted sum of normalised hand-designed proxies (the leaves), computed per architecture."""

    terms: tuple[Term, ...]

    @property
    def proxies(self) -> list[str]:
        """The hand-designed proxies read, in order, without repeats."""
        return list(dict.fromkeys(t.proxy for t in self.terms))

    def combine(self, scores: Mapping[str, float]) -> float:
        """The combined score from the leaves' raw scores (NaN when one is NaN or undefined)."""
        return math.fsum(t.value(scores[t.proxy]) for t in self.terms)

    def __str__(self) -> str:
        return " + ".join(str(t) for t in self.terms)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form for YAML."""
        return {"terms": [asdict(t) for t in self.terms]}


@dataclass(frozen=True)
class Protocol:
    """How a proxy file's proxy scores a network (module docstring)."""

    inputs: str
    batch_size: int
    resolution: int
    seed: int
    bn_quirk: bool


@dataclass(frozen=True)
class ProxyFile:
    """A loaded proxy file: its name, definition and scoring protocol."""

    name: str
    path: Path
    definition: Combination | Expression
    protocol: Protocol

    def score(
        self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, disposable: bool = False,
        known: Mapping[str, float] | None = None,
    ) -> float:
        """The proxy's score of ``model`` on the protocol's batch ``(inputs, targets)``; NaN when invalid.

        A combination's leaves share one pass (:func:`~segnas.proxies.registry.compute`); ``disposable``: the
        model was built only for this score, the pass runs on it rather than on a copy (same values);
        ``known``: leaves whose raw scores the caller already has (e.g. ``flops`` from an analytic cost model
        equal to the traced count), not computed again.
        """
        if isinstance(self.definition, Combination):
            known = dict(known or {})
            missing = [p for p in self.definition.proxies if p not in known]
            return self.definition.combine({**compute(missing, model, inputs, targets, disposable=disposable),
                                            **known})
        try:
            pool = self.definition.activation_pool
            return self.definition.score(layer_statistics(model, inputs, targets, activation_pool=pool))
        except (ValueError, RuntimeError) as exc:  # undefined on this network: NaN, as registered proxies
            log.warning("proxy %s invalid: %s: %s", self.name, type(exc).__name__, exc)
            return math.nan

    def context(self) -> dict[str, Any]:
        """What its scores depend on (for score caches): kind, definition, protocol and the options (their
        defaults) of a combination's leaves that take any."""
        combination = isinstance(self.definition, Combination)
        leaves = {p: resolved_options(p) for p in self.definition.proxies} if combination else {}
        return {
            "kind": "combination" if combination else "expression",
            "definition": self.definition.to_dict(),
            "protocol": asdict(self.protocol),
            **({"leaf_options": {p: o for p, o in leaves.items() if o}} if any(leaves.values()) else {}),
        }


def is_proxy_file(name: str) -> bool:
    """Whether a proxy name given to a stage is a proxy file path (``*.yaml`` / ``*.yml``)."""
    return name.endswith((".yaml", ".yml"))


def _typed(value: Any, kind: type, where: str) -> Any:
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, bool):
        raise ValueError(f"{where}: expected an integer, got {value!r}")
    if not isinstance(value, kind):
        raise ValueError(f"{where}: expected {kind.__name__}, got {value!r}")
    return value


def _fields(data: Any, keys: Mapping[str, type], where: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {data!r}")
    missing = [k for k in keys if k not in data]
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}")
    return {k: _typed(data[k], t, f"{where}.{k}") for k, t in keys.items()}


def _combination(data: Any, where: str) -> Combination:
    if not isinstance(data, Mapping) or not isinstance(data.get("terms"), list) or not data["terms"]:
        raise ValueError(f"{where}.terms: missing or not a non-empty list")
    terms = []
    for i, raw in enumerate(data["terms"]):
        at = f"{where}.terms[{i}]"
        term = Term(**_fields(raw, TERM_KEYS, at))
        if term.proxy not in available():
            raise ValueError(f"{at}.proxy: unknown proxy {term.proxy!r}; available: {available()}")
        if term.transform not in TRANSFORMS:
            raise ValueError(
                f"{at}.transform: unknown transform {term.transform!r}; one of {list(TRANSFORMS)}"
            )
        if not (math.isfinite(term.center) and math.isfinite(term.scale) and term.scale > 0):
            raise ValueError(f"{at}: center must be finite and scale finite and > 0")
        terms.append(term)
    return Combination(tuple(terms))


def _expression(data: Any, where: str) -> Expression:
    _fields(data, {"inputs": list, "unary": list, "binary": str}, where)
    try:
        return Expression.from_dict(dict(data))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None


def load_proxy_file(path: str | Path) -> ProxyFile:
    """Read and validate the proxy file at ``path`` (``ValueError`` naming the file and key if bad)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"proxy file {path} not found")
    data = yaml.safe_load(path.read_text())
    where = str(path)
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping at the top level")
    kind = data.get("kind")
    if kind not in KINDS:
        raise ValueError(f"{where}: key 'kind' must be one of {list(KINDS)}, got {kind!r}")
    if kind not in data:
        raise ValueError(f"{where}: missing key '{kind}' (the {kind}'s definition)")
    definition: Combination | Expression
    if kind == "combination":
        definition = _combination(data[kind], f"{where}: {kind}")
    else:
        definition = _expression(data[kind], f"{where}: {kind}")
    if "protocol" not in data:
        raise ValueError(f"{where}: missing key 'protocol'")
    protocol = Protocol(**_fields(data["protocol"], PROTOCOL_KEYS, f"{where}: protocol"))
    if protocol.inputs not in INPUTS:
        raise ValueError(f"{where}: protocol.inputs must be one of {list(INPUTS)}, got {protocol.inputs!r}")
    if protocol.batch_size < 2 or protocol.resolution < 64 or protocol.resolution % 64:
        raise ValueError(f"{where}: protocol needs batch_size >= 2 and a resolution that is a multiple of 64")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name or name in available():
        raise ValueError(
            f"{where}: key 'name' {name!r} must be a non-empty string that names no registered proxy"
        )
    return ProxyFile(name, path, definition, protocol)


def load_proxy_files(
    names: Sequence[str], resolve: Callable[[str], str | Path] = Path
) -> dict[str, ProxyFile]:
    """The proxy files among the proxy ``names`` (paths, turned into files by ``resolve``, e.g. relative to
    the launch directory), validated, by their result name; raises before any scoring if one is bad or two
    results would share a name."""
    files: dict[str, ProxyFile] = {}
    for entry in names:
        if is_proxy_file(entry):
            pf = load_proxy_file(resolve(entry))
            if pf.name in files or pf.name in names:
                raise ValueError(f"{entry}: result name {pf.name!r} is used twice in stage.proxies")
            files[pf.name] = pf
    return files


def fit_terms(
    proxies: Sequence[str], transforms: Mapping[str, str], values: Mapping[str, Sequence[float]]
) -> list[Term]:
    """Unit-weight terms whose ``center``/``scale`` are the median/std of the transformed ``values``
    (the training architectures' raw scores per proxy)."""
    terms = []
    for proxy in proxies:
        t = np.array([TRANSFORMS[transforms[proxy]](float(v)) for v in values[proxy]])
        t = t[np.isfinite(t)]
        terms.append(Term(proxy, transforms[proxy], float(np.median(t)), float(np.std(t)) or 1.0, 1.0))
    return terms
