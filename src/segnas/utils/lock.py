"""One writer per run folder: an exclusive lock held while a stage runs in it (global rank 0 holds it for the
ranks of a multi-process job; the operating system releases it when the holder exits, even on ``kill -9``)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_NAME = ".segnas.lock"
OWNER_NAME = ".segnas.lock.owner"


class FolderInUse(RuntimeError):
    """Another process is running a stage in the same run folder."""


@contextmanager
def run_folder_lock(out: Path, rank: int = 0) -> Iterator[None]:
    """Hold ``out``'s lock for the block (rank 0; other ranks share it); a second process fails at once
    naming the folder and the holder (pid and host)."""
    if rank != 0:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(out / LOCK_NAME)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        owner = out / OWNER_NAME
        holder = owner.read_text().strip() if owner.is_file() else "unknown process"
        raise FolderInUse(f"{out} is in use by another segnas run ({holder}); wait for it to finish, stop it, "
                          "or use another folder (hydra.run.dir=...)") from None
    try:
        (out / OWNER_NAME).write_text(f"pid {os.getpid()} on {socket.gethostname()}\n")
        yield
    finally:
        lock.release()
