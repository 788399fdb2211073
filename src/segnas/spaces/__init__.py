"""Search spaces behind one registry, and genotype YAML files (validated on load).

``SPACES`` maps a space name to its class; a new space registers itself by adding an entry here.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from segnas.spaces.base import Genotype, SearchSpace
from segnas.spaces.fasterseg import FasterSegGenotype, FasterSegSpace
from segnas.spaces.hyctas import HyCTASGenotype, HyCTASSpace

SPACES: dict[str, type[SearchSpace]] = {"hyctas": HyCTASSpace, "fasterseg": FasterSegSpace}


def get_space(name: str, /, **cfg: Any) -> SearchSpace:
    """Instantiate the space ``name`` with keyword config (a ``name`` key in ``cfg`` must agree)."""
    cfg_name = cfg.pop("name", name)
    if cfg_name != name:
        raise ValueError(f"space name {name!r} disagrees with config name {cfg_name!r}")
    if name not in SPACES:
        raise KeyError(f"unknown search space {name!r}; registered: {sorted(SPACES)}")
    return SPACES[name](**cfg)


def arch_path(name: str) -> Path:
    """Path of a genotype YAML shipped with the package (``segnas/spaces/archs/NAME.yaml``)."""
    path = Path(str(resources.files("segnas.spaces") / "archs" / f"{name}.yaml"))
    if not path.is_file():
        raise FileNotFoundError(f"no packaged architecture {name!r} ({path})")
    return path


def resolve_genotype_path(spec: str | Path) -> Path:
    """A genotype file path, or ``pkg://NAME`` for a packaged architecture."""
    spec = str(spec)
    return arch_path(spec.removeprefix("pkg://")) if spec.startswith("pkg://") else Path(spec)


def load_genotype(path: str | Path) -> Any:
    """Read and validate a genotype YAML; ``ValueError`` names the file and the violated rule."""
    path = resolve_genotype_path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict) or data.get("space") not in SPACES:
        raise ValueError(f"{path}: expected a mapping with 'space' in {sorted(SPACES)}")
    try:
        genotype = SPACES[data["space"]].genotype_cls.from_dict(data)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    problems = genotype.rule_violations()
    if problems:
        raise ValueError(f"{path}: invalid {data['space']} genotype: " + "; ".join(problems))
    return genotype


def save_genotype(genotype: Genotype, path: str | Path) -> Path:
    """Write a genotype as YAML (lists in flow style, one branch per block)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(genotype.to_dict(), sort_keys=False, default_flow_style=None, width=200))
    return path


__all__ = [
    "SPACES",
    "FasterSegGenotype",
    "FasterSegSpace",
    "Genotype",
    "HyCTASGenotype",
    "HyCTASSpace",
    "SearchSpace",
    "arch_path",
    "get_space",
    "load_genotype",
    "resolve_genotype_path",
    "save_genotype",
]


def as_genotype(value: str | Path | Mapping[str, Any] | Genotype, space: str) -> Genotype:
    """A genotype of ``space`` from a genotype, its plain-dict form, or a YAML path / ``pkg://NAME``.

    Rule checks are left to the network builders (and to :func:`load_genotype` for files).
    """
    cls = SPACES[space].genotype_cls
    if isinstance(value, Mapping):
        return cls.from_dict(dict(value))
    is_file = isinstance(value, (str, Path))
    genotype = load_genotype(value) if is_file else value
    if not isinstance(genotype, cls):
        source = str(value) if is_file else type(value).__name__
        raise ValueError(f"{source}: expected a {space} genotype, got space {genotype.space_name!r}")
    return genotype
