"""A proxy's options as every stage passes them, and as the archives key on them (their defaults included)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from segnas.proxies import proxies_options, resolved_options
from segnas.proxies.proxy_file import load_proxy_file
from segnas.proxies.saswot import AvtRanges
from segnas.search.goal import SearchGoal
from segnas.search.scoring import ProxyScoring

PROTOCOL = {"inputs": "random", "batch_size": 2, "resolution": 64, "seed": 0, "bn_quirk": True}


def test_resolved_options_fill_in_the_defaults_and_leave_computed_data_out() -> None:
    assert resolved_options("saswot_minus") == {"elem_reduce": "sum", "layer_reduce": "sum", "loss_reduction": "image"}
    ranges = AvtRanges((0.0, 1.0), (0.0, 1.0))
    given = resolved_options("saswot", {"ranges": ranges, "loss_reduction": "mean"})
    assert given["loss_reduction"] == "mean" and given["normalize"] == "avt" and "ranges" not in given
    assert resolved_options("nwot") == {} and resolved_options("zen", {"seed": 3}) == {"mixup_gamma": 1e-2, "seed": 3}


def test_proxies_options_name_the_stray_proxy_and_the_unknown_option() -> None:
    assert proxies_options(["nwot", "saswot"], {"saswot": {"loss_reduction": "mean"}}, "k") == {
        "nwot": {}, "saswot": {"loss_reduction": "mean"}}
    with pytest.raises(ValueError, match=r"k: options of \['snip'\], which are not among"):
        proxies_options(["nwot"], {"snip": {}}, "k")
    with pytest.raises(ValueError, match=r"k\.nwot: \['seed'\] are not options of proxy 'nwot'"):
        proxies_options(["nwot"], {"nwot": {"seed": 1}}, "k")


def test_a_search_archive_keys_on_the_resolved_options() -> None:
    """Scores archived under one default are never reused under another: the context holds every option."""
    default = ProxyScoring("saswot").context(None)["proxy_options"]
    assert default["loss_reduction"] == "image"
    pinned = ProxyScoring("saswot", options={"loss_reduction": "mean"}).context(None)["proxy_options"]
    assert pinned != default and pinned["loss_reduction"] == "mean"


def test_warm_start_options_fail_naming_their_key() -> None:
    assert SearchGoal(warm_start="proxy", warm_start_proxy="saswot",
                      warm_start_options={"loss_reduction": "mean"}).warm_start_options["loss_reduction"] == "mean"
    with pytest.raises(ValueError, match=r"search\.warm_start_options: \['bogus'\]"):
        SearchGoal(warm_start="proxy", warm_start_proxy="saswot", warm_start_options={"bogus": 1})


def test_a_proxy_files_context_holds_its_leaves_options(tmp_path: Path) -> None:
    def context(proxy: str) -> dict:
        term = {"proxy": proxy, "transform": "identity", "center": 0.0, "scale": 1.0, "weight": 1.0}
        path = tmp_path / f"leaf_{proxy}.yaml"
        path.write_text(yaml.safe_dump({"kind": "combination", "combination": {"terms": [term]},
                                        "protocol": PROTOCOL}))
        return load_proxy_file(path).context()

    assert "leaf_options" not in context("nwot")  # leaves without options: the context as before
    assert context("saswot_minus")["leaf_options"] == {"saswot_minus": resolved_options("saswot_minus")}


def test_hand_designed_proxies_are_scored_with_their_options() -> None:
    """stage=proxy_evolution's held-out table scores saswot_minus with `stage.proxy_options`, not the default."""
    from segnas.proxies.batch import benchmark_batch
    from segnas.proxies.benchmark import Record
    from segnas.proxies.evolution import BenchmarkArchs, saswot_expression
    from segnas.proxies.expression_space import ExpressionSpace

    records = [Record("64-41414-2_02_020", "micro", 0.4)]
    archs = BenchmarkArchs(records, records, ["micro"], benchmark_batch(None, "random", 2, 64, 17, 0), seed=0,
                           bn_quirk=True, progress=False)
    exprs = {"saswot_expression": saswot_expression(ExpressionSpace(2, "mean", "sum", 8))}
    scores = archs.exact_scores(exprs, {"saswot_minus": {}, "nwot": {}}, records, "t")
    pinned = archs.exact_scores(exprs, {"saswot_minus": {"loss_reduction": "mean"}, "nwot": {}}, records, "t")
    assert pinned["saswot_minus"][0] < scores["saswot_minus"][0]  # the pixel mean's gradients are far smaller
    assert pinned["nwot"] == scores["nwot"] and pinned["saswot_expression"] == scores["saswot_expression"]
