"""TransNAS-Bench-101 architecture strings: parsing, the micro and macro spaces, uniform sampling.

Strings are ``{C}-{macro skeleton}-{cell}``:

* micro (cell) space, 4096 nets: ``64-41414-a_bc_def``; the cell is a 4-node DAG, node1 = op_a(n0),
  node2 = op_b(n0) + op_c(n1), node3 = op_d(n0) + op_e(n1) + op_f(n2); op codes 0 none, 1 skip,
  2 ReLU-conv1x1-BN, 3 ReLU-conv3x3-BN.
* macro space, 3256 nets: ``64-<4..6 module codes>-basic``; each module is two ResNet basic blocks;
  code 1 keeps, 2 doubles channels, 3 halves resolution, 4 does both.
"""

from __future__ import annotations

import functools
import itertools
import random
import re
from collections.abc import Sequence

NUM_CLASSES = 17
INPUT_SIZE = (256, 256)
SPACES = ("micro", "macro")

_MICRO_RE = re.compile(r"^(\d+)-(\d+)-([0-3])_([0-3]{2})_([0-3]{3})$")
_MACRO_RE = re.compile(r"^(\d+)-([1-4]+)-basic$")


def parse(arch_str: str) -> tuple[int, str, str | None]:
    """Split an arch string into (channels, module codes, 6 cell op codes or None for ``basic``)."""
    if m := _MICRO_RE.match(arch_str):
        channels, modules, cell = int(m[1]), m[2], m[3] + m[4] + m[5]
    elif m := _MACRO_RE.match(arch_str):
        channels, modules, cell = int(m[1]), m[2], None
    else:
        raise ValueError(
            f"bad TransNAS-Bench-101 arch string {arch_str!r}: expected e.g. '64-41414-2_32_323' "
            "(micro) or '64-1234-basic' (macro)"
        )
    if channels < 2 or channels % 2 or not set(modules) <= set("1234"):
        raise ValueError(f"bad TransNAS-Bench-101 arch string {arch_str!r}: channels or module codes")
    downs = sum(int(c) > 2 for c in modules)
    if not 0 <= downs <= 4:
        raise ValueError(f"{arch_str!r}: {downs} downsampling modules, the decoder supports 0..4")
    return channels, modules, cell


def space_of(arch_str: str) -> str:
    """``'micro'`` or ``'macro'``."""
    return "macro" if arch_str.endswith("-basic") else "micro"


def _macro_ok(modules: Sequence[int]) -> bool:
    downs = sum(m > 2 for m in modules)
    doubles = sum(m % 2 == 0 for m in modules)
    return 1 <= downs <= 4 and 1 <= doubles <= 3


@functools.cache
def all_archs(space: str) -> tuple[str, ...]:
    """Every architecture string of ``space`` (4096 micro, 3256 macro), in a fixed order."""
    if space == "micro":
        return tuple(
            f"64-41414-{a}_{b}{c}_{d}{e}{f}" for a, b, c, d, e, f in itertools.product("0123", repeat=6)
        )
    if space == "macro":
        return tuple(
            f"64-{''.join(map(str, mods))}-basic"
            for n in (4, 5, 6)
            for mods in itertools.product((1, 2, 3, 4), repeat=n)
            if _macro_ok(mods)
        )
    raise ValueError(f"unknown TransNAS-Bench-101 space {space!r}; expected one of {SPACES}")


def sample(rng: random.Random, space: str) -> str:
    """A uniformly random architecture string of ``space``."""
    return rng.choice(all_archs(space))
