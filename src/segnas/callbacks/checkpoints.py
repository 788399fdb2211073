"""Checkpoints that are never half-written and never stored twice.

:class:`AtomicCheckpointIO` writes every checkpoint to a temporary file and renames it over the target, so a
kill never leaves a truncated ``last.ckpt`` and every save is a new file. :class:`LinkedModelCheckpoint`
uses that: when two checkpoint callbacks save the same training step (the best epoch is also the last one),
the earlier file becomes a hard link to the later one instead of a second 50-100 MB copy; a later save of
either path replaces only that path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from segnas.utils.integrity import HASH_KEY, non_finite, weights_sha256


class AtomicCheckpointIO(TorchCheckpointIO):
    """:class:`TorchCheckpointIO` that writes ``path.tmp`` and renames it over ``path``, with the weights'
    content hash inside (:data:`segnas.utils.integrity.HASH_KEY`, checked on load); weights with a NaN or an
    infinity are refused (a diverged run never leaves a model behind)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        state = checkpoint.get("state_dict", {})
        bad = non_finite(state)
        if bad:
            raise ValueError(f"refusing to save {path}: non-finite weights in {bad[:5]}"
                             f"{' ...' if len(bad) > 5 else ''} (the training diverged)")
        checkpoint[HASH_KEY] = weights_sha256(state)
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)


class LinkedModelCheckpoint(ModelCheckpoint):
    """A :class:`ModelCheckpoint` that hard-links, instead of duplicating, what another checkpoint callback
    saved at the same step (needs :class:`AtomicCheckpointIO`, so that no later save writes into a link)."""

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        if not trainer.is_global_zero or not isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO):
            return
        for other in trainer.checkpoint_callbacks:
            same_step = getattr(other, "_last_global_step_saved", None) == trainer.global_step
            earlier = Path(getattr(other, "_last_checkpoint_saved", "") or "")
            if other is self or not same_step or not earlier.is_file() or earlier == Path(filepath):
                continue
            tmp = earlier.with_name(earlier.name + ".link")
            os.link(filepath, tmp)
            os.replace(tmp, earlier)
