"""Candidate evaluation sharded over processes: ``torchrun --nproc_per_node=2 -m segnas stage=search`` on CPU
(gloo) gives the archive and front of the one-process run, with the candidates split between the ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, TINY_EVALUATION

TINY = ["stage=search", "debug=tiny", *TINY_EVALUATION, "search.objective=params", "stage.extra_metrics=[]",
        "logger=none"]
BUDGETS = {"nsga2": ["search.population=4", "search.generations=2"], "random": ["search.num_evals=8", "search.batch=4"]}


def _segnas(args: list[str], processes: int = 1) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}", "--master_port=29533"]
    command = [*(launcher if processes > 1 else [sys.executable]), "-m", "segnas", *args]
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _archive(folder: Path) -> dict[str, dict[str, float]]:
    lines = [json.loads(line) for line in (folder / "archive.jsonl").read_text().splitlines()]
    return {r["key"]: r["metrics"] for r in lines if "key" in r}


@pytest.mark.slow  # torchrun: 1 + 2 + 2 processes (make test-slow)
@pytest.mark.parametrize("search", ["nsga2", "random"])
def test_two_processes_give_the_one_process_archive_and_front(tiny_supernet: Path, tmp_path: Path,
                                                              search: str) -> None:
    args = [*TINY, f"search={search}", *BUDGETS[search], f"score.supernet.ckpt={tiny_supernet}",
            "search.random_baseline=false"]
    _segnas([*args, f"hydra.run.dir={tmp_path / 'one'}"])
    _segnas([*args, f"hydra.run.dir={tmp_path / 'two'}"], processes=2)
    one, two = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("one", "two"))
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert sum(two["evaluated_per_rank"]) == one["evaluated_per_rank"][0] == 8
    assert min(two["evaluated_per_rank"]) >= 3  # really split
    a, b = _archive(tmp_path / "one"), _archive(tmp_path / "two")
    assert set(a) == set(b)
    assert all(abs(a[k]["miou"] - b[k]["miou"]) <= 1e-6 and a[k]["params_m"] == b[k]["params_m"] for k in a)
    assert two["pareto"] == one["pareto"] and two["hypervolume"] == one["hypervolume"]
    # killed after half the evaluations: the multi-process re-run computes only the rest, to the same front
    archive = tmp_path / "two" / "archive.jsonl"
    lines = archive.read_text().splitlines(keepends=True)
    archive.write_text("".join(lines[: 1 + (len(lines) - 1) // 2]))  # the context line and half the records
    _segnas([*args, f"hydra.run.dir={tmp_path / 'two'}"], processes=2)
    again = json.loads((tmp_path / "two" / "results.json").read_text())
    assert again["n_computed_this_run"] == len(lines) - 1 - (len(lines) - 1) // 2
    assert again["pareto"] == one["pareto"] and _archive(tmp_path / "two") == b


@pytest.mark.slow  # torchrun: 1 + 2 processes (make test-slow)
def test_two_processes_price_every_candidate_with_rank_zeros_latency_table(tiny_supernet: Path,
                                                                           tmp_path: Path) -> None:
    lut = tmp_path / "lut"
    args = ["stage=search", "debug=tiny", *TINY_EVALUATION, "search.objective=latency", "logger=none",
            *BUDGETS["nsga2"], f"score.supernet.ckpt={tiny_supernet}", "search.random_baseline=false",
            f"stage.latency.lut_dir={lut}"]
    _segnas([*args, f"hydra.run.dir={tmp_path / 'two'}"], processes=2)  # a new table, built while searching
    _segnas([*args, f"hydra.run.dir={tmp_path / 'one'}"])  # the same table, read
    assert [p.name for p in lut.iterdir()] == [json.loads((tmp_path / "one" / "results.json").read_text())
                                               ["latency_table"]["path"].rsplit("/", 1)[1]]  # no per-rank table
    a, b = _archive(tmp_path / "one"), _archive(tmp_path / "two")
    assert set(a) == set(b) and all(a[k]["latency_ms"] == b[k]["latency_ms"] for k in a)
    assert all(abs(a[k]["miou"] - b[k]["miou"]) <= 1e-6 for k in a)
    contexts = [(tmp_path / name / "archive.jsonl").read_text().splitlines()[0] for name in ("one", "two")]
    assert contexts[0] == contexts[1]
    assert (tmp_path / "one" / "pareto.csv").read_text() == (tmp_path / "two" / "pareto.csv").read_text()
