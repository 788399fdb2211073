"""TransNAS-Bench-101's two segmentation spaces as search spaces: ``transnas_micro`` and ``transnas_macro``.

A genotype is a TNB architecture string (:mod:`~segnas.spaces.transnas.arch`), the key every benchmark table
uses; the canonical key is that string.

* micro: 6 integers in 0..3, the cell's op codes a, b, c, d, e, f (4096 networks). Mutation is NASLib's:
  one edge's op changed to another.
* macro: 6 integers in 0..4, the module codes in order, 0 meaning "no module" (a string has 4 to 6 modules;
  zeros are dropped wherever they are). Mutation changes one position (a module's code, or a module added
  or removed through 0), redrawn until the network satisfies the space's rules (3256 networks: 1..4
  downsampling and 1..3 channel-doubling modules).

Crossover is uniform over positions (the default). A space may be restricted to a set of ``allowed``
architectures (a benchmark's table: :meth:`TransNASSpace.restrict`): it then samples only them and every
other architecture is a violation, so the algorithms redraw children outside the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from segnas.spaces.base import METADATA_KEYS, SearchSpace
from segnas.spaces.transnas.arch import all_archs, parse

N_VAR = 6  # micro: the cell's 6 edges; macro: at most 6 modules
MICRO_PREFIX = "64-41414-"
MUTATION_TRIES = 100


@dataclass(frozen=True)
class TransNASGenotype:
    """A TNB architecture string of one space (a subclass per space)."""

    arch: str

    space_name: ClassVar[str]
    tnb_space: ClassVar[str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "arch", str(self.arch))

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space_name, "arch": self.arch}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TransNASGenotype:
        """Inverse of :meth:`to_dict` (metadata keys allowed); ``ValueError`` on another key or space."""
        unknown = sorted(set(data) - {"space", "arch"} - set(METADATA_KEYS))
        if unknown or "arch" not in data:
            raise ValueError(f"a {cls.space_name} genotype has the keys 'space' and 'arch', got {sorted(data)}")
        if data.get("space", cls.space_name) != cls.space_name:
            raise ValueError(f"space {data['space']!r} is not {cls.space_name!r}")
        return cls(data["arch"])

    def rule_violations(self) -> list[str]:
        """Why the string is not an architecture of this space (empty when it is)."""
        try:
            parse(self.arch)
        except ValueError as err:
            return [str(err)]
        if self.arch not in _arch_set(self.tnb_space):
            return [f"{self.arch!r} is not one of the {len(_arch_set(self.tnb_space))} {self.tnb_space} architectures"]
        return []


class TransNASMicroGenotype(TransNASGenotype):
    """An architecture of the micro (cell) space, e.g. ``64-41414-2_32_323``."""

    space_name: ClassVar[str] = "transnas_micro"
    tnb_space: ClassVar[str] = "micro"


class TransNASMacroGenotype(TransNASGenotype):
    """An architecture of the macro (skeleton) space, e.g. ``64-1234-basic``."""

    space_name: ClassVar[str] = "transnas_macro"
    tnb_space: ClassVar[str] = "macro"


_ARCH_SETS: dict[str, frozenset[str]] = {}


def _arch_set(tnb_space: str) -> frozenset[str]:
    if tnb_space not in _ARCH_SETS:
        _ARCH_SETS[tnb_space] = frozenset(all_archs(tnb_space))
    return _ARCH_SETS[tnb_space]


class TransNASSpace(SearchSpace):
    """One TNB-101 space (module docstring); a subclass per space.

    Args:
        bn_quirk: TNB's residual BatchNorm (``eps=1, momentum=1``) in the built networks (macro only).
        allowed: when given, the architecture strings this space is restricted to (e.g. a benchmark table's).
    """

    tnb_space: ClassVar[str]
    genotype_cls: ClassVar[type[TransNASGenotype]]

    def __init__(self, bn_quirk: bool = True, allowed: Iterable[str] | None = None) -> None:
        self.bn_quirk = bool(bn_quirk)
        archs = all_archs(self.tnb_space)
        # non-plain types: the archive context (vars of the space) records the settings, not the table
        self.allowed = None if allowed is None else frozenset(allowed) & _arch_set(self.tnb_space)
        self._pool = np.array([a for a in archs if self.allowed is None or a in self.allowed], dtype=object)
        if not len(self._pool):
            raise ValueError(f"{self.name}: no architecture of the space is allowed")

    @property
    def size(self) -> int:
        """Number of architectures (in the table when restricted)."""
        return len(self._pool)

    def restrict(self, allowed: Iterable[str]) -> TransNASSpace:
        """This space restricted to the architecture strings ``allowed`` (those of the space among them)."""
        return type(self)(self.bn_quirk, allowed)

    def build_options(self) -> dict[str, Any]:
        return {"bn_quirk": self.bn_quirk}

    def sample(self, rng: np.random.Generator) -> TransNASGenotype:
        """Uniform over the space (over the allowed architectures when restricted)."""
        return self.genotype_cls(str(self._pool[int(rng.integers(len(self._pool)))]))

    def key(self, genotype: TransNASGenotype) -> str:
        """The architecture string."""
        return genotype.arch

    def violations(self, genotype: TransNASGenotype) -> list[str]:
        if not isinstance(genotype, self.genotype_cls):
            return [f"expected a {self.name} genotype, got {type(genotype).__name__}"]
        out = genotype.rule_violations()
        if not out and self.allowed is not None and genotype.arch not in self.allowed:
            out.append(f"{genotype.arch} is not in the benchmark table this space is restricted to")
        return out


class TransNASMicroSpace(TransNASSpace):
    """The micro (cell) space: 6 op codes in 0..3 (none, skip, conv1x1, conv3x3)."""

    name: ClassVar[str] = "transnas_micro"
    tnb_space: ClassVar[str] = "micro"
    genotype_cls: ClassVar[type[TransNASGenotype]] = TransNASMicroGenotype

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(N_VAR, dtype=np.int64), np.full(N_VAR, 3, dtype=np.int64)

    def encode(self, genotype: TransNASGenotype) -> np.ndarray:
        _, _, cell = parse(genotype.arch)
        if cell is None:
            raise ValueError(f"{genotype.arch!r} is not a micro architecture")
        return np.array([int(c) for c in cell], dtype=np.int64)

    def decode(self, x: np.ndarray | Sequence[int]) -> TransNASGenotype:
        a, b, c, d, e, f = (int(v) for v in x)
        return self.genotype_cls(f"{MICRO_PREFIX}{a}_{b}{c}_{d}{e}{f}")

    def mutate(self, x: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
        """NASLib's mutation: one edge's op changed to one of the 3 others (``p`` is not used)."""
        child = np.array(x, dtype=np.int64)
        i = int(rng.integers(N_VAR))
        new = int(rng.integers(3))
        child[i] = new + (new >= child[i])
        return child


class TransNASMacroSpace(TransNASSpace):
    """The macro (skeleton) space: up to 6 module codes in 1..4, 0 for no module."""

    name: ClassVar[str] = "transnas_macro"
    tnb_space: ClassVar[str] = "macro"
    genotype_cls: ClassVar[type[TransNASGenotype]] = TransNASMacroGenotype

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(N_VAR, dtype=np.int64), np.full(N_VAR, 4, dtype=np.int64)

    def encode(self, genotype: TransNASGenotype) -> np.ndarray:
        _, modules, cell = parse(genotype.arch)
        if cell is not None or len(modules) > N_VAR:
            raise ValueError(f"{genotype.arch!r} is not a macro architecture of at most {N_VAR} modules")
        return np.array([int(m) for m in modules] + [0] * (N_VAR - len(modules)), dtype=np.int64)

    def decode(self, x: np.ndarray | Sequence[int]) -> TransNASGenotype:
        """The modules in order, zeros dropped (may violate the rules: e.g. fewer than 4 modules)."""
        return self.genotype_cls(f"64-{''.join(str(int(v)) for v in x if int(v))}-basic")

    def mutate(self, x: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
        """One position changed to another value (0 removes a module, a value where there was none adds one),
        redrawn until the network satisfies the space's rules (``p`` is not used); returned compacted."""
        parent = np.array(x, dtype=np.int64)
        modules: list[int] = []
        for _ in range(MUTATION_TRIES):
            child = parent.copy()
            i = int(rng.integers(N_VAR))
            new = int(rng.integers(4))
            child[i] = new + (new >= child[i])
            modules = [int(v) for v in child if v]
            if self.decode(child).arch in _arch_set(self.tnb_space):
                break
        return np.array(modules + [0] * (N_VAR - len(modules)), dtype=np.int64)
