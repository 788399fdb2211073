"""A genotype YAML records what its metrics were measured on, and loads back to the same genotype."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from segnas.spaces import SPACES, get_space, load_genotype, save_genotype


@pytest.mark.parametrize("name", sorted(SPACES))
def test_metrics_travel_with_the_network_and_input_they_were_measured_on(name: str, tmp_path: Path) -> None:
    genotype = get_space(name).sample(np.random.default_rng(0))
    measured_on = {"cost_network": {"filter_multiplier": 12, "output_stride": 8}, "cost_input": [1, 3, 256, 512]}
    path = save_genotype(genotype, tmp_path / "g.yaml", metrics={"macs_g": 1.5}, measured_on=measured_on,
                         command="python -m segnas stage=retrain stage.genotype=g.yaml")
    data = yaml.safe_load(path.read_text())
    assert data["measured_on"] == measured_on and data["metrics"] == {"macs_g": 1.5}
    assert load_genotype(path) == genotype
