"""Common interface of the search spaces (what the search algorithms and stages rely on)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Protocol

import numpy as np


class Genotype(Protocol):
    """An immutable, hashable architecture with a plain-data (YAML) form."""

    space_name: ClassVar[str]

    def to_dict(self) -> dict[str, Any]: ...

    def rule_violations(self) -> list[str]: ...


class SearchSpace(ABC):
    """A space of genotypes with sampling, an integer-vector encoding for pymoo, and constraints."""

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
