"""Common interface of the search spaces: what every search algorithm and stage relies on.

A space owns its genetic vocabulary (NASLib's habit): sampling, an integer encoding, the variable groups
that crossover swaps and mutation redraws, mutation and crossover on encodings, constraint violations and a
canonical key. The algorithms in :mod:`segnas.search` know no space beyond this interface.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Container
from typing import Any, ClassVar, Protocol

import numpy as np

# Genotype YAML keys that are not the genotype (ignored on load): the measured metrics, the network and input
# they were measured on, the command that retrains the genotype.
METADATA_KEYS = ("metrics", "measured_on", "retrain_command")


def canonical_json(data: Any) -> str:
    """Compact JSON with sorted keys: the string form of a canonical key."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


class Genotype(Protocol):
    """An immutable, hashable architecture with a plain-data (YAML) form."""

    space_name: ClassVar[str]

    def to_dict(self) -> dict[str, Any]: ...

    def rule_violations(self) -> list[str]: ...


REFERENCE_SAMPLE = 32  # genotypes behind the hypervolume reference of a space without largest networks


class SearchSpace(ABC):
    """A space of genotypes: sampling, an integer-vector encoding, genetic operators and constraints.

    Subclasses implement the abstract methods; the genetic operators have generic defaults over
    :meth:`variable_groups` that a space overrides where its genes have more structure.
    """

    name: ClassVar[str]
    genotype_cls: ClassVar[type]

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Any:
        """Draw a genotype from the space's prior; samples have no violations."""

    @abstractmethod
    def encode(self, genotype: Any) -> np.ndarray:
        """Integer vector of the genotype, within :meth:`bounds`."""

    @abstractmethod
    def decode(self, x: np.ndarray | list[int]) -> Any:
        """Genotype of an integer vector (which may violate constraints)."""

    @abstractmethod
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Inclusive lower and upper bounds of every integer variable."""

    @abstractmethod
    def violations(self, genotype: Any) -> list[str]:
        """Human-readable descriptions of the violated constraints (empty when valid)."""

    @property
    def n_var(self) -> int:
        """Length of the encoding."""
        return len(self.bounds()[0])

    def is_valid(self, genotype: Any) -> bool:
        """True when the genotype violates no constraint."""
        return not self.violations(genotype)

    def key(self, genotype: Any) -> str:
        """Canonical key: two genotypes that build the same network have the same key."""
        return canonical_json(genotype.to_dict())

    def draw_unique(
        self,
        rng: np.random.Generator,
        n: int,
        accept: Callable[[Any], bool] | None = None,
        max_tries: int | None = None,
        exclude: Container[str] = (),
        encoded: bool = False,
    ) -> list[Any]:
        """Up to ``n`` distinct genotypes (by :meth:`key`, none in ``exclude``) drawn with :meth:`sample`, each new
        one kept when ``accept`` (default: always; samples have no violations) allows it; stops after
        ``max_tries`` draws (default ``1000 * n``). With ``encoded``, drawn with :meth:`sample_encoding` and
        returned as ``(encoding, genotype)`` pairs (the encoding as drawn, dormant variables included)."""
        drawn: dict[str, Any] = {}
        for _ in range(1000 * n if max_tries is None else max_tries):
            if len(drawn) == n:
                break
            x = self.sample_encoding(rng) if encoded else None
            genotype = self.sample(rng) if x is None else self.decode(x)
            key = self.key(genotype)
            if key not in drawn and key not in exclude and (accept is None or accept(genotype)):
                drawn[key] = genotype if x is None else (x, genotype)
        return list(drawn.values())

    def draw_stratified(self, rng: np.random.Generator, n: int) -> list[Any]:
        """Up to ``n`` distinct genotypes drawn from each of :meth:`strata` in turn (e.g. HyCTAS: 1, 2, 3
        branches, 1, 2, 3, ...); fewer only when the space runs out (after ``1000 * n`` draws)."""
        strata = [sub for _, sub in self.strata()]
        drawn: dict[str, Any] = {}
        for _ in range(1000 * n):
            if len(drawn) == n:
                break
            genotype = strata[len(drawn) % len(strata)].sample(rng)
            drawn.setdefault(self.key(genotype), genotype)
        return list(drawn.values())

    def variable_groups(self) -> list[list[int]]:
        """Indices of the variables that only make sense together (crossover and mutation units)."""
        return [[i] for i in range(self.n_var)]

    def sample_encoding(self, rng: np.random.Generator) -> np.ndarray:
        """Encoding of a sample (a space may fill variables its decoding ignores)."""
        return self.encode(self.sample(rng))

    def mutate(self, x: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
        """Redraw each variable group with probability ``p`` (at least one group) to another value, uniform
        among the group's other values within bounds (groups with a single possible value are left alone)."""
        lo, hi = self.bounds()
        child = np.array(x, dtype=np.int64)
        groups = [g for g in self.variable_groups() if np.any(hi[g] > lo[g])]
        if not groups:
            return child
        chosen = [g for g in groups if rng.random() < p] or [groups[int(rng.integers(len(groups)))]]
        for g in chosen:
            sizes = tuple(int(s) for s in hi[g] - lo[g] + 1)
            current = int(np.ravel_multi_index(tuple(np.clip(child[g], lo[g], hi[g]) - lo[g]), sizes))
            new = int(rng.integers(int(np.prod(sizes)) - 1))
            new += new >= current
            child[g] = np.array(np.unravel_index(new, sizes), dtype=np.int64) + lo[g]
        return child

    def crossover(
        self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Uniform crossover of variable groups: two complementary children."""
        groups = self.variable_groups()
        first, second = np.array(a, dtype=np.int64), np.array(b, dtype=np.int64)
        for group, swap in zip(groups, rng.random(len(groups)) < 0.5, strict=True):
            if swap:
                first[group], second[group] = b[group], a[group]
        return first, second

    def uniform(self) -> SearchSpace:
        """This space with a uniform prior, for an initial population "uniformly generated" (default: itself)."""
        return self

    def build_options(self) -> dict[str, Any]:
        """Keyword options of :func:`segnas.models.build_network` that this space's settings fix."""
        return {}

    def strata(self) -> list[tuple[str, SearchSpace]]:
        """Sub-spaces searched separately when a search is stratified (e.g. HyCTAS per branch count)."""
        return [("all", self)]

    def stratum(self, genotype: Any) -> str:
        """The name (of :meth:`strata`) of the sub-space ``genotype`` belongs to."""
        name = next((name for name, sub in self.strata() if sub.is_valid(genotype)), None)
        if name is None:
            raise ValueError(f"{genotype!r} is in no stratum of the {self.name} space: {self.violations(genotype)}")
        return name

    def reference_genotypes(self) -> tuple[list[Any], str]:
        """The networks whose largest cost is the hypervolume reference of every search of this space (the
        same for every run and seed, so hypervolumes compare), and how they were chosen. Default:
        ``REFERENCE_SAMPLE`` genotypes drawn with seed 0; a space that knows its largest networks returns them."""
        rng = np.random.default_rng(0)
        return ([self.sample(rng) for _ in range(REFERENCE_SAMPLE)],
                f"the costliest of {REFERENCE_SAMPLE} genotypes drawn with seed 0")
