"""``tinynas proxies`` commands, the correlation benchmark on the real NAS-Bench-201 table,
and the rank ensemble against its members on that data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tinynas.cli.proxies import proxies
from tinynas.errors import ProxyError
from tinynas.proxies.benchmark import benchmark_nasbench201, correlation, read_nb201_truth
from tinynas.proxies.ensemble import RankEnsemble


def test_list_json():
    out = CliRunner().invoke(proxies, ["list", "--json"])
    assert out.exit_code == 0, out.output
    names = {p["name"]: p for p in json.loads(out.output)}
    assert names["synflow"]["higher_is_better"] and names["snip"]["needs_data"]


def test_score_json():
    out = CliRunner().invoke(proxies, ["score", "--space", "nanonas", "--input-shape", "32,32,1", "--classes", "4",
                                       "--n", "3", "--seed", "0", "--proxies", "synflow,params,zen", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert len(rows) == 3 and all(np.isfinite(r["scores"]["synflow"]) for r in rows)
    assert all("ensemble_rank" in r for r in rows)


def test_score_refuses_unknown_proxy():
    out = CliRunner().invoke(proxies, ["score", "--space", "nanonas", "--proxies", "nope"])
    assert out.exit_code != 0 and isinstance(out.exception, ProxyError)


def test_correlation_respects_sign():
    truth = [1.0, 2.0, 3.0, 4.0]
    assert correlation([10, 20, 30, 40], truth)[0] == pytest.approx(1.0)
    assert correlation([10, 20, 30, 40], truth, higher_is_better=False)[0] == pytest.approx(-1.0)
    rank = RankEnsemble.of({"params": 1.0}).combine([{"params": v} for v in (5.0, 1.0, 3.0)])
    assert list(rank) == [1.0, 0.0, 0.5]


def test_truth_file_errors_name_file_and_field(tmp_path):
    bad = tmp_path / "t.csv"
    bad.write_text("arch_str,acc\n|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,10\n")
    with pytest.raises(ProxyError, match="t.csv: column 'cifar10_val_acc' is missing"):
        read_nb201_truth(bad)
    out = CliRunner().invoke(proxies, ["benchmark", "--space", "nasbench201", "--truth", str(bad), "--n", "5"])
    assert out.exit_code != 0 and "missing" in str(out.exception)


@pytest.mark.slow
def test_nb201_benchmark_reproduces_synflow_correlation(shared_benchmarks):
    # One cell per stage and 8 base channels: the same ranking signal at a fraction of the cost.
    res = benchmark_nasbench201(truth_path=shared_benchmarks / "nasbench201_accuracy.csv", n=60, seed=0,
                                proxies=["synflow", "params"], cells_per_stage=1, base_channels=8,
                                ensemble=RankEnsemble.of(["synflow", "params"]))
    assert res.n == 60 and len(res.archs) == 60
    assert res.row("synflow").spearman > 0.5  # published: 0.74 over all cells
    assert res.row("params").spearman > 0.5
    assert -1 <= res.row("ensemble").kendall <= 1
    assert all(r.seconds_per_arch > 0 for r in res.rows)


@pytest.mark.slow
def test_benchmark_cli_json(shared_benchmarks):
    out = CliRunner().invoke(proxies, ["benchmark", "--space", "nasbench201", "--truth",
                                       str(shared_benchmarks / "nasbench201_accuracy.csv"), "--n", "12",
                                       "--cells", "1", "--proxies", "synflow,params", "--no-progress", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert {r["name"] for r in data["rows"]} == {"synflow", "params", "ensemble"} and data["n"] == 12
