"""``stage=search``, ``stage=correlate``, ``stage=ablate`` end to end on tiny budgets; configs compose."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from segnas.search.archive import Archive
from segnas.search.objectives import SupernetMIoU
from segnas.search.pareto import pareto_indices
from segnas.spaces import load_genotype
from segnas.stages import run_stage
from segnas.utils.integrity import HASH_KEY, weights_sha256

from conftest import REPO, TINY_EVALUATION, compose_config

BUDGET = ["search.population=6", "search.generations=3"]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


# The default flow at a tiny budget: no checkpoint given, so a supernet (debug=tiny's) is trained first.
FIRST_SEARCH = ["stage=search", "debug=tiny", *TINY_EVALUATION, *BUDGET, "score.supernet.epochs=1",
                "score.supernet.space_overrides.layers=4", "score.supernet.space_overrides.filter_multiplier=2",
                "score.supernet.module.val_archs=1", "stage.latency.check_archs=4"]


@pytest.fixture(scope="module")
def first_search(tmp_path_factory, tiny_lut: Path):
    out = tmp_path_factory.mktemp("search")
    return out, run_stage(compose_config([*FIRST_SEARCH, f"stage.latency.lut_dir={tiny_lut}"], out))


def test_search_stage_writes_the_interface_and_resumes_without_recomputing(first_search, tiny_lut: Path) -> None:
    out, results = first_search
    assert results["n_evaluated"] == 18 == results["n_evaluated_random"]
    assert 0.0 < results["hypervolume"] <= 1.0 and 0.0 <= results["hypervolume_random"] <= 1.0
    assert json.loads((out / "results.json").read_text())["hypervolume"] == pytest.approx(results["hypervolume"])
    assert Path(results["supernet_ckpt"]).is_file()
    rows = _read_csv(out / "pareto.csv")
    assert rows and {"miou", "latency_ms", "params_m", "genotype"} <= set(rows[0])
    miou, cost = [float(r["miou"]) for r in rows], [float(r["latency_ms"]) for r in rows]
    assert pareto_indices(miou, cost) == list(range(len(rows)))  # non-dominated, ordered by cost
    evaluated = _read_csv(out / "evaluations.csv")
    all_nsga2 = [(float(r["miou"]), float(r["latency_ms"])) for r in evaluated if r["search"] == "nsga2"]
    assert len(all_nsga2) == 18
    best = max(all_nsga2)
    assert max(miou) == pytest.approx(best[0])  # the best architecture is on the front
    assert sorted(p.name for p in (out / "genotypes").glob("arch_*.yaml")) == [f"arch_{i:02d}.yaml" for i in range(len(rows))]
    assert load_genotype(out / rows[0]["genotype"]).num_branches == int(rows[0]["num_branches"])
    assert (out / "pareto.png").stat().st_size > 10_000
    assert len(Archive(out / "archive.jsonl")) == results["n_computed_this_run"] <= 36
    assert -1.0 <= results["lut_agreement"]["kendall"] <= 1.0 and results["lut_agreement"]["n"] == 4

    again = run_stage(compose_config([*FIRST_SEARCH, f"stage.latency.lut_dir={tiny_lut}"], out))
    assert again["n_computed_this_run"] == 0
    assert again["pareto"] == results["pareto"] and again["hypervolume"] == results["hypervolume"]


def test_killed_search_restarts_to_the_uninterrupted_front(tiny_search, tmp_path: Path, monkeypatch) -> None:
    common = [*tiny_search, *BUDGET, "search.objective=params", "search.random_baseline=false"]
    straight = run_stage(compose_config(common, tmp_path / "straight"))

    original = SupernetMIoU.__call__
    calls = []

    def dying(self, genotype):
        if len(calls) == 8:
            raise RuntimeError("killed mid-generation")
        calls.append(genotype)
        return original(self, genotype)

    monkeypatch.setattr(SupernetMIoU, "__call__", dying)
    with pytest.raises(RuntimeError, match="killed"):
        run_stage(compose_config(common, tmp_path / "killed"))
    monkeypatch.setattr(SupernetMIoU, "__call__", original)
    resumed = run_stage(compose_config(common, tmp_path / "killed"))

    assert resumed["n_computed_this_run"] == straight["n_evaluated"] - 8 == 10
    assert resumed["pareto"] == straight["pareto"] and resumed["hypervolume"] == straight["hypervolume"]
    assert (tmp_path / "killed" / "pareto.csv").read_text() == (tmp_path / "straight" / "pareto.csv").read_text()
    assert all(r["params_m"] > 0 for r in straight["pareto"])


def test_search_logs_the_front_to_wandb_offline(tiny_search, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = compose_config([*tiny_search, *BUDGET, "logger=wandb", "search.generations=2",
                          "search.random_baseline=false"], tmp_path)
    run_stage(cfg)
    import wandb

    wandb.teardown()  # waits for W&B's service process, which writes the run file, to flush it and exit
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert runs
    logged = b"".join(p.read_bytes() for p in runs[0].glob("*.wandb"))
    assert b"search/pareto_scatter" in logged and b"search/pareto" in logged


def test_correlate_stage(tiny_supernet: Path, tmp_path: Path) -> None:
    cfg = compose_config(["stage=correlate", "debug=tiny", f"score.supernet.ckpt={tiny_supernet}",
                          "stage.proxies=[saswot,flops]"], tmp_path)  # 3 networks, one epoch each
    out = run_stage(cfg)
    assert out["n"] == 3 and len(out["networks"]) == 3
    assert sorted(n["num_branches"] for n in out["networks"]) == [1, 2, 3]  # stratified by branch count
    # ranges: one epoch per network stays near chance (standalone 0.3-7 %, chance 8.2 %; test_learning.py)
    assert all(0 <= n["supernet_miou"] <= 100 and 0 <= n["standalone_miou"] <= 100 for n in out["networks"])
    assert all(n["proxy_flops"] > 0 and math.isfinite(n["proxy_saswot"]) for n in out["networks"])
    assert -1.0 <= out["kendall"] <= 1.0  # NaN fails: at this budget no score is constant (tau 0.33 measured)
    assert set(out["scores"]) == {"supernet_miou", "proxy_saswot", "proxy_flops"}
    assert {"kendall_p", "kendall_ci", "pearson_p", "spearman_p"} <= set(out["scores"]["proxy_flops"])
    table = (tmp_path / "correlation.md").read_text()
    assert "| supernet_miou | 3 |" in table and "| proxy_saswot | 3 |" in table
    assert (tmp_path / "correlation.png").is_file() and len(_read_csv(tmp_path / "correlation.csv")) == 3
    assert run_stage(cfg)["n_computed_this_run"] == 0
    assert set(out["strata"]) == {"1branch", "2branch", "3branch"} and out["seed_agreement"] == {}


@pytest.mark.slow  # 4-14 s (make test-slow keeps make test under 6 min with the shared data)
def test_correlate_shares_a_two_seed_ground_truth_between_runs(tiny_supernet: Path, tmp_path: Path) -> None:
    truth = tmp_path / "truth"
    common = ["stage=correlate", "debug=tiny", f"score.supernet.ckpt={tiny_supernet}", "stage.proxies=[]",
              "stage.train_seeds=[0,1]", f"stage.truth_dir={truth}"]
    first = run_stage(compose_config(common, tmp_path / "a"))
    assert first["n_trained_this_run"] == 6 and sorted(p.name for p in truth.iterdir()) == ["seed_0", "seed_1"]
    rows = first["networks"]
    assert all(r["standalone_miou"] == pytest.approx((r["standalone_miou_seed0"] + r["standalone_miou_seed1"]) / 2)
               for r in rows)
    assert rows[0]["standalone_miou_seed0"] != rows[0]["standalone_miou_seed1"]  # seeds differ
    assert set(first["seed_agreement"]) == {"0-1"} and "seed 0-1" in (tmp_path / "a" / "correlation.md").read_text()
    other = run_stage(compose_config([*common, "score.evaluation.val_images=4"], tmp_path / "b"))  # another score
    assert other["n_trained_this_run"] == 0 and other["n_computed_this_run"] == 3
    assert [r["standalone_miou"] for r in other["networks"]] == [r["standalone_miou"] for r in rows]


@pytest.mark.slow  # 3-7 s (make test-slow keeps make test under 6 min on a slow host)
def test_ablate_stage(tmp_path: Path) -> None:
    out = run_stage(compose_config(["stage=ablate", "debug=tiny"], tmp_path))  # one random network per count
    names = [n["name"] for n in out["networks"]]
    assert names[0] == "searched" and {"random1_0", "random2_0", "random3_0"} <= set(names)
    assert len(names) + len(out["not_applicable"]) == 8
    assert all(n["macs_g"] > 0 and 0 <= n["standalone_miou"] <= 100 for n in out["networks"])
    table = (tmp_path / "ablation.md").read_text()
    assert "| Searched |" in table and "| Random-3 (n=1) |" in table


def test_paper_experiment_composes() -> None:
    cfg = compose_config(["stage=search", "experiment=hyctas_cityscapes"])
    s = cfg.search
    assert (s.population, s.generations, s.crossover_prob, s.mutation_prob, s.per_branch) == (40, 20, 0.9, 0.02, True)
    assert cfg.score.evaluation.recalibration_images == 1000
    assert cfg.score.supernet.space_overrides is None and cfg.score.supernet.module.lr_gamma == 0.992
    assert cfg.space.branch_prior == [0.2, 0.3, 0.5] and cfg.space.filter_multiplier == 8
    assert list(cfg.data.crop_size) == [256, 512] and cfg.data.batch_size == 16
    assert cfg.optim.lr == 0.005
    assert (s.s_max, s.filters_on, s.min_miou_mode, s.objective_weights) == ("sorted_set", "offspring", "reject", None)
    assert compose_config(["stage=search", "search=random"]).search._target_ == "segnas.search.RandomSearch"


@pytest.mark.slow  # three jobs in a subprocess (make test-slow)
def test_sweep_over_the_three_objectives_with_the_local_launcher(tiny_search, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    args = ["-m", "hydra/launcher=local", f"hydra.sweep.dir={tmp_path}", "search.objective=latency,macs,params",
            *tiny_search, "search.population=4", "search.generations=2", "search.random_baseline=false",
            "logger=none"]
    proc = subprocess.run([sys.executable, "-m", "segnas", *args], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for i, column in enumerate(("latency_ms", "macs_g", "params_m")):
        job = json.loads((tmp_path / str(i) / "results.json").read_text())
        assert job["cost_metric"] == column and job["n_evaluated"] == 8
        rows = _read_csv(tmp_path / str(i) / "pareto.csv")
        costs = [float(r[column]) for r in rows]
        assert costs == sorted(costs) and len(rows) >= 1


@pytest.mark.slow  # 3-7 s (make test-slow keeps make test under 6 min on a slow host)
def test_another_supernet_in_the_same_folder_is_refused(tiny_search, tiny_supernet: Path, tmp_path: Path) -> None:
    common = [*tiny_search, *BUDGET, "search.generations=1", "search.random_baseline=false"]
    run_stage(compose_config(common, tmp_path))
    other = tmp_path / "other.ckpt"
    ckpt = torch.load(tiny_supernet, map_location="cpu", weights_only=False)
    name = next(k for k in ckpt["state_dict"] if k.endswith("weight"))
    ckpt["state_dict"][name] = ckpt["state_dict"][name] + 1.0
    ckpt[HASH_KEY] = weights_sha256(ckpt["state_dict"])  # a valid checkpoint of other weights
    torch.save(ckpt, other)
    with pytest.raises(ValueError, match="supernet_weights_sha1"):
        run_stage(compose_config([*common, f"score.supernet.ckpt={other}"], tmp_path))


@pytest.mark.slow  # ~7 s idle (measures a latency table): make test-slow
def test_a_rebuilt_latency_table_of_the_same_name_is_refused(tiny_search, tmp_path: Path) -> None:
    common = [*tiny_search, *BUDGET, "search.generations=1", "search.random_baseline=false",
              f"stage.latency.lut_dir={tmp_path / 'lut'}"]
    first = run_stage(compose_config(common, tmp_path / "run"))
    context = json.loads((tmp_path / "run" / "archive.jsonl").read_text().splitlines()[0])["context"]
    assert context["latency_table"] == {"file": Path(first["latency_table"]["path"]).name,
                                        "id": first["latency_table"]["id"]}
    assert run_stage(compose_config(common, tmp_path / "run"))["n_computed_this_run"] == 0  # same table: resumes
    run_stage(compose_config([*common, "stage.latency.rebuild=true"], tmp_path / "rebuilt"))  # same name, new id
    with pytest.raises(ValueError, match="latency_table"):
        run_stage(compose_config(common, tmp_path / "run"))


def test_ablate_takes_table7_searched_networks_from_a_search(first_search, tmp_path: Path) -> None:
    out, _ = first_search
    cfg = compose_config(["stage=ablate", "debug=tiny", f"stage.search_dir={out}"], tmp_path)
    result = run_stage(cfg)
    searched = [n for n in result["networks"] if n["group"] == "table7"]
    evaluated = _read_csv(out / "evaluations.csv")
    for row in searched:
        n = row["num_branches"]
        assert row["name"] == f"searched{n}"
        assert n in {int(r["num_branches"]) for r in evaluated}
    assert searched and "| Searched-" in (tmp_path / "ablation.md").read_text()


@pytest.mark.slow  # 4-14 s (make test-slow keeps make test under 6 min with the shared data)
def test_algorithm1_latency_filter_relative_to_the_largest_network(tiny_search, tmp_path: Path) -> None:
    cfg = compose_config([*tiny_search, *BUDGET, "search.generations=2", "search.random_baseline=false",
                          "search.initial=uniform", "search.max_latency_fraction=0.6"], tmp_path)
    result = run_stage(cfg)
    s_max = {int(n): ms for n, ms in result["budgets"]["latency_ms"]["s_max_latency_ms"].items()}
    assert result["budgets"]["latency_ms"]["fraction"] == 0.6 and s_max
    for row in _read_csv(tmp_path / "evaluations.csv"):
        assert float(row["latency_ms"]) <= 0.6 * s_max[int(row["num_branches"])]


def test_correlate_rejects_an_unknown_proxy_before_work(tmp_path: Path) -> None:
    cfg = compose_config(["stage=correlate", "debug=tiny", "stage.proxies=[nwot,not_a_proxy]"], tmp_path)
    with pytest.raises(ValueError, match=r"stage\.proxies: \['not_a_proxy'\]"):
        run_stage(cfg)
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize(("options", "match"), [
    ("{flops:{loss_reduction:mean}}", r"stage\.proxy_options: options of \['flops'\]"),
    ("{saswot:{loss_reduce:mean}}", r"stage\.proxy_options\.saswot: \['loss_reduce'\]"),
])  # fmt: skip
def test_correlate_rejects_bad_proxy_options_before_work(tmp_path: Path, options: str, match: str) -> None:
    cfg = compose_config(["stage=correlate", "debug=tiny", "stage.proxies=[saswot,nwot]",
                          f"stage.proxy_options={options}"], tmp_path)
    with pytest.raises(ValueError, match=match):
        run_stage(cfg)
    assert not (tmp_path / "checkpoints").exists()
