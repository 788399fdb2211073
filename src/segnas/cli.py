"""Hydra entry point: ``python -m segnas stage=NAME [overrides]`` (no arguments or ``--help``: stages, groups,
examples; ``--version``: segnas's version). A user error prints its message without a traceback
(``HYDRA_FULL_ERROR=1``: with it); a finished stage prints its headline results."""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from segnas import __version__
from segnas.config_aliases import translate_aliases
from segnas.utils.console import report_user_errors, results_table
from segnas.utils.overrides import refuse_unknown_additions
from segnas.utils.quiet import quiet_console

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def run(cfg: DictConfig) -> float | None:
    """Run the selected stage, print its headline results and return its optimised metric (for Hydra
    sweepers); a ``+key=value`` adding a key the config does not know is refused first."""
    # imported here, not above: `segnas --help` and `--version` import no torch
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from segnas.stages import run_stage

    quiet_console()
    refuse_unknown_additions()
    results = run_stage(cfg)
    if rank_zero_only.rank == 0:
        print(results_table(results, f"{cfg.stage.name} results ({cfg.paths.output_dir}/results.json):"))
    metric = cfg.get("optimized_metric")
    if metric and metric in results:
        return float(results[metric])
    return None


def main() -> float | None:
    """The ``segnas`` command: ``--version`` prints segnas's version, no arguments the help, anything else goes
    to Hydra (user errors reported as messages)."""
    if "--version" in sys.argv[1:]:
        print(f"segnas {__version__}")
        return None
    if not sys.argv[1:]:
        sys.argv.append("--help")
    sys.argv[1:] = translate_aliases(sys.argv[1:])
    return report_user_errors(run)
