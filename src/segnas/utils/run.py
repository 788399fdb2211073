"""Run bookkeeping: output folder, attempts and their configs, seeding and results files.

A run folder may be written by several attempts (a killed run re-run in the same folder resumes). Each
attempt records its resolved config as ``configs/attempt_N.yaml`` and ``config.yaml`` (the latest), and
``results.json`` beside ``config.yaml`` is always that attempt's: a results file left by an earlier attempt
moves to ``previous/attempt_N/`` when a new attempt starts. With ``resume=false`` everything earlier attempts
left moves there, so the new attempt starts from an empty folder; nothing is ever deleted. An attempt refused
by what the folder holds (:class:`~segnas.utils.Refused`) is undone (:func:`undone_when_refused`).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from segnas.utils import Refused

log = logging.getLogger(__name__)

# Entries of a run folder that belong to the folder rather than to one attempt (Hydra's own files, the
# attempt history, what earlier attempts left); Hydra's ``*.log`` files are kept in place too.
FOLDER_ENTRIES = (".hydra", "configs", "previous", ".segnas.lock", ".segnas.lock.owner")


def output_dir(cfg: DictConfig) -> Path:
    """The run's output folder (``paths.output_dir``), created if needed."""
    path = Path(cfg.paths.output_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_yaml(cfg: DictConfig) -> str:
    """The resolved config as YAML, as recorded in ``config.yaml``."""
    return OmegaConf.to_yaml(cfg, resolve=True)


def attempt_configs(out: Path) -> list[Path]:
    """``configs/attempt_N.yaml`` of the folder's earlier attempts, in order."""
    return sorted((out / "configs").glob("attempt_*.yaml"), key=lambda p: int(p.stem.removeprefix("attempt_")))


def finished_results(cfg: DictConfig) -> dict[str, Any] | None:
    """The folder's ``results.json`` when ``cfg.resume`` is on and the attempt that wrote it had exactly this
    config (then re-running would only reproduce it); else None."""
    out = Path(cfg.paths.output_dir)
    results, config = out / "results.json", out / "config.yaml"
    if not cfg.get("resume", True) or not results.is_file() or not config.is_file():
        return None
    if config.read_text() != config_yaml(cfg):
        return None
    return json.loads(results.read_text())


def move_aside(out: Path, names: list[str], attempt: int) -> Path:
    """Move the entries ``names`` of ``out`` into ``out/previous/attempt_N/`` (a fresh folder); returns it."""
    target = out / "previous" / f"attempt_{attempt}"
    suffix = 1
    while target.exists():
        suffix += 1
        target = out / "previous" / f"attempt_{attempt}-{suffix}"
    target.mkdir(parents=True)
    for name in names:
        shutil.move(out / name, target / name)
    return target


def start_attempt(cfg: DictConfig, out: Path) -> None:
    """Record a new attempt in ``out`` (``configs/attempt_N.yaml``, ``config.yaml``) after moving aside what
    it replaces: everything earlier attempts left when ``resume=false``, else their ``results.json``."""
    history = attempt_configs(out)
    legacy = out / "config.yaml"
    if not history and legacy.is_file():  # a folder written before attempts were recorded: its config is #1
        (out / "configs").mkdir(exist_ok=True)
        shutil.copyfile(legacy, out / "configs" / "attempt_1.yaml")
        history = attempt_configs(out)
    attempt = len(history) + 1
    if not cfg.get("resume", True):
        earlier = sorted(p.name for p in out.iterdir() if p.name not in FOLDER_ENTRIES and p.suffix != ".log")
    else:
        earlier = ["results.json"] if (out / "results.json").is_file() else []
    if earlier:
        target = move_aside(out, earlier, max(attempt - 1, 1))
        log.info("Attempt %d (resume=%s): moved %s of the earlier attempt to %s", attempt, cfg.get("resume", True),
                 ", ".join(earlier), target)
    text = config_yaml(cfg)
    (out / "configs").mkdir(exist_ok=True)
    (out / "configs" / f"attempt_{attempt}.yaml").write_text(text)
    (out / "config.yaml").write_text(text)


def _entries(folder: Path) -> set[Path]:
    """The entries of ``folder`` (none when it does not exist)."""
    return set(folder.iterdir()) if folder.is_dir() else set()


@contextmanager
def undone_when_refused(out: Path) -> Iterator[None]:
    """Undo the attempt started in the block when it raises :class:`~segnas.utils.Refused` (rank 0): what it
    moved to ``previous/`` comes back, ``config.yaml`` is restored and its ``configs/attempt_N.yaml`` removed,
    so a refused re-run leaves the earlier attempt's results and config as they were."""
    config = out / "config.yaml"
    text = config.read_text() if config.is_file() else None
    moved, recorded = _entries(out / "previous"), _entries(out / "configs")
    try:
        yield
    except Refused:
        if rank_zero_only.rank == 0:
            for folder in _entries(out / "previous") - moved:
                for entry in folder.iterdir():
                    if not (out / entry.name).exists():
                        shutil.move(entry, out / entry.name)
                if not any(folder.iterdir()):
                    folder.rmdir()
            for extra in _entries(out / "configs") - recorded:
                extra.unlink()
            if text is None:
                config.unlink(missing_ok=True)
            else:
                config.write_text(text)
            log.info("the refused attempt was undone: %s holds the earlier attempt's results and config", out)
        raise


def prepare_run(cfg: DictConfig) -> Path:
    """Create the output folder, start an attempt there (global rank 0 only) and seed every RNG."""
    out = output_dir(cfg)
    if rank_zero_only.rank == 0:
        start_attempt(cfg, out)
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
