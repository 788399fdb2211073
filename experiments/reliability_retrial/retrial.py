"""Re-trial of issue 23's failing and partial reliability cases: every case of ``cases.json`` is mapped to the
pytest node ids that reproduce it and assert the fixed behaviour; all of them run in one pytest invocation
(slow ones included) and each case is reported as passed, failed, not run (a test skipped or not collected)
or without a test.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python experiments/reliability_retrial/retrial.py [--cases FILE] [--out DIR]

Writes ``results.md`` (one table row per case) and ``results.json`` (counts, per-case and per-test outcomes,
machine, torch version, date, commit, wall time, load average) into ``--out`` (default: this folder).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


@dataclass(frozen=True)
class TestOutcome:
    """One pytest test case from the JUnit report: its outcome (passed, failed, skipped) and why."""

    name: str
    outcome: str
    message: str = ""


def load_cases(path: Path) -> list[dict[str, Any]]:
    """The cases of ``path``, each with ``id``, ``case``, ``kind`` (fail or partial) and ``tests``."""
    cases = json.loads(path.read_text())
    for case in cases:
        missing = {"id", "case", "kind", "tests"} - set(case)
        if missing or case["kind"] not in ("fail", "partial"):
            raise ValueError(f"{path}: case {case.get('id')!r} lacks {sorted(missing)} or has a bad kind")
    ids = [c["id"] for c in cases]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate case ids")
    return cases


def run_pytest(node_ids: list[str], junit: Path) -> int:
    """Run ``node_ids`` in one single-threaded pytest process (slow tests included); its exit code."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-m", "slow or not slow", "-q",
               f"--junitxml={junit}", *node_ids]
    return subprocess.run(command, cwd=REPO, env=env, check=False).returncode


def read_junit(junit: Path) -> list[TestOutcome]:
    """Every test case of a JUnit XML report as ``path::name`` with its outcome."""
    if not junit.is_file():
        return []
    outcomes = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        dotted = case.get("classname", "")
        name = f"{dotted.replace('.', '/')}.py::{case.get('name', '')}"
        child = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
        if child is None:
            outcomes.append(TestOutcome(name, "passed"))
        else:
            outcome = "skipped" if child.tag == "skipped" else "failed"
            outcomes.append(TestOutcome(name, outcome, (child.get("message") or "").strip()[:300]))
    return outcomes


def matches(node_id: str, test_name: str) -> bool:
    """Whether a reported test belongs to a node id (a function id covers all its parametrisations)."""
    return test_name == node_id or ("[" not in node_id and test_name.startswith(node_id + "["))


def case_outcome(
    node_ids: list[str], reported: list[TestOutcome]
) -> tuple[str, dict[str, list[TestOutcome]]]:
    """A case's outcome (passed, failed, not run, no test) and the reported tests of each of its node ids."""
    if not node_ids:
        return "no test", {}
    found = {n: [t for t in reported if matches(n, t.name)] for n in node_ids}
    outcomes = [t.outcome for tests in found.values() for t in tests]
    if "failed" in outcomes:
        return "failed", found
    if any(not tests for tests in found.values()) or "skipped" in outcomes:
        return "not run", found
    return "passed", found


def git(*args: str) -> str:
    """The output of a git command in the repository (empty when it fails)."""
    proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
    return proc.stdout.strip()


def machine() -> dict[str, Any]:
    """Host, CPU and Python of this run."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("model name")), "")
    return {"host": platform.node(), "platform": platform.platform(), "cpu": model or platform.processor(),
            "cpus": os.cpu_count(), "python": platform.python_version()}


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def short(node_id: str) -> str:
    """A node id without its ``tests/`` folder."""
    return node_id.removeprefix("tests/")


def write_markdown(path: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """``results.md``: the counts, one table row per case, then the notes and any test that did not pass."""
    counts = summary["counts"]
    dirty = " (the working tree differs from it in src/, tests/ or conf/)" if summary["dirty"] else ""
    lines = [
        "# Issue 23 reliability re-trial",
        "",
        f"{summary['date']}, commit `{summary['commit']}`{dirty}, "
        f"torch {summary['torch']}, {summary['machine']['cpu']} ({summary['machine']['cpus']} CPUs), "
        f"pytest wall time {summary['wall_s']:.0f} s, load average {summary['load_before'][0]:.2f} before / "
        f"{summary['load_after'][0]:.2f} after.",
        "",
        f"**{counts['passed']} of {counts['cases']} listed cases pass**; failed {counts['failed']}, "
        f"not run {counts['not_run']}, without a test {counts['no_test']} "
        f"({counts['tests_passed']} of {counts['tests']} tests passed).",
        "",
        "| id | case | kind | tests | outcome |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        tests = "<br>".join(f"`{cell(short(n))}`" for n in row["tests"]) or "none"
        lines.append(f"| {row['id']} | {cell(row['case'])} | {row['kind']} | {tests} | {row['outcome']} |")
    notes = [row for row in rows if row.get("note")]
    if notes:
        lines += ["", "## Notes", ""]
        lines += [f"- **{row['id']}**: {row['note']}" for row in notes]
    bad = [(row["id"], t) for row in rows for t in row["results"] if t["outcome"] != "passed"]
    if bad:
        lines += ["", "## Tests that did not pass", ""]
        if summary["pytest_exit_code"] not in (0, 1):
            lines += [f"pytest exited with code {summary['pytest_exit_code']} (not a test failure: a usage "
                      "error, an interruption or a node id that does not exist; see its output).", ""]
        lines += [f"- {cid}: `{short(t['name'])}` {t['outcome']}: {t['message'] or '(no message)'}"
                  for cid, t in bad]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Run the re-trial; 0 when every case with a test passed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=Path, default=HERE / "cases.json")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    cases = load_cases(args.cases)
    node_ids = sorted({n for c in cases for n in c["tests"]})
    load_before = os.getloadavg()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        exit_code = run_pytest(node_ids, junit) if node_ids else 0
        reported = read_junit(junit)
    wall = time.perf_counter() - start
    rows = []
    for case in cases:
        outcome, found = case_outcome(case["tests"], reported)
        results = [{"node_id": n, "name": t.name, "outcome": t.outcome, "message": t.message}
                   for n, tests in found.items() for t in tests]
        results += [{"node_id": n, "name": n, "outcome": "not collected", "message": ""}
                    for n, tests in found.items() if not tests]
        rows.append({**case, "outcome": outcome, "results": results})
    by = [r["outcome"] for r in rows]
    summary = {
        "counts": {"cases": len(rows), "passed": by.count("passed"), "failed": by.count("failed"),
                   "not_run": by.count("not run"), "no_test": by.count("no test"),
                   "tests": len(reported), "tests_passed": sum(t.outcome == "passed" for t in reported)},
        "pytest_exit_code": exit_code,
        "machine": machine(),
        "torch": metadata.version("torch"),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--", "src", "tests", "conf")),
        "wall_s": round(wall, 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({**summary, "cases": rows}, indent=2) + "\n")
    write_markdown(args.out / "results.md", rows, summary)
    c = summary["counts"]
    if exit_code not in (0, 1):
        print(f"pytest exited with code {exit_code}: not every test ran", file=sys.stderr)
    print(f"{c['passed']} of {c['cases']} cases pass, {c['failed']} failed, {c['not_run']} not run, "
          f"{c['no_test']} without a test; {args.out / 'results.md'}")
    return 0 if c["failed"] == c["not_run"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
