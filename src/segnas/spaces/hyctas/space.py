"""The HyCTAS search space: sampling with the branch-count prior, encoding, genetic operators, constraints."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from segnas.spaces.base import SearchSpace
from segnas.spaces.hyctas.genotype import HEADS, MAX_BRANCHES, Branch, HyCTASGenotype
from segnas.spaces.hyctas.memory import activation_memory_mb

DEFAULT_OPS = ("skip", "conv", "lightweight_conv", "lightweight_conv2x", "self_attention")
DEFAULT_WIDTHS = tuple(i / 12 for i in (4, 6, 8, 10, 12))
# Defaults of the space (conf/space/hyctas.yaml mirrors them): the supernet depth holds the deepest
# released network (HyCTAS-L, 20 cells) and the shallowest depth is round(20 / 3) = 7, the floor of
# FasterSeg's decoder that the reference inherits (it keeps round(L / 3) + 2 * last cells of an L-layer
# branch: 11 for a stride-32 branch, HyCTAS-S's depth).
DEFAULT_LAYERS = 20
DEFAULT_MIN_LAYERS = 7
# The shallowest depth every head fits in: three branches downsample at three distinct cells, none the last.
MIN_DEPTH = MAX_BRANCHES + 1

_MAX_TRIES = 10_000


@dataclass(frozen=True)
class Genes:
    """Variable indices of every gene of the encoding: the branch count, the depth, each cell's
    ``(operator, width)`` pair, each branch slot's downsampling flags and each fusion gate."""

    count: int
    depth: int
    cells: tuple[tuple[int, int], ...]  # slot k, layer l at k * layers + l
    downs: tuple[tuple[int, ...], ...]
    gates: tuple[int, ...]
    slots: tuple[tuple[int, int], ...]  # [start, stop) of each branch slot

    def groups(self) -> list[list[int]]:
        """The genes as variable groups, in a fixed order."""
        return [
            [self.count],
            [self.depth],
            *map(list, self.cells),
            *map(list, self.downs),
            *([g] for g in self.gates),
        ]


class HyCTASSpace(SearchSpace):
    """Multi-branch hybrid convolution/self-attention space of HyCTAS (paper sections 3.2-3.4).

    A genotype's depth (its cells per branch, the same for every branch) is searched in
    ``[min_layers, layers]``: the paper searches "branch numbers, depths, widths and spatial resolutions"
    and its fusion nodes sit between layers shared by all branches; the released networks have equal
    branch depths (S 11, M 17, L 20 cells).

    Args:
        layers: the deepest genotype (the supernet depth).
        min_layers: the shallowest genotype; a value above ``layers`` is capped at it (so overriding only
            ``layers`` with a small value gives a space of that fixed depth).
        ops: operator names a cell may choose (keys of :data:`segnas.nn.ops.OPS`).
        width_mults: width multipliers a cell output may choose.
        filter_multiplier: ``F`` in ``channels = round(stride * F * width)``.
        branch_prior: sampling probabilities of 1, 2 and 3 branches.
        memory_limit_mb: optional limit of the estimated training activation memory (cells only).
        memory_input: ``(batch, height, width)`` of the training input the memory estimate assumes.
    """

    name: ClassVar[str] = "hyctas"
    genotype_cls: ClassVar[type] = HyCTASGenotype

    def __init__(
        self,
        layers: int = DEFAULT_LAYERS,
        min_layers: int = DEFAULT_MIN_LAYERS,
        ops: Sequence[str] = DEFAULT_OPS,
        width_mults: Sequence[float] = DEFAULT_WIDTHS,
        filter_multiplier: int = 8,
        branch_prior: Sequence[float] = (0.2, 0.3, 0.5),
        memory_limit_mb: float | None = None,
        memory_input: Sequence[int] = (16, 256, 512),
    ) -> None:
        self.layers = int(layers)
        self.min_layers = min(int(min_layers), self.layers)
        if self.min_layers < MIN_DEPTH:
            raise ValueError(
                f"depths must be at least {MIN_DEPTH} (three branches downsample at distinct cells before "
                f"the last), got layers={layers}, min_layers={min_layers}"
            )
        if len(branch_prior) != MAX_BRANCHES or abs(sum(branch_prior) - 1.0) > 1e-6 or min(branch_prior) < 0:
            raise ValueError(
                f"branch_prior must be {MAX_BRANCHES} probabilities summing to 1, got {branch_prior}"
            )
        if "skip" in ops and len(ops) == 1:
            raise ValueError("ops needs at least one operator besides skip (downsampling cells cannot skip)")
        self.ops = tuple(ops)
        self.width_mults = tuple(float(w) for w in width_mults)
        self.filter_multiplier = int(filter_multiplier)
        self.branch_prior = tuple(float(p) for p in branch_prior)
        self.memory_limit_mb = memory_limit_mb
        self.memory_input = tuple(int(v) for v in memory_input)
        self._down_ops = tuple(o for o in self.ops if o != "skip")
        self.fixed_branches: int | None = None

    # ----------------------------------------------------------------------------------- sampling
    def sample(self, rng: np.random.Generator) -> HyCTASGenotype:
        """Branch count from ``branch_prior``, head uniform among those with that many branches, depth
        uniform in ``[min_layers, layers]``, everything else uniform (downsampling cells distinct across
        branches and never the last, fusion gates canonical); redrawn (keeping branch count and head) until
        no constraint is violated (only the memory limit can reject a draw)."""
        n = int(rng.choice(MAX_BRANCHES, p=self.branch_prior)) + 1
        heads = [h for h in HEADS if len(h) == n]
        head = heads[int(rng.integers(len(heads)))]
        for _ in range(_MAX_TRIES):
            genotype = self._draw(rng, head, int(rng.integers(self.min_layers, self.layers + 1)))
            if not self.violations(genotype):
                return genotype
        raise RuntimeError(
            f"no valid genotype with head {head} after {_MAX_TRIES} draws (memory limit too low?)"
        )

    def _draw(self, rng: np.random.Generator, head: tuple[int, ...], depth: int) -> HyCTASGenotype:
        """Uniform genotype of ``head`` and ``depth`` that keeps every rule of the space but the memory limit."""
        n_downs = [{8: 0, 16: 1, 32: 2}[stride] for stride in head]
        positions = iter(rng.choice(depth - 1, size=sum(n_downs), replace=False).tolist())
        branches = []
        for n_down in n_downs:
            down_layers = {next(positions) for _ in range(n_down)}
            ops = tuple(
                self._down_ops[rng.integers(len(self._down_ops))]
                if i in down_layers
                else self.ops[rng.integers(len(self.ops))]
                for i in range(depth)
            )
            widths = tuple(self.width_mults[i] for i in rng.integers(len(self.width_mults), size=depth))
            branches.append(Branch(ops, widths, tuple(int(i in down_layers) for i in range(depth))))
        return HyCTASGenotype(tuple(branches), tuple(int(f) for f in rng.integers(0, 2, depth - 1)))

    # ----------------------------------------------------------------------------------- encoding
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Layout: ``[branches-1, depth] + 3 x ([op]*L + [width]*L + [down]*L) + [fusion]*(L-1)`` with
        ``L = layers``; a genotype of depth ``d`` uses the first ``d`` cells of a slot and ``d-1`` gates."""
        L = self.layers
        slot = [len(self.ops) - 1] * L + [len(self.width_mults) - 1] * L + [1] * L
        upper = np.array([MAX_BRANCHES - 1, L] + slot * MAX_BRANCHES + [1] * (L - 1), dtype=np.int64)
        lower = np.zeros_like(upper)
        lower[1] = self.min_layers
        if self.fixed_branches is not None:
            lower[0] = upper[0] = self.fixed_branches - 1
        return lower, upper

    def encode(self, genotype: HyCTASGenotype) -> np.ndarray:
        """Integer vector; unused branch slots, cells past the depth and dead fusion gates are zeros."""
        d = genotype.depth
        if not self.min_layers <= d <= self.layers or not 1 <= genotype.num_branches <= MAX_BRANCHES:
            raise ValueError(
                f"cannot encode a genotype with {genotype.num_branches} branches of depth {d} "
                f"in a space of depths {self.min_layers}..{self.layers}"
            )
        L = self.layers
        x = np.zeros(self.n_var, dtype=np.int64)
        x[:2] = genotype.num_branches - 1, d
        for k, b in enumerate(genotype.branches):
            base = 2 + 3 * L * k
            x[base : base + d] = [self._index(self.ops, o, "operator") for o in b.ops]
            x[base + L : base + L + d] = [self._width_index(w) for w in b.widths]
            x[base + 2 * L : base + 2 * L + d] = b.downs
        gates = 2 + 3 * L * MAX_BRANCHES
        x[gates : gates + d - 1] = genotype.fusion
        return x

    def decode(self, x: np.ndarray | Sequence[int]) -> HyCTASGenotype:
        """Genotype of an encoding (inverse of :meth:`encode` on its image)."""
        x = np.asarray(x, dtype=np.int64)
        lower, upper = self.bounds()
        if x.shape != lower.shape or np.any(x < lower) or np.any(x > upper):
            raise ValueError(f"encoding must be {len(lower)} integers within bounds")
        L, n, d = self.layers, int(x[0]) + 1, int(x[1])
        branches = []
        for k in range(n):
            base = 2 + 3 * L * k
            branches.append(
                Branch(
                    tuple(self.ops[i] for i in x[base : base + d]),
                    tuple(self.width_mults[i] for i in x[base + L : base + L + d]),
                    tuple(int(v) for v in x[base + 2 * L : base + 2 * L + d]),
                )
            )
        gates = 2 + 3 * L * MAX_BRANCHES
        return HyCTASGenotype(tuple(branches), tuple(int(f) for f in x[gates : gates + d - 1]))

    @staticmethod
    def _index(options: Sequence[str], value: str, what: str) -> int:
        if value not in options:
            raise ValueError(f"{what} {value!r} is not in the space ({list(options)})")
        return options.index(value)

    def _width_index(self, width: float) -> int:
        for i, w in enumerate(self.width_mults):
            if abs(w - width) < 1e-9:
                return i
        raise ValueError(f"width multiplier {width} is not in the space ({list(self.width_mults)})")

    # ------------------------------------------------------------------------- genetic vocabulary
    @property
    def genes(self) -> Genes:
        """Variable indices of the genes (see :meth:`bounds` for the layout)."""
        L = self.layers
        cells, downs, slots = [], [], []
        for k in range(MAX_BRANCHES):
            base = 2 + 3 * L * k
            cells += [(base + i, base + L + i) for i in range(L)]
            downs.append(tuple(range(base + 2 * L, base + 3 * L)))
            slots.append((base, base + 3 * L))
        fusion = 2 + 3 * L * MAX_BRANCHES
        return Genes(0, 1, tuple(cells), tuple(downs), tuple(range(fusion, fusion + L - 1)), tuple(slots))

    def variable_groups(self) -> list[list[int]]:
        """Branch count, depth, each cell's (operator, width), each slot's downsampling flags, each fusion gate."""
        return self.genes.groups()

    def sample_encoding(self, rng: np.random.Generator) -> np.ndarray:
        """Encoding of a sample whose variables the decoding ignores ("dormant") hold a three-branch sample
        of the same depth (unused branch slots), random cells without downsampling (past the depth) and
        random gates (past the depth or dead), so that a mutation of the branch count or the depth turns on
        valid genes."""
        genotype = self.sample(rng)
        n, d, L = genotype.num_branches, genotype.depth, self.layers
        genes = self.genes
        cells = np.array(genes.cells).reshape(MAX_BRANCHES, L, 2)
        filler = self.encode(self._draw(rng, HEADS[-1], d))
        filler[cells[:, d:, 0]] = rng.integers(len(self.ops), size=(MAX_BRANCHES, L - d))
        filler[cells[:, d:, 1]] = rng.integers(len(self.width_mults), size=(MAX_BRANCHES, L - d))
        filler[list(genes.gates)] = rng.integers(0, 2, L - 1)
        keep = np.zeros(self.n_var, dtype=bool)
        keep[[genes.count, genes.depth]] = True
        keep[cells[:n, :d].ravel()] = True
        keep[[i for idx in genes.downs[:n] for i in idx[:d]]] = True
        keep[[g for g, live in zip(genes.gates, genotype.live_gates(), strict=False) if live]] = True
        return np.where(keep, self.encode(genotype), filler)

    def mutate(self, x: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
        """Mutate each gene with probability ``p``: another branch count or depth (when the bounds allow;
        see :meth:`fit_downs`), a new ``(operator, width)`` for a cell, one downsampling moved to another
        cell before the last or toggled there, a flipped gate."""
        genes = self.genes
        lo, hi = self.bounds()
        x = np.array(x, dtype=np.int64)
        for gene in (genes.count, genes.depth):
            if hi[gene] > lo[gene] and rng.random() < p:
                x[gene] = rng.choice([v for v in range(lo[gene], hi[gene] + 1) if v != x[gene]])
        x = self.fit_downs(x, rng)
        for op, width in genes.cells:
            if rng.random() < p:
                n_ops, n_widths = hi[op] + 1, hi[width] + 1
                current = x[op] * n_widths + x[width]
                new = int(rng.integers(n_ops * n_widths - 1))
                new += new >= current
                x[op], x[width] = divmod(new, n_widths)
        for idx in genes.downs:
            if rng.random() < p:
                active = list(idx[: x[genes.depth] - 1])
                flags = x[active]
                on, off = np.flatnonzero(flags), np.flatnonzero(flags == 0)
                if len(on) and len(off) and rng.random() < 0.5:
                    flags[rng.choice(on)], flags[rng.choice(off)] = 0, 1
                else:
                    j = rng.integers(len(active))
                    flags[j] = 1 - flags[j]
                x[active] = flags
        for gate in genes.gates:
            if rng.random() < p:
                x[gate] = 1 - x[gate]
        return x

    def crossover(
        self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Uniform crossover of the genes, then :meth:`fit_downs` on both children."""
        first, second = super().crossover(a, b, rng)
        return self.fit_downs(first, rng), self.fit_downs(second, rng)

    def fit_downs(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``x`` with every downsampling cell on or past the last cell of the encoded depth swapped (flag,
        operator and width) with a random earlier cell of its slot, preferring cells where no branch in use
        downsamples: after a depth change the branches keep their output strides and distinct downsampling
        cells."""
        genes, L = self.genes, self.layers
        x = np.array(x, dtype=np.int64)
        last = int(x[genes.depth]) - 1
        used = genes.downs[: int(x[genes.count]) + 1]
        for k, idx in enumerate(genes.downs):
            late = [j for j in range(last, L) if x[idx[j]]]
            if not late:
                continue
            taken = {j for other in used for j in range(last) if x[other[j]]}
            free = [j for j in range(last) if j not in taken]
            if len(free) < len(late):
                free = [j for j in range(last) if not x[idx[j]]]
            targets = rng.choice(free, size=min(len(late), len(free)), replace=False)
            for src, dst in zip(late, targets, strict=False):
                a, b = list(genes.cells[k * L + src]), list(genes.cells[k * L + dst])
                x[a], x[b] = x[b], x[a]
                x[idx[src]], x[idx[dst]] = 0, 1
        return x

    def with_branches(self, num_branches: int) -> HyCTASSpace:
        """A copy of this space holding only ``num_branches``-branch genotypes (prior and bounds)."""
        if not 1 <= num_branches <= MAX_BRANCHES:
            raise ValueError(f"num_branches must be in 1..{MAX_BRANCHES}, got {num_branches}")
        restricted = copy.copy(self)
        restricted.branch_prior = tuple(float(i + 1 == num_branches) for i in range(MAX_BRANCHES))
        restricted.fixed_branches = num_branches
        return restricted

    def uniform(self) -> HyCTASSpace:
        """This space with a uniform branch-count prior (Algorithm 1's "uniformly generate"); a sub-space of
        one branch count is returned as it is."""
        if self.fixed_branches is not None:
            return self
        flat = copy.copy(self)
        flat.branch_prior = (1.0 / MAX_BRANCHES,) * MAX_BRANCHES
        return flat

    def largest(self, num_branches: int) -> list[HyCTASGenotype]:
        """Candidates for the largest ``num_branches``-branch network S_max of Algorithm 1's latency filter:
        the deepest, widest one of the head with the most high-resolution branches, downsampling as late as
        the rules allow, every gate set, one candidate per non-skip operator (the caller keeps the slowest)."""
        head = {1: (8,), 2: (8, 16), 3: (8, 16, 32)}[num_branches]
        depth, width = self.layers, max(self.width_mults)
        last_free = depth - 2  # downsampling cells are distinct across branches and never the last cell
        downs: list[tuple[int, ...]] = []
        for stride in head:
            n_down = {8: 0, 16: 1, 32: 2}[stride]
            cells = tuple(range(last_free - n_down + 1, last_free + 1))
            last_free -= n_down
            downs.append(cells)
        return [
            genotype
            for op in self._down_ops
            if not self.violations(genotype := HyCTASGenotype(
                tuple(Branch((op,) * depth, (width,) * depth, tuple(int(i in d) for i in range(depth))) for d in downs),
                (1,) * (depth - 1),
            ))
        ]

    def reference_genotypes(self) -> tuple[list[HyCTASGenotype], str]:
        """The largest networks of every branch count this space holds (Algorithm 1's S_max candidates): the
        hypervolume reference is the costliest of them."""
        counts = [self.fixed_branches] if self.fixed_branches else [n for n, p in enumerate(self.branch_prior, 1) if p > 0]
        return [g for n in counts for g in self.largest(n)], "the costliest of the space's largest networks (S_max)"

    def smallest(self) -> list[HyCTASGenotype]:
        """Candidates for the smallest network whose cells all compute (the sandwich rule's smallest path): one
        stride-8 branch of the shallowest depth, every cell at the narrowest width, gates off, one candidate per
        non-skip operator (the caller keeps the cheapest)."""
        depth, width = self.min_layers, min(self.width_mults)
        return [
            genotype
            for op in self._down_ops
            if not self.violations(genotype := HyCTASGenotype(
                (Branch((op,) * depth, (width,) * depth, (0,) * depth),), (0,) * (depth - 1),
            ))
        ]

    def build_options(self) -> dict[str, int]:
        """The network's channel multiplier ``F`` and output stride (8: the searched networks'; a supernet's
        own output stride replaces it for the networks scored on it)."""
        return {"filter_multiplier": self.filter_multiplier, "output_stride": 8}

    def strata(self) -> list[tuple[str, SearchSpace]]:
        """One sub-space per branch count (the paper's per-branch search)."""
        return [(f"{n}branch", self.with_branches(n)) for n in range(1, MAX_BRANCHES + 1)]

    def stratum(self, genotype: HyCTASGenotype) -> str:
        """``<n>branch``: the genotype's branch count, as :meth:`strata` names it."""
        return f"{genotype.num_branches}branch"

    # -------------------------------------------------------------------------------- constraints
    def violations(self, genotype: HyCTASGenotype) -> list[str]:
        """The genotype's own rules plus this space's depth range, operators, widths and memory limit."""
        out = genotype.rule_violations()
        if genotype.num_branches and not self.min_layers <= genotype.depth <= self.layers:
            out.append(
                f"depth: {genotype.depth} cells per branch, the space has {self.min_layers}..{self.layers}"
            )
        if self.fixed_branches is not None and genotype.num_branches != self.fixed_branches:
            out.append(f"branches: {genotype.num_branches}, this sub-space holds {self.fixed_branches}")
        for i, b in enumerate(genotype.branches):
            foreign = sorted(set(b.ops) - set(self.ops))
            if foreign:
                out.append(f"space-ops: branch {i} uses operators {foreign} outside {list(self.ops)}")
            if any(all(abs(w - m) > 1e-9 for m in self.width_mults) for w in b.widths):
                out.append(f"space-widths: branch {i} uses widths outside {list(self.width_mults)}")
        if self.memory_limit_mb is not None and not out:
            mem = self.memory_mb(genotype)
            if mem > self.memory_limit_mb:
                out.append(f"memory-limit: estimated {mem:.0f} MB > limit {self.memory_limit_mb:.0f} MB")
        return out

    def memory_mb(self, genotype: HyCTASGenotype) -> float:
        """fp32 training activation memory (MB) for :attr:`memory_input`, by the per-op model fitted to measured
        saved-tensor bytes (:mod:`segnas.spaces.hyctas.memory`, experiments/hyctas_memory)."""
        return activation_memory_mb(genotype, self.filter_multiplier, *self.memory_input)

    def latency_table(self, cache_dir: str | Path, input_shape: Sequence[int], network: Mapping[str, Any],
                      num_classes: int, device: torch.device, calibration_archs: int, warmup: int,
                      duration_s: float, rebuild: bool = False, evict_mb: float | None = None) -> Any:
        """The per-operator latency lookup table of this space's networks built with ``network`` options,
        calibrated on ``calibration_archs`` measured networks (:mod:`segnas.spaces.hyctas.latency_table`);
        ``rebuild`` measures a cached table again; ``evict_mb``: the cache-evicting buffer (None: the device's
        default)."""
        from segnas.spaces.hyctas.latency_table import LatencyTable, calibration_genotypes

        return LatencyTable(cache_dir, input_shape, network["filter_multiplier"], num_classes,
                            network["output_stride"], device,
                            calibration=calibration_genotypes(self, calibration_archs),
                            calibration_warmup=warmup, calibration_s=duration_s, rebuild=rebuild,
                            evict_mb=evict_mb)
