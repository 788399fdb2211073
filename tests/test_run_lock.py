"""One writer per run folder: a second process (or run) in a busy folder fails at once and changes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from segnas.stages import run_stage
from segnas.utils.lock import FolderInUse, run_folder_lock

from conftest import compose_config


def test_a_busy_folder_is_refused_before_anything_moves(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("earlier attempt\n")
    (tmp_path / "results.json").write_text("{}\n")
    with run_folder_lock(tmp_path), pytest.raises(FolderInUse, match=rf"{tmp_path} is in use .*pid \d+"):
        run_stage(compose_config(["stage=profile"], tmp_path))
    assert (tmp_path / "config.yaml").read_text() == "earlier attempt\n"  # nothing rewritten or moved aside
    assert (tmp_path / "results.json").read_text() == "{}\n"


def test_another_process_sees_the_lock_and_it_is_released_when_the_holder_exits(tmp_path: Path) -> None:
    holder = ("import sys, time; from pathlib import Path; from segnas.utils.lock import run_folder_lock\n"
              "with run_folder_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", holder, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(FolderInUse, match=rf"pid {proc.pid}"), run_folder_lock(tmp_path):
            pass
    finally:
        proc.kill()  # as kill -9: the operating system releases the lock
        proc.wait()
    with run_folder_lock(tmp_path):
        pass
    with run_folder_lock(tmp_path, rank=1):  # other ranks of a job share rank 0's lock
        pass
