"""Genotype YAML files: read (validated), written (widths as twelfths), and genotypes from any of their forms.

A genotype YAML may also carry its measured ``metrics`` and the ``retrain_command`` that retrains it;
loading ignores both (:data:`~segnas.spaces.base.METADATA_KEYS`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from segnas.spaces.base import METADATA_KEYS, Genotype
from segnas.spaces.registry import SPACES, space_entry

GenotypeLike = Genotype | Mapping[str, Any] | str | Path  # what :func:`as_genotype` accepts
TWELFTHS = 12  # genotype widths k/12 without a short decimal are written as `8/12` (whole ones as `1`)
_FRACTION = re.compile(r"^[0-9]+/[0-9]+$")


class _Twelfths(float):
    """A genotype width that is exactly a multiple of 1/12 and has no short decimal (e.g. 1/3) or is whole."""


class _GenotypeDumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that writes :class:`_Twelfths` as ``k/12`` (integers as integers)."""


class _GenotypeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads a plain ``a/b`` as the float ``a / b``."""


def _represent_twelfths(dumper: yaml.SafeDumper, value: _Twelfths) -> yaml.Node:
    k = round(value * TWELFTHS)
    if k % TWELFTHS == 0:
        return dumper.represent_int(k // TWELFTHS)
    return dumper.represent_scalar("!fraction", f"{k}/{TWELFTHS}")


def _construct_fraction(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    numerator, denominator = loader.construct_scalar(node).split("/")
    return int(numerator) / int(denominator)


for _cls in (_GenotypeDumper, _GenotypeLoader):
    _cls.add_implicit_resolver("!fraction", _FRACTION, list("0123456789"))
_GenotypeDumper.add_representer(_Twelfths, _represent_twelfths)
_GenotypeLoader.add_constructor("!fraction", _construct_fraction)


def _as_twelfths(value: Any) -> Any:
    """``value`` with every float that is exactly ``k / 12`` and whole or without a short decimal (0.5 stays)
    marked as :class:`_Twelfths` (lists and dicts walked)."""
    if isinstance(value, dict):
        return {k: _as_twelfths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_twelfths(v) for v in value]
    if isinstance(value, float) and value > 0 and round(value * TWELFTHS) / TWELFTHS == value \
            and (value.is_integer() or len(repr(value)) > 6):
        return _Twelfths(value)
    return value


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


def _from_dict(data: Mapping[str, Any], space: str) -> Genotype:
    """A genotype of ``space`` from its plain-dict form (metadata keys dropped)."""
    return space_entry(space).genotype_cls.from_dict({k: v for k, v in data.items() if k not in METADATA_KEYS})


def load_genotype(path: str | Path) -> Any:
    """Read and validate a genotype YAML; ``ValueError`` names the file and the violated rule."""
    path = resolve_genotype_path(path)
    try:
        data = yaml.load(path.read_text(), Loader=_GenotypeLoader)
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict) or data.get("space") not in SPACES:
        raise ValueError(f"{path}: expected a mapping with 'space' in {sorted(SPACES)}")
    try:
        genotype = _from_dict(data, data["space"])
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    problems = genotype.rule_violations()
    if problems:
        raise ValueError(f"{path}: invalid {data['space']} genotype: " + "; ".join(problems))
    return genotype


def save_genotype(
    genotype: Genotype,
    path: str | Path,
    metrics: Mapping[str, Any] | None = None,
    command: str | None = None,
    measured_on: Mapping[str, Any] | None = None,
) -> Path:
    """Write a genotype as YAML (lists in flow style, one branch per block; widths that are multiples of 1/12
    as ``8/12`` or ``1``), with its measured ``metrics`` (name -> number), what they were measured on
    (``measured_on``: the network options such as the filter multiplier and output stride, the input size)
    and the ``command`` that retrains it when given."""
    data = _as_twelfths(genotype.to_dict())
    if metrics is not None:
        data["metrics"] = {str(k): v.item() if hasattr(v, "item") else v for k, v in metrics.items()}
    if measured_on is not None:
        data["measured_on"] = dict(measured_on)
    if command is not None:
        data["retrain_command"] = command
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.dump(data, Dumper=_GenotypeDumper, sort_keys=False, default_flow_style=None, width=200))
    return path


def as_genotype(value: GenotypeLike, space: str | None = None) -> Genotype:
    """A genotype from a genotype, its plain-dict form, or a YAML path / ``pkg://NAME``; of ``space``
    when given, else of the space it names (a dict needs its ``space`` key).

    Rule checks are left to the network builders (and to :func:`load_genotype` for files).
    """
    if isinstance(value, Mapping):
        named = value.get("space", space)
        if named not in SPACES or (space is not None and named != space):
            expected = repr(space) if space is not None else f"one of {sorted(SPACES)}"
            raise ValueError(f"genotype dict: space {named!r}, expected {expected}")
        return _from_dict(value, named)
    is_file = isinstance(value, (str, Path))
    genotype = load_genotype(value) if is_file else value
    name = getattr(genotype, "space_name", None)
    known = name in SPACES and isinstance(genotype, SPACES[name].genotype_cls)
    if not known or (space is not None and name != space):
        source = str(value) if is_file else type(value).__name__
        expected = f"a {space} genotype" if space is not None else f"a genotype of {sorted(SPACES)}"
        raise ValueError(f"{source}: expected {expected}, got space {name!r}")
    return genotype
