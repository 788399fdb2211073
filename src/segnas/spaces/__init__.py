"""Search spaces, each a package (``hyctas``, ``fasterseg``, ``transnas``) that registers itself once.

- :mod:`~segnas.spaces.base`: the :class:`SearchSpace` interface every search relies on.
- :mod:`~segnas.spaces.registry`: one :class:`SpaceEntry` per space (space, genotype, network builder, cost
  walk), :func:`register_space`, :func:`get_space`.
- :mod:`~segnas.spaces.genotype_io`: genotype YAML files (validated on load), :func:`as_genotype`.
- :mod:`~segnas.spaces.costs`: MACs and params of a genotype's network (analytic where the space has a
  cost walk, traced otherwise).
- :mod:`~segnas.spaces.transnas`: the TransNAS-Bench-101 networks and its two spaces (``transnas_micro``,
  ``transnas_macro``).
"""

from segnas.spaces.base import METADATA_KEYS, Genotype, SearchSpace
from segnas.spaces.costs import analytic_costs, builder_costs, genotype_costs, traced_costs
from segnas.spaces.fasterseg import FasterSegGenotype, FasterSegSpace
from segnas.spaces.genotype_io import (
    arch_path,
    as_genotype,
    load_genotype,
    resolve_genotype_path,
    save_genotype,
)
from segnas.spaces.hyctas import HyCTASGenotype, HyCTASSpace
from segnas.spaces.registry import (
    SPACES,
    SpaceEntry,
    genotype_key,
    get_space,
    network_options,
    register_space,
    space_entry,
    space_from_config,
)
from segnas.spaces.transnas import TransNASMacroSpace, TransNASMicroSpace

__all__ = [
    "METADATA_KEYS",
    "SPACES",
    "FasterSegGenotype",
    "FasterSegSpace",
    "Genotype",
    "HyCTASGenotype",
    "HyCTASSpace",
    "SearchSpace",
    "SpaceEntry",
    "TransNASMacroSpace",
    "TransNASMicroSpace",
    "analytic_costs",
    "arch_path",
    "as_genotype",
    "builder_costs",
    "genotype_costs",
    "genotype_key",
    "get_space",
    "load_genotype",
    "network_options",
    "register_space",
    "resolve_genotype_path",
    "save_genotype",
    "space_entry",
    "space_from_config",
    "traced_costs",
]
