"""`tinynas run --space gcn` on the graph datasets: search, train, int8 TFLM validation, C arrays, firmware."""

from __future__ import annotations

import json
import sys

import pytest

FLAGS = ["--profile", "nano33ble", "--space", "gcn", "--strategy", "evolution", "--budget-candidates", "2",
         "--search-epochs", "2", "--search-samples", "200", "--final-epochs", "8", "--final-top-k", "1",
         "--prefilter-candidates", "4", "--no-progress", "--seed", "1"]


def _run(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    from tinynas.cli.main import main

    monkeypatch.setattr(sys, "argv", ["tinynas", "run", *args])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    return int(exc.value.code or 0), capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["digits-grid", "karate-club"])
def test_gcn_run_ends_in_int8_tflm_and_firmware(dataset, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    code, err = _run(monkeypatch, capsys, "--dataset", dataset, *FLAGS, "--out", str(out))
    assert code == 0, err[-3000:]
    winner = json.loads((out / "summary.json").read_text())["winner"]
    arch = json.loads((out / "model" / "arch.json").read_text())
    assert arch["space"] == "gcn" and winner["fits"] is True
    # validated in the real TFLM interpreter: an int8 accuracy and the measured arena
    assert 0.0 <= winner["int8_accuracy"] <= 1.0 and winner["tflm_arena_bytes"] > 0
    assert abs(winner["cost"]["arena_bytes"] - winner["tflm_arena_bytes"]) / winner["tflm_arena_bytes"] < 0.05
    resolver = (out / "deploy" / "op_resolver.h").read_text()
    assert "AddTranspose()" in resolver and "AddFullyConnected()" in resolver
    assert (out / "deploy" / "model_data.cc").is_file() and any((out / "firmware").iterdir())


def test_gcn_on_a_dataset_without_a_graph_exits_1(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    code, err = _run(monkeypatch, capsys, "--dataset", "synthetic-seq", *FLAGS, "--out", str(out))
    assert code == 1 and "gcn needs a graph dataset" in err and "Traceback" not in err
    assert "these take it: " in err and "gcn" not in err.split("these take it: ")[1]  # not offered without a graph
    assert not out.exists()
