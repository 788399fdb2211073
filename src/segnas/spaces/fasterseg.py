"""The FasterSeg search space (Chen et al., ICLR 2020): two multi-resolution branches after a stride-8 stem.

A branch is a chain of cells; cell ``i`` has an operator (FasterSeg's alpha), the scale index of its input
(``path``, FasterSeg's beta: 0, 1, 2 for strides 8, 16, 32; the cell downsamples when the next cell's
scale is higher) and an output width ratio (FasterSeg's ratio). The last cell's output width is the fixed
head width. One branch ends at stride 32, the other at stride 8 or 16; both are fused at stride 8.
Cells are shared between the branches from the first one as long as they agree (op, path, width).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from segnas.spaces.base import SearchSpace

# FasterSeg operator order (alpha columns): skip, conv, zoomed conv, conv x2, zoomed conv x2.
OPS = ("skip", "conv", "conv_downup", "conv_2x", "conv_2x_downup")
WIDTHS = (4 / 12, 6 / 12, 8 / 12, 10 / 12, 1.0)
STRIDES = (8, 16, 32)
MAX_LAYERS = 16


def _width_ok(w: float) -> bool:
    return any(abs(w - c) < 1e-4 for c in WIDTHS)


@dataclass(frozen=True)
class FasterSegBranch:
    """One branch: per cell the operator, input scale index and (except the last cell) output width."""

    ops: tuple[str, ...]
    path: tuple[int, ...]
    widths: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", tuple(str(o) for o in self.ops))
        object.__setattr__(self, "path", tuple(int(p) for p in self.path))
        object.__setattr__(self, "widths", tuple(round(float(w), 6) for w in self.widths))
        if len(self.path) != len(self.ops) or len(self.widths) != max(len(self.ops) - 1, 0):
            raise ValueError(
                f"branch needs one path entry per op and one width per op but the last, got "
                f"{len(self.ops)} ops, {len(self.path)} path entries, {len(self.widths)} widths"
            )

    @property
    def depth(self) -> int:
        return len(self.ops)

    @property
    def last(self) -> int:
        """Scale index of the branch output (0, 1, 2 for strides 8, 16, 32)."""
        return self.path[-1] if self.path else 0

    def downs(self) -> tuple[int, ...]:
        """Per cell 1 when it downsamples (the next cell's scale is higher), else 0."""
        return (*tuple(int(b > a) for a, b in zip(self.path, self.path[1:], strict=False)), 0)

    def violations(self) -> list[str]:
        """Rule violations of this branch (empty when valid)."""
        out = []
        if not self.ops:
            return ["branch has no cells"]
        if len(self.ops) > MAX_LAYERS:
            out.append(f"branch has {len(self.ops)} cells, at most {MAX_LAYERS}")
        bad = sorted(set(self.ops) - set(OPS))
        if bad:
            out.append(f"unknown operators {bad}; expected {list(OPS)}")
        if self.path[0] != 0:
            out.append("path must start at scale 0 (stride 8)")
        if any(b - a not in (0, 1) for a, b in zip(self.path, self.path[1:], strict=False)):
            out.append(f"path {list(self.path)} must be non-decreasing in steps of at most 1")
        if any(not _width_ok(w) for w in self.widths):
            out.append(f"widths {list(self.widths)} must be in {[round(w, 4) for w in WIDTHS]}")
        downs = self.downs()
        if any(d and o == "skip" for o, d in zip(self.ops, downs, strict=True)):
            out.append("a downsampling cell cannot be skip")
        segments, cur = [], []
        for o, d in zip(self.ops, downs, strict=True):
            cur.append(o)
            if d:
                segments.append(cur)
                cur = []
        segments.append(cur)
        if any(seg and all(s == "skip" for s in seg) for seg in segments):
            out.append("a segment between downsamplings may not be all skip")
        return out


@dataclass(frozen=True)
class FasterSegGenotype:
    """An immutable FasterSeg network: two branches (first ends at 1/32, second at 1/8 or 1/16)."""

    branches: tuple[FasterSegBranch, ...]
    fch: int = 12
    stem_head_width: float = 8 / 12

    space_name: ClassVar[str] = "fasterseg"

    def __post_init__(self) -> None:
        object.__setattr__(self, "branches", tuple(self.branches))
        object.__setattr__(self, "fch", int(self.fch))
        object.__setattr__(self, "stem_head_width", round(float(self.stem_head_width), 6))

    @property
    def lasts(self) -> tuple[int, ...]:
        return tuple(b.last for b in self.branches)

    def rule_violations(self) -> list[str]:
        """Structural rules of the space (empty when valid)."""
        out = []
        if len(self.branches) != 2:
            return [f"need exactly 2 branches, got {len(self.branches)}"]
        if self.lasts[0] != 2 or self.lasts[1] not in (0, 1):
            out.append(f"branch outputs must be at scales (2, 0|1), got {self.lasts}")
        for i, b in enumerate(self.branches):
            out += [f"branch {i}: {v}" for v in b.violations()]
        if self.fch < 1:
            out.append(f"fch must be positive, got {self.fch}")
        if not 0 < self.stem_head_width <= 1:
            out.append(f"stem_head_width must be in (0, 1], got {self.stem_head_width}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "space": self.space_name,
            "fch": self.fch,
            "stem_head_width": self.stem_head_width,
            "branches": [
                {"ops": list(b.ops), "path": list(b.path), "widths": list(b.widths)} for b in self.branches
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FasterSegGenotype:
        if data.get("space", cls.space_name) != cls.space_name:
            raise ValueError(f"not a {cls.space_name} genotype: space={data.get('space')!r}")
        try:
            branches = tuple(
                FasterSegBranch(tuple(b["ops"]), tuple(b["path"]), tuple(b["widths"]))
                for b in data["branches"]
            )
        except (KeyError, TypeError) as err:
            raise ValueError(f"malformed fasterseg genotype: {err!r}") from err
        return cls(branches, int(data.get("fch", 12)), float(data.get("stem_head_width", 8 / 12)))


class FasterSegSpace(SearchSpace):
    """FasterSeg's per-layer op / path / width choices, as a fixed-length integer vector.

    Per branch the encoding is ``[depth, last, down_1, down_2]`` followed by ``(op, width)`` for each of
    ``max_depth`` cell slots (slots past ``depth`` and the last cell's width are ignored). ``down_k`` is
    the index of the cell that performs the k-th downsampling. The first branch always ends at 1/32.
    """

    name: ClassVar[str] = "fasterseg"
    genotype_cls: ClassVar[type] = FasterSegGenotype

    def __init__(
        self,
        min_depth: int = 4,
        max_depth: int = 12,
        ops: Sequence[str] = OPS,
        fch: int = 12,
        stem_head_width: float = 8 / 12,
    ) -> None:
        if not 3 <= min_depth <= max_depth <= MAX_LAYERS:
            raise ValueError(
                f"need 3 <= min_depth <= max_depth <= {MAX_LAYERS}, got {min_depth}, {max_depth}"
            )
        bad = sorted(set(ops) - set(OPS))
        if bad or not ops:
            raise ValueError(f"ops must be a non-empty subset of {list(OPS)}, got {list(ops)}")
        if all(o == "skip" for o in ops):
            raise ValueError("ops need at least one operator besides skip")
        self.min_depth, self.max_depth = int(min_depth), int(max_depth)
        self.ops = tuple(ops)
        self.fch, self.stem_head_width = int(fch), float(stem_head_width)

    # -- layout of the vector ------------------------------------------------------------------------
    @property
    def branch_len(self) -> int:
        return 4 + 2 * self.max_depth

    def variable_groups(self) -> list[list[int]]:
        """Index groups mutated/crossed together: each header variable, and each cell row (op, width)."""
        groups = []
        for b in range(2):
            base = b * self.branch_len
            groups += [[base + k] for k in range(4)]
            groups += [[base + 4 + 2 * i, base + 5 + 2 * i] for i in range(self.max_depth)]
        return groups

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = [], []
        for b in range(2):
            last_lo, last_hi = (2, 2) if b == 0 else (0, 1)
            lo += [self.min_depth, last_lo, 0, 0]
            hi += [self.max_depth, last_hi, self.max_depth - 2, self.max_depth - 2]
            lo += [0, 0] * self.max_depth
            hi += [len(self.ops) - 1, len(WIDTHS) - 1] * self.max_depth
        return np.array(lo, dtype=np.int64), np.array(hi, dtype=np.int64)

    # -- sampling ------------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> FasterSegGenotype:
        for _ in range(1000):
            branches = (self._sample_branch(rng, 2), self._sample_branch(rng, int(rng.integers(0, 2))))
            g = FasterSegGenotype(branches, self.fch, self.stem_head_width)
            if not self.violations(g):
                return g
        raise RuntimeError("could not sample a valid fasterseg genotype in 1000 tries")

    def _sample_branch(self, rng: np.random.Generator, last: int) -> FasterSegBranch:
        depth = int(rng.integers(max(self.min_depth, last + 1), self.max_depth + 1))
        downs = sorted(rng.choice(depth - 1, size=last, replace=False).tolist()) if last else []
        non_skip = [o for o in self.ops if o != "skip"]
        ops = [str(rng.choice(non_skip)) if i in downs else str(rng.choice(self.ops)) for i in range(depth)]
        widths = [WIDTHS[int(rng.integers(len(WIDTHS)))] for _ in range(depth - 1)]
        return FasterSegBranch(tuple(ops), _path(depth, downs), tuple(widths))

    # -- encoding ------------------------------------------------------------------------------------
    def encode(self, genotype: FasterSegGenotype) -> np.ndarray:
        x: list[int] = []
        for b in genotype.branches:
            downs = [i for i, d in enumerate(b.downs()) if d]
            downs += [0] * (2 - len(downs))
            x += [b.depth, b.last, *downs[:2]]
            for i in range(self.max_depth):
                op = self.ops.index(b.ops[i]) if i < b.depth else 0
                w = self._width_index(b.widths[i]) if i < b.depth - 1 else 0
                x += [op, w]
        return np.array(x, dtype=np.int64)

    def decode(self, x: np.ndarray | Sequence[int]) -> FasterSegGenotype:
        x = [int(v) for v in x]
        if len(x) != 2 * self.branch_len:
            raise ValueError(f"expected {2 * self.branch_len} variables, got {len(x)}")
        branches = []
        for b in range(2):
            v = x[b * self.branch_len : (b + 1) * self.branch_len]
            depth, last = v[0], v[1]
            downs = v[2 : 2 + last]
            ops = tuple(self.ops[v[4 + 2 * i]] for i in range(depth))
            widths = tuple(WIDTHS[v[5 + 2 * i]] for i in range(depth - 1))
            branches.append(FasterSegBranch(ops, _path(depth, downs), widths))
        return FasterSegGenotype(tuple(branches), self.fch, self.stem_head_width)

    def _width_index(self, width: float) -> int:
        for i, w in enumerate(WIDTHS):
            if abs(w - width) < 1e-4:
                return i
        raise ValueError(f"width {width} not in {WIDTHS}")

    def violations(self, genotype: FasterSegGenotype) -> list[str]:
        out = genotype.rule_violations()
        for i, b in enumerate(genotype.branches):
            if not self.min_depth <= b.depth <= self.max_depth:
                out.append(f"branch {i}: depth {b.depth} outside [{self.min_depth}, {self.max_depth}]")
            extra = sorted(set(b.ops) - set(self.ops))
            if extra:
                out.append(f"branch {i}: operators {extra} not enabled in this space")
        return out


def _path(depth: int, downs: Sequence[int]) -> tuple[int, ...]:
    """Scale index of every cell's input given the indices of the downsampling cells.

    Invalid down indices (repeated, or on/after the last cell) yield a path that fails validation.
    """
    path, scale = [], 0
    downs = list(downs)
    for i in range(depth):
        path.append(scale)
        scale += downs.count(i)
    if any(d >= depth - 1 or d < 0 for d in downs):
        path[-1] = path[-1] + 3  # flags the invalid downsampling position
    return tuple(path)
