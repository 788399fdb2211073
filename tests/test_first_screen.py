"""The README's first screen, run as a new user runs it: on a fresh clone of this repository, every command
of its first screen exactly as written (the install is given: the clone uses this checkout's .venv; `make test`
is what CI runs anyway), the main job with its real defaults."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from conftest import REPO


def first_screen_commands() -> list[str]:
    """The command lines of the ```bash blocks above the README's first horizontal rule."""
    screen = (REPO / "README.md").read_text().split("\n---\n", 1)[0]
    lines = [line.split("#", 1)[0].strip() for block in re.findall(r"```bash\n(.*?)```", screen, flags=re.S)
             for line in block.splitlines()]
    return [line for line in lines if line]


def test_the_first_screen_is_install_test_and_the_main_job() -> None:
    commands = first_screen_commands()
    assert commands[:2] == ["make install", "make test"]
    assert commands[2:] == [".venv/bin/python -m segnas stage=search"]


@pytest.mark.slow
def test_the_first_screen_runs_verbatim_on_a_fresh_clone(tmp_path: Path) -> None:
    clone = tmp_path / "segnas"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    (clone / ".venv").symlink_to(REPO / ".venv")
    env = {**os.environ, "WANDB_MODE": "offline", "SEGNAS_CACHE": str(tmp_path / "cache")}
    for command in first_screen_commands()[2:]:
        proc = subprocess.run(shlex.split(command), cwd=clone, env=env, capture_output=True, text=True,
                              timeout=1800)
        assert proc.returncode == 0, proc.stderr[-3000:]
    (results,) = (clone / "outputs" / "search" / "runs").glob("*/results.json")
    data = json.loads(results.read_text())
    assert data["n_evaluated"] == 96 and 0 < data["hypervolume"] <= 1
    assert (results.parent / "pareto.png").is_file() and list((results.parent / "genotypes").glob("arch_*.yaml"))
