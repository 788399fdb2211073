"""Searchable zero-cost proxies: a small expression graph over per-layer statistics (SasWOT §3.3).

An :class:`Expression` has two branches; each reads one per-layer statistic (a *leaf*: the layer's output
``activation``, its weight ``gradient`` dL/dW, or its ``weight``) and applies a chain of unary operations;
a binary operation joins the two branches element-wise (with broadcasting, as long as the result is no
larger than the larger operand). The result of every scored layer (``nn.Conv2d`` / ``nn.Linear``) is
reduced to a scalar (``elem_reduce``: mean or sum of elements) and the layers are combined by
``layer_reduce`` (sum, as in SasWOT's formula, or mean). SasWOT's searched proxy is
``lesser_than(softmax(weight), relu(gradient))``.

The 20 unary and 13 binary operations follow the EZNAS-derived "autozc" files of the SasWOT author group
(research notes §B.1), with these choices: ``log`` is the NaN-safe ``sign(A) log(|A| + 1e-9)``; softmax
and log-softmax act on dim 0; ``gram_matrix`` needs a 4-D tensor with at most ``GRAM_MAX_ROWS`` rows and
``slogdet`` a square (batched) matrix; ``cosine_similarity`` compares A with B (not A with itself).
An operation that does not apply to its operand raises :class:`InvalidExpression`; so do non-finite
values. Constant expressions are rejected by the search (:class:`~segnas.proxies.proxy_search.CachedFitness`).
An expression is a genotype of :class:`~segnas.proxies.expression_space.ExpressionSpace`.

Activations are stored average-pooled to at most ``activation_pool`` x ``activation_pool`` pixels so that
the statistics of many architectures fit in memory; the pooling is part of the expression's YAML so a
loaded proxy scores models exactly as the search did.

**Column sketch** (:func:`sketch_statistics`, used only to make the search's fitness cheap). A weight
``W`` (and its gradient) viewed as ``[C_out, C_in * kh * kw]`` keeps all output channels but only ``k``
seeded random input channels (``k * kh * kw <= columns`` columns; the same channels for ``W`` and dL/dW),
so it stays a 4-D ``[C_out, k, kh, kw]`` tensor and the layer records ``column_fraction = k / C_in``.
Activations are not sketched. All tensors of a sketched net (activations included) are stored in
bfloat16 (float32 range, ~3 significant digits) and the math is done in float32. What the sketch
changes, per operation on a sketched tensor:

* exact on the kept entries (up to the bfloat16 rounding): every element-wise unary op, softmax /
  log-softmax over dim 0 (all output channels are kept), slogdet of a 4-D tensor (per ``kh x kw``
  slice), the element-wise binary ops, matmul and pairwise_distance of 4-D operands (batched over
  dims 0, 1);
* unbiased: means (``normalized_sum``, ``l1_norm``, ``to_mean_scalar``, ``l1_loss``, ``mse_loss``,
  ``elem_reduce: mean``);
* rescaled by ``1 / column_fraction``: sums (``to_sum_scalar``, ``hamming_distance``, ``kl_divergence``,
  ``elem_reduce: sum``); ``frobenius_norm`` by ``column_fraction ** -0.5``;
* estimated (consistent, not unbiased): ``normalize`` (sample mean/std) and ``cosine_similarity`` (ratio
  of sums over the kept columns);
* rejected (:class:`InvalidExpression`), as their value or validity depends on the number of columns:
  ``gram_matrix``; slogdet, matmul or pairwise_distance of a sketched operand of fewer than 4 dims (they
  would reduce over the sketched dim); a sketched tensor combined with a non-scalar unsketched one or
  with a sketched one of another rank.

A search on sketches can thus still pick an expression that is undefined or different on exact
statistics; ``stage=proxy_evolution`` re-ranks its best candidates on exact statistics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from segnas.proxies.registry import Context, available, get, register
from segnas.proxies.stats import LossFn, default_loss, scored_layers, training_copy

LEAVES = ("activation", "gradient", "weight")
REDUCTIONS = ("mean", "sum")
GRAM_MAX_ROWS = 1024  # a (rows x rows) Gram matrix; bigger ones make slogdet far too slow
EPS = 1e-9


class InvalidExpression(ValueError):
    """An expression that cannot be evaluated on some statistics (shape, domain or non-finite value)."""


@dataclass(frozen=True)
class LayerStats:
    """One scored layer's statistics: (pooled) output activation, dL/dW and W.

    ``column_fraction < 1`` marks a column sketch: ``weight`` and ``gradient`` keep that fraction of dim 1.
    """

    activation: torch.Tensor
    gradient: torch.Tensor
    weight: torch.Tensor
    column_fraction: float = 1.0

    def leaf(self, name: str) -> torch.Tensor:
        """The statistic called ``name`` (one of :data:`LEAVES`), in float32."""
        return getattr(self, name).float()

    def sketched(self, name: str) -> bool:
        """Whether leaf ``name`` is a column sketch."""
        return self.column_fraction < 1 and name != "activation"

    def nbytes(self) -> int:
        """Bytes held by the three tensors."""
        return sum(t.numel() * t.element_size() for t in (self.activation, self.gradient, self.weight))


def _abslog(a: torch.Tensor) -> torch.Tensor:
    return torch.log(torch.where(a == 0, torch.ones_like(a), a).abs())


def _normalize(a: torch.Tensor) -> torch.Tensor:
    if a.numel() < 2:
        raise InvalidExpression("normalize needs at least two elements")
    return torch.nan_to_num((a - a.mean()) / a.std())


def _slogdet(a: torch.Tensor) -> torch.Tensor:
    if a.dim() < 2 or a.shape[-1] != a.shape[-2]:
        raise InvalidExpression(f"slogdet needs a square matrix, got shape {tuple(a.shape)}")
    return torch.linalg.slogdet(a).logabsdet


def _gram(a: torch.Tensor) -> torch.Tensor:
    if a.dim() != 4:
        raise InvalidExpression(f"gram_matrix needs a 4-D tensor, got shape {tuple(a.shape)}")
    n, c, h, w = a.shape
    if n * c > GRAM_MAX_ROWS:
        raise InvalidExpression(f"gram_matrix of {n * c} rows exceeds {GRAM_MAX_ROWS}")
    f = a.reshape(n * c, h * w)
    return f @ f.T / a.numel()


def _invert(a: torch.Tensor) -> torch.Tensor:
    if a.dim() == 0 and float(a) == 0:
        raise InvalidExpression("invert of scalar 0")
    return 1 / (a + EPS)


UNARY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "log": lambda a: torch.sign(a) * torch.log(a.abs() + EPS),
    "abslog": _abslog,
    "abs": torch.abs,
    "pow": lambda a: a * a,
    "exp": torch.exp,
    "normalize": _normalize,
    "relu": torch.relu,
    "sign": torch.sign,
    "invert": _invert,
    "frobenius_norm": lambda a: torch.linalg.vector_norm(a),
    "normalized_sum": lambda a: a.sum() / a.numel(),
    "l1_norm": lambda a: a.abs().sum() / a.numel(),
    "softmax": lambda a: torch.softmax(a, dim=0),
    "sigmoid": torch.sigmoid,
    "slogdet": _slogdet,
    "logsoftmax": lambda a: torch.log_softmax(a, dim=0),
    "to_mean_scalar": torch.mean,
    "to_sum_scalar": torch.sum,
    "gram_matrix": _gram,
    "no_op": lambda a: a,
}


def _rows(a: torch.Tensor) -> torch.Tensor:
    return a.reshape(1, -1) if a.dim() == 0 else a.reshape(a.shape[0], -1)


def _hamming(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a > 0) != (b > 0)).sum().to(a.dtype)


def _kl(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if a.dim() == 0 or a.shape != b.shape:
        raise InvalidExpression(f"kl_divergence needs equal non-scalar shapes, got {a.shape} and {b.shape}")
    return F.kl_div(a, b, reduction="batchmean")


def _same_shape(fn: Callable[..., torch.Tensor]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def wrapped(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape != b.shape:
            raise InvalidExpression(f"{fn.__name__} needs equal shapes, got {a.shape} and {b.shape}")
        return fn(a, b)

    return wrapped


BINARY: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "sum": torch.add,
    "difference": torch.sub,
    "product": torch.mul,
    "matmul": lambda a, b: torch.matmul(
        a.reshape(1) if a.dim() == 0 else a, b.reshape(1) if b.dim() == 0 else b
    ),
    "lesser_than": lambda a, b: (a < b).to(torch.result_type(a, b)),
    "greater_than": lambda a, b: (a > b).to(torch.result_type(a, b)),
    "equal_to": lambda a, b: (a == b).to(torch.result_type(a, b)),
    "hamming_distance": _hamming,
    "pairwise_distance": lambda a, b: F.pairwise_distance(a, b, p=2),
    "l1_loss": _same_shape(F.l1_loss),
    "mse_loss": _same_shape(F.mse_loss),
    "kl_divergence": _kl,
    "cosine_similarity": lambda a, b: F.cosine_similarity(_rows(a), _rows(b), dim=1).sum(),
}

# element-wise binaries: broadcasting that enlarges both operands (an outer product) is rejected
ELEMENTWISE = frozenset(
    {"sum", "difference", "product", "lesser_than", "greater_than", "equal_to", "hamming_distance"}
)

# column sketch (module docstring): exponent e of the 1 / column_fraction ** e correction of sums
SKETCH_SUM_UNARY = {"to_sum_scalar": 1.0, "frobenius_norm": 0.5}
SKETCH_SUM_BINARY = frozenset({"hamming_distance", "kl_divergence"})
SKETCH_NEEDS_4D = frozenset({"slogdet", "matmul", "pairwise_distance"})


def _sketch_unary(op: str, x: torch.Tensor, fraction: float) -> tuple[torch.Tensor, bool]:
    """``op`` on a sketched tensor: the result and whether it is still a sketch."""
    if op == "gram_matrix" or (op in SKETCH_NEEDS_4D and x.dim() < 4):
        raise InvalidExpression(f"{op} of shape {tuple(x.shape)} depends on the sketch's columns")
    y = UNARY[op](x)
    if y.dim() == 0:
        return y * fraction ** -SKETCH_SUM_UNARY.get(op, 0.0), False
    return y, True


def _sketch_binary(
    op: str, a: torch.Tensor, b: torch.Tensor, sketched: tuple[bool, bool], fraction: float
) -> tuple[torch.Tensor, bool]:
    """``op`` with at least one sketched operand: the result and whether it is still a sketch."""
    if not all(sketched) and (b if sketched[0] else a).numel() > 1:
        raise InvalidExpression("a column sketch combined with a non-scalar exact tensor")
    if all(sketched) and a.dim() != b.dim():
        raise InvalidExpression("sketched operands of different ranks")
    if op in SKETCH_NEEDS_4D and min(t.dim() for t, s in zip((a, b), sketched, strict=True) if s) < 4:
        raise InvalidExpression(f"{op} would reduce over the sketched dimension")
    out = BINARY[op](a, b)
    if out.dim() == 0:
        return out / fraction if op in SKETCH_SUM_BINARY else out, False
    return out, True


@dataclass(frozen=True)
class Expression:
    """``binary(unary_a...(leaf_a), unary_b...(leaf_b))`` reduced per layer, then over layers."""

    space_name: ClassVar[str] = "proxy_expression"

    inputs: tuple[str, str]
    unary: tuple[tuple[str, ...], tuple[str, ...]]
    binary: str
    elem_reduce: str = "mean"
    layer_reduce: str = "sum"
    activation_pool: int = 8

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "unary", tuple(tuple(chain) for chain in self.unary))
        if len(self.inputs) != 2 or len(self.unary) != 2:
            raise ValueError("an expression has exactly two branches")
        bad = [n for n in self.inputs if n not in LEAVES]
        bad += [n for chain in self.unary for n in chain if n not in UNARY]
        bad += [self.binary] if self.binary not in BINARY else []
        bad += [r for r in (self.elem_reduce, self.layer_reduce) if r not in REDUCTIONS]
        if bad:
            raise ValueError(f"unknown leaves/operations/reductions {bad}")

    def __str__(self) -> str:
        branches = []
        for leaf, chain in zip(self.inputs, self.unary, strict=True):
            text = leaf
            for op in chain:
                text = text if op == "no_op" else f"{op}({text})"
            branches.append(text)
        return f"{self.layer_reduce}_layers {self.elem_reduce}({self.binary}({branches[0]}, {branches[1]}))"

    @property
    def uses_activation(self) -> bool:
        """Whether a layer's activation is read (otherwise weights and gradients suffice)."""
        return "activation" in self.inputs

    def layer_value(self, layer: LayerStats) -> float:
        """The scalar of one layer (raises :class:`InvalidExpression` when undefined or non-finite)."""
        try:
            (a, sa), (b, sb) = (self._branch(layer, i) for i in range(2))
            if self.binary in ELEMENTWISE:
                shape = torch.broadcast_shapes(a.shape, b.shape)
                if math.prod(shape) > max(a.numel(), b.numel()):
                    raise InvalidExpression(f"broadcasting {[tuple(a.shape), tuple(b.shape)]} enlarges")
            if sa or sb:
                out, sketched = _sketch_binary(self.binary, a, b, (sa, sb), layer.column_fraction)
            else:
                out, sketched = BINARY[self.binary](a, b), False
        except InvalidExpression:
            raise
        except (RuntimeError, ValueError, IndexError, torch.linalg.LinAlgError) as exc:
            raise InvalidExpression(f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
        if self.elem_reduce == "sum":
            value = float(out.double().sum()) / (layer.column_fraction if sketched else 1.0)
        else:
            value = float(out.double().mean())
        if not math.isfinite(value):
            raise InvalidExpression(f"non-finite layer value {value}")
        return value

    def _branch(self, layer: LayerStats, i: int) -> tuple[torch.Tensor, bool]:
        """Branch ``i``'s tensor and whether it is (still) a column sketch."""
        x, sketched = layer.leaf(self.inputs[i]), layer.sketched(self.inputs[i])
        for op in self.unary[i]:
            if sketched:
                x, sketched = _sketch_unary(op, x, layer.column_fraction)
            else:
                x = UNARY[op](x)
        return x, sketched

    def score(self, layers: Sequence[LayerStats]) -> float:
        """The proxy value of a network given its scored layers' statistics."""
        if not layers:
            raise InvalidExpression("no scored layers")
        values = [self.layer_value(layer) for layer in layers]
        total = math.fsum(values)
        total = total if self.layer_reduce == "sum" else total / len(values)
        if not math.isfinite(total):
            raise InvalidExpression(f"non-finite score {total}")
        return total

    def rule_violations(self) -> list[str]:
        """Structural rules (none beyond those the constructor enforces: names of leaves and operations)."""
        return []

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (lists, strings, ints) for YAML, with the space name."""
        data = {"space": self.space_name, **asdict(self)}
        data["inputs"] = list(self.inputs)
        data["unary"] = [list(chain) for chain in self.unary]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Expression:
        """Inverse of :meth:`to_dict` (extra keys such as ``formula`` or ``fitness`` are ignored)."""
        if data.get("space", cls.space_name) != cls.space_name:
            raise ValueError(f"not a {cls.space_name} genotype: space={data.get('space')!r}")
        keys = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in keys})

    def save(self, path: str | Path, **extra: object) -> None:
        """Write the expression (plus ``extra`` metadata, e.g. its fitness) as YAML."""
        data = {**self.to_dict(), "formula": str(self), **extra}
        Path(path).write_text(yaml.safe_dump(data, sort_keys=False))

    @classmethod
    def load(cls, path: str | Path) -> Expression:
        """Read an expression written by :meth:`save`."""
        return cls.from_dict(yaml.safe_load(Path(path).read_text()))


SASWOT = Expression(("weight", "gradient"), (("softmax",), ("relu",)), "lesser_than")


def layer_statistics(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: LossFn | None = None,
    activation_pool: int = 8,
) -> list[LayerStats]:
    """One forward/backward pass (on a train-mode copy of ``model``) collecting, per scored layer, the
    output activation (4-D outputs adaptive-average-pooled to at most ``activation_pool`` pixels a side),
    dL/dW (zeros where the layer got no gradient) and W."""
    net = training_copy(model)
    layers = scored_layers(net)
    acts: dict[int, torch.Tensor] = {}

    def hook(index: int) -> Callable[..., None]:
        def forward_hook(_: nn.Module, __: tuple, out: torch.Tensor) -> None:
            out = out.detach()
            if out.dim() == 4:
                size = (min(activation_pool, out.shape[2]), min(activation_pool, out.shape[3]))
                out = F.adaptive_avg_pool2d(out, size)
            acts[index] = out

        return forward_hook

    handles = [layer.register_forward_hook(hook(i)) for i, layer in enumerate(layers)]
    try:
        (loss_fn or default_loss())(net(inputs), targets).backward()
    finally:
        for handle in handles:
            handle.remove()
    return [
        LayerStats(
            acts.get(i, torch.zeros(())),
            layer.weight.grad.detach() if layer.weight.grad is not None else torch.zeros_like(layer.weight),
            layer.weight.detach(),
        )
        for i, layer in enumerate(layers)
    ]


def sketch_layer(layer: LayerStats, columns: int, gen: torch.Generator) -> LayerStats:
    """A column sketch of ``layer`` (module docstring) with at most ``columns`` columns of W and dL/dW,
    all tensors stored in bfloat16; input channels are drawn with ``gen``."""
    w = layer.weight
    per_channel = math.prod(w.shape[2:])  # kh * kw (1 for a Linear layer)
    keep = max(1, columns // per_channel)
    compact = torch.bfloat16
    if w.dim() < 2 or keep >= w.shape[1]:
        return LayerStats(*(t.to(compact) for t in (layer.activation, layer.gradient, w)))
    idx = torch.randperm(w.shape[1], generator=gen)[:keep].sort().values
    return LayerStats(
        layer.activation.to(compact),
        layer.gradient.index_select(1, idx).to(compact),
        w.index_select(1, idx).to(compact),
        keep / w.shape[1],
    )


def sketch_statistics(layers: Sequence[LayerStats], columns: int, seed: int) -> list[LayerStats]:
    """Column sketches of a network's layers, the input channels drawn in layer order from ``seed``."""
    if columns < 1:
        raise ValueError(f"sketch columns must be positive, got {columns}")
    gen = torch.Generator().manual_seed(seed)
    return [sketch_layer(layer, columns, gen) for layer in layers]


def register_expression(expression: Expression, name: str) -> str:
    """Register ``expression`` as proxy ``name`` (its own forward/backward pass); returns ``name``.

    Registering the same expression under the same name again is a no-op.
    """
    if name in available():
        if getattr(get(name).fn, "expression", None) == expression:
            return name
        raise ValueError(f"proxy {name!r} is already registered with another definition")

    def proxy(ctx: Context) -> float:
        layers = layer_statistics(
            ctx.model, ctx.inputs, ctx.targets, ctx.loss_fn, activation_pool=expression.activation_pool
        )
        return expression.score(layers)

    proxy.expression = expression  # type: ignore[attr-defined]
    register(name)(proxy)
    return name


def load_expression_proxy(path: str | Path, name: str | None = None) -> str:
    """Register the expression YAML at ``path`` as a proxy (default name: the file stem); returns the name."""
    path = Path(path)
    return register_expression(Expression.load(path), name or path.stem)


__all__ = [
    "BINARY",
    "LEAVES",
    "SASWOT",
    "UNARY",
    "Expression",
    "InvalidExpression",
    "LayerStats",
    "layer_statistics",
    "load_expression_proxy",
    "register_expression",
    "sketch_statistics",
]
