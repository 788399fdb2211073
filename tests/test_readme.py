"""Every ``python -m segnas`` / ``segnas`` command in the README's code blocks parses with Hydra's override
parser and composes (sweeps: their first value; ``<placeholders>``: a dummy value)."""

from __future__ import annotations

import re
import shlex

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from conftest import REPO, compose_config

FLAGS = {"-m", "--multirun", "--help", "--version", "--cfg", "job", "hydra", "all"}


def readme_commands() -> list[list[str]]:
    """The arguments after ``segnas`` of every command in the README's ```bash blocks."""
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if "segnas" not in words:
                continue
            start = words.index("segnas")
            if start == 0 or words[start - 1] == "-m" or words[start - 1].endswith("/segnas"):
                commands.append(words[start + 1 :])
    return commands


COMMANDS = readme_commands()


def _overrides(args: list[str]) -> list[str]:
    """The command's overrides, one value per sweep, placeholders filled in."""
    args = [re.sub(r"<[^>]+>", "PLACEHOLDER", a) for a in args if a not in FLAGS]
    out = []
    for override in OverridesParser.create().parse_overrides(args):
        value = next(override.sweep_string_iterator()) if override.is_sweep_override() else override.value()
        out.append(f"{override.get_key_element()}={value}" if override.is_sweep_override() else override.input_line)
    return out


def test_the_readme_has_commands() -> None:
    assert len(COMMANDS) >= 8
    assert any("hydra/launcher=slurm" in c for c in COMMANDS)


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(c)[:60] for c in COMMANDS])
def test_readme_command_parses_and_composes(args: list[str]) -> None:
    overrides = _overrides(args)
    if not overrides:
        return  # segnas --help, --version
    cfg = compose_config(overrides)
    stage = next((o.split("=", 1)[1] for o in overrides if o.startswith("stage=")), "train")
    assert cfg.stage.name == stage


def test_the_readme_slurm_sweep_names_its_jobs_after_the_stage() -> None:
    slurm = next(c for c in COMMANDS if "hydra/launcher=slurm" in c)
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="segnas.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*_overrides(slurm), "stage=retrain"], return_hydra_config=True)
    assert cfg.hydra.launcher.name == "retrain"
    assert list(cfg.hydra.launcher.setup) == ["source ~/venvs/segnas/bin/activate"]
