"""The search space of proxy expressions: an :class:`~segnas.proxies.expression.Expression` is its genotype.

An expression with unary chains of ``chain`` operations is the integer vector
``[leaf_a, leaf_b, unary_a..., unary_b..., binary]`` (indices into :data:`LEAVES`, :data:`UNARY_NAMES`,
:data:`BINARY_NAMES`); the reductions and the activation pooling are the space's, not genes. Sampling and
mutation follow Auto-DAS: leaves and binary operations uniform, unary operations weighted 0.1 each and
0.2 for ``no_op``. Crossover is the engine's default, a uniform swap of genes.

Two expressions that compute the same function share a :meth:`ExpressionSpace.key`: ``no_op`` is dropped
from the chains (it is the identity, on column sketches too) and the branches of a symmetric binary
operation are put in a fixed order.
"""

from __future__ import annotations

import numpy as np

from segnas.proxies.expression import BINARY, LEAVES, REDUCTIONS, UNARY, Expression
from segnas.spaces.base import SearchSpace, canonical_json

UNARY_NAMES = tuple(UNARY)
BINARY_NAMES = tuple(BINARY)
# Auto-DAS sampling weights: 0.1 per unary op, 0.2 for no_op (normalised)
_W = np.array([0.2 if n == "no_op" else 0.1 for n in UNARY_NAMES])
UNARY_PROBS = _W / _W.sum()
# binary operations whose value does not change when the branches are swapped (exactly, in float math)
SYMMETRIC = frozenset({"sum", "product", "equal_to", "hamming_distance", "l1_loss", "mse_loss"})


class ExpressionSpace(SearchSpace):
    """Expressions with unary chains of ``chain`` operations and the given reductions and pooling."""

    name = "proxy_expression"
    genotype_cls = Expression

    def __init__(
        self, chain: int = 2, elem_reduce: str = "mean", layer_reduce: str = "sum", activation_pool: int = 8
    ) -> None:
        if chain < 1:
            raise ValueError(f"chain must be at least 1, got {chain}")
        self.chain = int(chain)
        self.reductions = {"elem_reduce": elem_reduce, "layer_reduce": layer_reduce}
        self.activation_pool = int(activation_pool)
        bad = [r for r in self.reductions.values() if r not in REDUCTIONS]
        if bad:
            raise ValueError(f"unknown reductions {bad}; expected one of {REDUCTIONS}")

    def _unary_gene(self, i: int) -> bool:
        return 2 <= i < 2 + 2 * self.chain

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Leaves, then both unary chains, then the binary operation."""
        hi = [len(LEAVES) - 1] * 2 + [len(UNARY_NAMES) - 1] * (2 * self.chain) + [len(BINARY_NAMES) - 1]
        return np.zeros(len(hi), dtype=np.int64), np.array(hi, dtype=np.int64)

    def decode(self, x: np.ndarray | list[int]) -> Expression:
        """The expression of an integer vector."""
        x, n = [int(v) for v in x], self.chain
        return Expression(
            (LEAVES[x[0]], LEAVES[x[1]]),
            tuple(tuple(UNARY_NAMES[v] for v in x[2 + b * n : 2 + (b + 1) * n]) for b in range(2)),
            BINARY_NAMES[x[-1]],
            activation_pool=self.activation_pool,
            **self.reductions,
        )

    def encode(self, genotype: Expression) -> np.ndarray:
        """Gene indices; shorter unary chains are padded with ``no_op`` (the same function)."""
        problems = self.violations(genotype)
        if problems:
            raise ValueError(f"{genotype} is not in this space: " + "; ".join(problems))
        chains = [[*c, *["no_op"] * (self.chain - len(c))] for c in genotype.unary]
        genes = [LEAVES.index(leaf) for leaf in genotype.inputs]
        genes += [UNARY_NAMES.index(op) for c in chains for op in c] + [BINARY_NAMES.index(genotype.binary)]
        return np.array(genes, dtype=np.int64)

    def violations(self, genotype: Expression) -> list[str]:
        """Chains longer than the space's, or other reductions or pooling."""
        out = [f"unary chain of {len(c)} > {self.chain} ops" for c in genotype.unary if len(c) > self.chain]
        out += [
            f"{k} {getattr(genotype, k)!r} != {v!r}"
            for k, v in self.reductions.items()
            if getattr(genotype, k) != v
        ]
        if genotype.activation_pool != self.activation_pool:
            out.append(f"activation_pool {genotype.activation_pool} != {self.activation_pool}")
        return out

    def sample(self, rng: np.random.Generator) -> Expression:
        """Leaves and binary operation uniform, unary operations with the Auto-DAS weights."""
        lo, hi = self.bounds()
        x = rng.integers(lo, hi + 1)
        x[2 : 2 + 2 * self.chain] = rng.choice(len(UNARY_NAMES), size=2 * self.chain, p=UNARY_PROBS)
        return self.decode(x)

    def mutate(self, x: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
        """Resample each gene with probability ``p`` (at least one), with the sampling weights."""
        lo, hi = self.bounds()
        chosen = np.flatnonzero(rng.random(len(x)) < p)
        if not len(chosen):
            chosen = [int(rng.integers(len(x)))]
        y = np.array(x, dtype=np.int64)
        for i in chosen:
            if self._unary_gene(i):
                y[i] = rng.choice(len(UNARY_NAMES), p=UNARY_PROBS)
            else:
                y[i] = rng.integers(lo[i], hi[i] + 1)
        return y

    def canonical(self, genotype: Expression) -> Expression:
        """The representative of ``genotype``'s function: ``no_op`` moved to the end of the chains (padded
        to the space's length), the branches of a symmetric binary operation in sorted order."""
        chains = [tuple(op for op in c if op != "no_op") for c in genotype.unary]
        branches = [
            (leaf, (*c, *["no_op"] * (self.chain - len(c))))
            for leaf, c in zip(genotype.inputs, chains, strict=True)
        ]
        if genotype.binary in SYMMETRIC:
            branches.sort()
        return Expression(
            (branches[0][0], branches[1][0]),
            (branches[0][1], branches[1][1]),
            genotype.binary,
            genotype.elem_reduce,
            genotype.layer_reduce,
            genotype.activation_pool,
        )

    def key(self, genotype: Expression) -> str:
        """Canonical key: equal for expressions that compute the same function (module docstring)."""
        return canonical_json(self.canonical(genotype).to_dict())


__all__ = ["BINARY_NAMES", "SYMMETRIC", "UNARY_NAMES", "UNARY_PROBS", "ExpressionSpace"]
