"""Recorded studies reproduce: a study's ``guard.json`` names a small configuration of its recorded command and
the numbers that configuration gave when the study was recorded; ``tests/test_recorded_studies.py`` (slow) re-runs
every guard and fails when a number moved, so a code change cannot shift a recorded study silently.

``python experiments/guard.py experiments/<study>/guard.json``: re-run one guard and print its numbers beside the
recorded ones; ``--write`` records the new numbers (only together with regenerating the study itself, and a
CHANGELOG entry saying which of its numbers moved).

A guard file holds ``command_file`` (a JSON file beside it whose ``command`` is the study's recorded command, with
``{seed}`` and ``{dir}``), ``seed``, ``overrides`` (``key=value`` replacing the command's value of that key, or
added), ``expected`` (``hypervolume``, ``hypervolume_random``, ``miou``: every evaluation's score in
``evaluations.csv`` order), ``tolerance`` (absolute) and ``recorded_with`` (commit, torch, CPU and the kernels
torch picks on it: the numbers are exact on one kind of machine only).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def guard_args(guard: dict[str, Any], folder: Path, out: Path) -> list[str]:
    """The ``segnas`` arguments of ``guard`` (its study in ``folder``) writing into ``out``: the recorded command
    with ``{seed}`` and ``{dir}`` filled in and the guard's overrides applied (a new latency-table folder in
    ``out``, so nothing is written into the repository)."""
    command = json.loads((folder / guard["command_file"]).read_text())["command"]
    tokens = shlex.split(command.replace("{seed}", str(guard["seed"])).replace("{dir}", str(out / "run")))
    args = tokens[tokens.index("segnas") + 1 :]
    for override in [*guard["overrides"], f"stage.latency.lut_dir={out / 'lut'}"]:
        key = override.split("=", 1)[0]
        found = [i for i, a in enumerate(args) if a.split("=", 1)[0] == key]
        if found:
            args[found[0]] = override
        else:
            args.append(override)
    return args


def run_guard(path: Path, out: Path) -> dict[str, Any]:
    """Run the guard at ``path`` (one thread, as the study) into ``out``; its numbers as ``expected`` holds them."""
    guard = json.loads(path.read_text())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "segnas", *guard_args(guard, path.parent, out)]
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed:\n{proc.stderr[-3000:]}")
    results = json.loads((out / "run" / "results.json").read_text())
    with (out / "run" / "evaluations.csv").open() as f:
        miou = [float(row["miou"]) for row in csv.DictReader(f)]
    return {"hypervolume": results["hypervolume"], "hypervolume_random": results["hypervolume_random"], "miou": miou}


def moved(expected: dict[str, Any], observed: dict[str, Any], tolerance: float) -> list[str]:
    """The numbers of ``observed`` further than ``tolerance`` from ``expected`` (empty: reproduced)."""
    out = []
    for key, want in expected.items():
        got = observed[key]
        wants, gots = (want, got) if isinstance(want, list) else ([want], [got])
        if len(wants) != len(gots) or any(abs(a - b) > tolerance for a, b in zip(wants, gots, strict=False)):
            out.append(f"{key}: recorded {want}, now {got}")
    return out


def machine() -> dict[str, str]:
    """What besides the code moves the numbers: torch and the CPU kernels it picks (the study's supernet training
    amplifies rounding differences: other kernels give other scores)."""
    import torch

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "") if Path("/proc/cpuinfo").is_file() else ""
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu": model}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("guard", type=Path)
    parser.add_argument("--write", action="store_true", help="record the new numbers in the guard file")
    args = parser.parse_args()
    guard = json.loads(args.guard.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        observed = run_guard(args.guard, Path(tmp))
    print(json.dumps({"observed": observed, "moved": moved(guard["expected"], observed, guard["tolerance"])},
                     indent=1))
    if args.write:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True).stdout.strip()
        guard.update(expected=observed, recorded_with={"commit": commit, **machine()})
        args.guard.write_text(json.dumps(guard, indent=1) + "\n")


if __name__ == "__main__":
    main()
