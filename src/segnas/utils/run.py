"""Run bookkeeping: output folder, resolved config, seeding and results files."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def output_dir(cfg: DictConfig) -> Path:
    """The run's output folder (``paths.output_dir``), created if needed."""
    path = Path(cfg.paths.output_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def prepare_run(cfg: DictConfig) -> Path:
    """Create the output folder, write the resolved config and seed every RNG."""
    out = output_dir(cfg)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    seed_everything(int(cfg.seed))
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    return out


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (also in data-loader workers)."""
    L.seed_everything(seed, workers=True, verbose=False)


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.tolist() if value.numel() > 1 else value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, str):
        return value.item()
    return value


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON (tensors and numpy scalars converted, NaN -> null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_jsonable(data), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def write_results(out_dir: Path, results: dict[str, Any]) -> None:
    """Write ``results.json`` into the run folder."""
    write_json(out_dir / "results.json", results)


def finish_loggers() -> None:
    """Close a W&B run if one is alive so the next multirun job starts a fresh one."""
    try:
        import wandb
    except ImportError:  # pragma: no cover - wandb is a dependency, but never required at run time
        return
    if wandb.run is not None:
        wandb.finish()
