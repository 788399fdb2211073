"""What the ``segnas`` command prints besides logs: a user error as one message (no traceback) and the results
tables of a run and of a sweep.

:func:`report_user_errors` runs the Hydra app so that a user error (a bad value, a missing file, an unknown
key, a config that does not compose) prints ``Error: <message>`` and exits with status 1;
``HYDRA_FULL_ERROR=1`` shows the traceback instead. :func:`results_table` is a stage's headline numbers;
:class:`SweepResultsTable` (a Hydra callback) prints one row per job at the end of a ``-m`` sweep.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from hydra.errors import ConfigCompositionException, HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    InterpolationResolutionError,
    MissingMandatoryValue,
    OmegaConfBaseException,
)

from segnas.utils.overrides import did_you_mean

T = TypeVar("T")
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    KeyError,
    ModuleNotFoundError,  # an optional dependency a stage needs (its message says what to install)
    HydraException,  # composition, override parsing, instantiation
    MissingMandatoryValue,
    InterpolationResolutionError,
)
FULL_ERROR = "HYDRA_FULL_ERROR"
FULL_ERROR_OURS = "SEGNAS_HYDRA_FULL_ERROR"  # marks a HYDRA_FULL_ERROR=1 set by segnas, not by the user
# Headline results, in this order, where a stage reports them.
HEADLINE = (
    "hypervolume", "hypervolume_random", "beats_random", "n_evaluated",
    "val/mIoU", "val/mIoU_best", "test/mIoU", "kendall", "pearson", "spearman", "kendall_train", "kendall_heldout",
    "macs_g", "params_m", "fps",
)  # fmt: skip
MAX_ROWS = 10  # a stage without headline keys shows at most this many of its numbers


def error_message(err: BaseException) -> str:
    """The message of a user error; a key Hydra could not override is named with the nearest known key
    (instead of Hydra's advice to add it with ``+``)."""
    cause = err.__cause__
    if isinstance(err, ConfigCompositionException) and isinstance(cause, ConfigAttributeError | ConfigKeyError):
        key = str(cause.full_key)
        known = cause.parent_node.keys() if isinstance(cause.parent_node, DictConfig) else []
        return f"the config has no key '{key}'{did_you_mean(key, known)} (`--cfg job` prints the config)"
    message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    if isinstance(err, HydraException) and isinstance(cause, OmegaConfBaseException):
        message += f"\n{cause}"
    return message


def report_user_errors(app: Callable[[], T]) -> T:
    """Run ``app`` (a ``@hydra.main`` function); a user error (:data:`USER_ERRORS`) prints ``Error: ...`` on
    stderr and exits with status 1, unless the user set ``HYDRA_FULL_ERROR=1``."""
    if os.environ.get(FULL_ERROR) == "1" and FULL_ERROR_OURS not in os.environ:
        return app()
    saved = {name: os.environ.get(name) for name in (FULL_ERROR, FULL_ERROR_OURS)}
    os.environ.update({FULL_ERROR: "1", FULL_ERROR_OURS: "1"})  # Hydra raises instead of printing a traceback
    try:
        return app()
    except USER_ERRORS as err:
        print(f"Error: {error_message(err)}\n(HYDRA_FULL_ERROR=1 shows the traceback)", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else "-"
    return "-" if value is None else str(value)


def headline(results: Mapping[str, Any]) -> dict[str, Any]:
    """A stage's headline numbers: :data:`HEADLINE` keys it has and the best score of its front or top list
    (``best <score>``); a stage with neither: its first :data:`MAX_ROWS` top-level numbers."""
    rows = {key: results[key] for key in HEADLINE if key in results}
    score = str(results.get("score_metric") or "score")
    for name in ("pareto", "top"):
        entries = results.get(name)
        scores = [e[score] for e in entries if isinstance(e, Mapping) and isinstance(e.get(score), int | float)] \
            if isinstance(entries, list) else []
        if scores:
            rows[f"best {score}"] = max(scores)
            break
    if rows:
        return rows
    numbers = {k: v for k, v in results.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return dict(list(numbers.items())[:MAX_ROWS])


def results_table(results: Mapping[str, Any], title: str) -> str:
    """``title`` and the headline numbers of ``results`` as aligned ``name  value`` lines."""
    rows = headline(results)
    width = max((len(k) for k in rows), default=0)
    return "\n".join([title, *(f"  {k:<{width}}  {_cell(v)}" for k, v in rows.items())])


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows])


def _job_order(job: Path) -> tuple[int, str]:
    return (int(job.name), "") if job.name.isdigit() else (sys.maxsize, str(job))


def sweep_table(sweep_dir: Path) -> str:
    """One row per job of the sweep in ``sweep_dir``: the overrides that tell it from the other jobs and its
    headline numbers (from the job folders' ``.hydra/overrides.yaml`` and ``results.json``; ``-``: none)."""
    jobs = sorted((p.parent.parent for p in sweep_dir.glob("**/.hydra/overrides.yaml")), key=_job_order)
    overrides = [[str(o) for o in OmegaConf.load(job / ".hydra" / "overrides.yaml")] for job in jobs]
    shared = set.intersection(*map(set, overrides)) if len(jobs) > 1 else set()
    numbers = [headline(json.loads((job / "results.json").read_text())) if (job / "results.json").is_file() else {}
               for job in jobs]  # fmt: skip
    columns = list(dict.fromkeys(k for found in numbers for k in found))
    rows = [[str(job.relative_to(sweep_dir)), " ".join(o for o in own if o not in shared),
             *(found.get(c) for c in columns)] for job, own, found in zip(jobs, overrides, numbers, strict=True)]
    return f"Sweep results ({sweep_dir}):\n" + markdown_table(["job", "overrides", *columns], rows)


class SweepResultsTable(Callback):
    """Hydra callback: at the end of a ``-m`` sweep, print :func:`sweep_table` of its folder."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        print(sweep_table(Path(str(config.hydra.sweep.dir))))
