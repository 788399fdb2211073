"""The HyCTAS genotype: up to three parallel branches of cells after a stride-8 stem.

A branch is a sequence of cells; cell ``l`` chooses an operator, the width multiplier of its output
and whether it downsamples (stride 2). A branch starts at stride 8 and ends at stride 8, 16 or 32
after 0, 1 or 2 downsamplings, never at its last cell (as in the reference). All branches have the
same number of cells, the genotype's depth (searched: the released S/M/L have 11/17/20). ``fusion[l]``
is the binary node after layer ``l`` that, when set, adds to every branch the features of the
branches at other resolutions. A gate after a layer whose branches all run at one resolution fuses
nothing: genotypes hold such gates at 0 (canonical form, so one network has one genotype and one key).
The branch output strides select one of the six output heads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from segnas.spaces.base import METADATA_KEYS

# Operator names a cell may use (the keys of ``segnas.nn.ops.OPS``; kept here so that spaces do not
# import torch).
KNOWN_OPS = (
    "skip",
    "conv",
    "lightweight_conv",
    "lightweight_conv2x",
    "self_attention",
    "self_attention_reference",
    "transformer",
)
STRIDES = (8, 16, 32)
HEADS: tuple[tuple[int, ...], ...] = ((8,), (16,), (32,), (8, 16), (8, 32), (8, 16, 32))
MAX_BRANCHES = 3
# Operators without a bypass of their own: a cell of one that keeps its input's shape adds an identity
# skip (``x + op(x)``), so that drop path can drop the operator and leave the input.
IDENTITY_SKIP_OPS = ("conv",)
_BRANCH_KEYS = ("ops", "widths", "downs")
_GENOTYPE_KEYS = ("space", "branches", "fusion")


@dataclass(frozen=True)
class Branch:
    """One path: per cell the operator name, output width multiplier and downsampling flag (0/1)."""

    ops: tuple[str, ...]
    widths: tuple[float, ...]
    downs: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", tuple(str(o) for o in self.ops))
        object.__setattr__(self, "widths", tuple(float(w) for w in self.widths))
        object.__setattr__(self, "downs", tuple(int(d) for d in self.downs))
        if not len(self.ops) == len(self.widths) == len(self.downs):
            raise ValueError(
                f"branch needs one op, width and down flag per cell, got "
                f"{len(self.ops)} ops, {len(self.widths)} widths, {len(self.downs)} downs"
            )

    @property
    def depth(self) -> int:
        return len(self.ops)

    @property
    def down_layers(self) -> tuple[int, ...]:
        """Indices of the downsampling cells."""
        return tuple(i for i, d in enumerate(self.downs) if d)

    @property
    def out_stride(self) -> int:
        """Output stride of the branch (8, 16, 32, ...)."""
        return 8 * 2 ** sum(self.downs)

    def cell_strides(self) -> tuple[int, ...]:
        """Input stride of every cell."""
        strides, s = [], 8
        for d in self.downs:
            strides.append(s)
            s *= 2 if d else 1
        return tuple(strides)


@dataclass(frozen=True)
class HyCTASGenotype:
    """An immutable, hashable HyCTAS sub-network (branches ordered by output stride)."""

    branches: tuple[Branch, ...]
    fusion: tuple[int, ...]

    space_name: ClassVar[str] = "hyctas"

    def __post_init__(self) -> None:
        object.__setattr__(self, "branches", tuple(self.branches))
        depths = {b.depth for b in self.branches}
        if len(depths) > 1:
            raise ValueError(f"all branches must have the same number of cells, got depths {sorted(depths)}")
        if self.branches and len(self.fusion) != self.depth - 1:
            raise ValueError(f"fusion needs depth-1 = {self.depth - 1} gates, got {len(self.fusion)}")
        live = self.live_gates()
        fusion = zip(self.fusion, live, strict=True) if self.branches else ()
        object.__setattr__(self, "fusion", tuple(int(f) if on else 0 for f, on in fusion))

    def live_gates(self) -> tuple[bool, ...]:
        """Per fusion gate: whether the branches run at different resolutions after its layer."""
        strides = [[sum(b.downs[: layer + 1]) for b in self.branches] for layer in range(self.depth - 1)]
        return tuple(len(set(s)) > 1 for s in strides)

    @property
    def num_branches(self) -> int:
        return len(self.branches)

    @property
    def depth(self) -> int:
        return self.branches[0].depth if self.branches else 0

    @property
    def head(self) -> tuple[int, ...]:
        """Output strides of the branches: the head ``theta`` this sub-network uses."""
        return tuple(b.out_stride for b in self.branches)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (the YAML layout)."""
        return {
            "space": self.space_name,
            "branches": [
                {"ops": list(b.ops), "widths": list(b.widths), "downs": list(b.downs)} for b in self.branches
            ],
            "fusion": list(self.fusion),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HyCTASGenotype:
        """Inverse of :meth:`to_dict` (metadata keys allowed); raises ``ValueError`` on a malformed layout
        or an unknown key."""
        unknown = sorted(set(data) - set(_GENOTYPE_KEYS) - set(METADATA_KEYS))
        if unknown:
            raise ValueError(
                f"unknown hyctas genotype keys {unknown}; expected {[*_GENOTYPE_KEYS, *METADATA_KEYS]}"
            )
        try:
            for b in data["branches"]:
                extra = sorted(set(b) - set(_BRANCH_KEYS))
                if extra:
                    raise ValueError(f"unknown hyctas branch keys {extra}; expected {list(_BRANCH_KEYS)}")
            branches = tuple(Branch(b["ops"], b["widths"], b["downs"]) for b in data["branches"])
            fusion = data.get("fusion")
        except (KeyError, TypeError) as err:
            raise ValueError(
                f"malformed hyctas genotype (needs branches with ops/widths/downs): {err}"
            ) from err
        if fusion is None:
            fusion = [0] * max(0, (branches[0].depth if branches else 0) - 1)
        return cls(branches, tuple(fusion))

    def rule_violations(self) -> list[str]:
        """The paper's constraints and structural rules that hold in every HyCTAS space."""
        out: list[str] = []
        if not self.branches:
            return ["at-least-one-path: the sub-network has no branch"]
        if self.num_branches > MAX_BRANCHES:
            out.append(f"max-branches: {self.num_branches} branches, at most {MAX_BRANCHES} allowed")
        for i, b in enumerate(self.branches):
            unknown = sorted(set(b.ops) - set(KNOWN_OPS))
            if unknown:
                out.append(f"known-ops: branch {i} uses unknown operators {unknown}")
            if any(d not in (0, 1) for d in b.downs):
                out.append(f"binary-downs: branch {i} has down flags other than 0/1")
            if sum(b.downs) > 2:
                out.append(f"max-stride-32: branch {i} downsamples {sum(b.downs)} times (at most 2)")
            if any(w <= 0 for w in b.widths):
                out.append(f"positive-widths: branch {i} has a width multiplier <= 0")
            skips = [layer for layer in b.down_layers if b.ops[layer] == "skip"]
            if skips:
                out.append(f"no-skip-at-downsampling: branch {i} has skip at downsampling cells {skips}")
            if b.downs and b.downs[-1]:
                out.append(
                    f"no-downsampling-at-last-cell: branch {i} downsamples at its last cell {b.depth - 1}"
                )
        if self.head not in HEADS:
            out.append(f"head: branch output strides {self.head} are not one of the six heads {HEADS}")
        seen: dict[int, int] = {}
        for i, b in enumerate(self.branches):
            for layer in b.down_layers:
                if layer in seen:
                    out.append(
                        f"distinct-downsampling: branches {seen[layer]} and {i} both downsample at layer {layer}"
                    )
                seen[layer] = i
        if any(f not in (0, 1) for f in self.fusion):
            out.append("binary-fusion: fusion gates must be 0 or 1")
        return out
