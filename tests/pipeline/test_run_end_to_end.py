"""`tinynas run` end to end on digits (real training, int8 in the TFLite Micro interpreter, firmware),
and `tinynas report` rebuilding what it wrote."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from pipeline_helpers import TINY

from tinynas.cli.main import cli
from tinynas.pipeline.journal import Journal
from tinynas.pipeline.report import cheaper_tie_note, render_markdown
from tinynas.pipeline.rundir import loads_config


@pytest.mark.slow
def test_run_writes_the_whole_run_directory(finished_run):
    out = finished_run
    for name in ("config.toml", "journal.jsonl", "summary.json", "report.md", "report.html", "pareto.png",
                 "model/model.keras", "model/model_int8.tflite", "model/metrics.json", "model/arch.json",
                 "deploy/model_data.h", "deploy/model_data.cc", "deploy/op_resolver.h"):
        assert (out / name).is_file(), name
    assert any((out / "firmware" / "arduino").rglob("*.ino"))  # nano33ble's own ecosystem
    config = loads_config((out / "config.toml").read_text(), where="config")
    assert config["profile"]["id"] == "nano33ble" and config["strategy"]["name"] == "staged"
    assert len(config["dataset"]["fingerprint"]) == 40 and config["budget"]["candidates"] == 3

    summary = json.loads((out / "summary.json").read_text())
    win = summary["winner"]
    assert summary["board"] == "nano33ble" and summary["dataset"] == "digits"
    assert summary["candidates_evaluated"] == 3 and summary["search_seconds"] > 0
    assert 0.0 <= win["int8_accuracy"] <= 1.0 and win["int8_accuracy"] > 0.3  # 10 classes: well above chance
    assert win["tflm_arena_bytes"] <= summary["budgets"]["sram_budget_bytes"] and win["fits"] is True
    assert win["cost"]["latency_ms"] <= summary["budgets"]["latency_target_ms"]
    metrics = json.loads((out / "model" / "metrics.json").read_text())
    assert metrics["model_id"] == win["id"] and metrics["int8_accuracy"] == win["int8_accuracy"]
    assert json.loads((out / "model" / "arch.json").read_text())["space"] == "dscnn"
    assert summary["pareto"]["latency_ms"] and summary["pareto"]["arena_bytes"]
    # how the int8 number came about: deploy's QAT record, and the report's note when fine-tuning won
    assert win["qat"]["requested"] == "auto" and "settings" not in win["qat"]
    tuned = {**summary, "winner": {**win, "qat": {"applied": True, "used": True, "ptq_int8_accuracy": 0.9}}}
    assert "after quantization-aware fine-tuning (post-training quantization: 0.9000)" in render_markdown(tuned)
    tuned["winner"]["qat"]["epoch_passes"] = 24  # deploy's record on a training set of 42 samples
    assert ("after quantization-aware fine-tuning, each epoch 24 passes over the small training set (post-training "
            "quantization: 0.9000)") in render_markdown(tuned)

    journal = Journal(out / "journal.jsonl")
    search = journal.candidates(stage="search")
    assert len(search) == 3 and all(e["cost"]["fits"] for e in search)  # only feasible archs were trained
    assert {e["fidelity"] for e in search} == {"low"}
    assert {e["fidelity"] for e in journal.candidates(stage="final")} == {"final"}
    done = [e["stage"] for e in journal.events() if e["event"] == "done"]
    assert done == ["prefilter", "search", "final", "winner", "deploy"]
    report = (out / "report.md").read_text()
    assert win["id"] in report and "test accuracy (int8, TFLite Micro)" in report and "pareto.png" in report
    # what the int8 accuracy was measured on, and how that split was made
    assert win["test_samples"] == metrics["num_test_samples"] == 269
    assert ("| test split | 269 samples; test 15 % and validation 15 % of each class carved from the data at random "
            "(seed 0) |") in report
    assert "<img src='pareto.png'" in (out / "report.html").read_text()
    # the front's accuracies are search-fidelity scores, not the winner's: the report says so
    note = "by the accuracy the search ranked them on (validation accuracy at search fidelity"
    assert note in report and note in (out / "report.html").read_text() and "deployment are above." in report
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the finalists the winner was chosen from, in the final stage's ranking, each with its model file
    ranked = json.loads((out / "stages" / "final" / "done.json").read_text())["ranked"]
    finalists = summary["finalists"]
    assert [r["id"] for r in finalists] == ranked and len(ranked) == 2
    assert [r["winner"] for r in finalists] == [r["id"] == win["id"] for r in finalists] and win["id"] in ranked
    assert all((out / "stages" / "final" / f"{r['id']}.keras").is_file() for r in finalists)
    assert "## Finalists" in report and f"| {win['id']} (winner) | {win['val_accuracy']:.4f} |" in report
    assert "<h2>Finalists</h2>" in (out / "report.html").read_text()


def test_the_report_names_a_finalist_that_tied_the_winner_at_a_lower_cost():
    def row(i, acc, latency, flash, winner=False):
        return {"id": i, "winner": winner, "arch_summary": "a", "val_accuracy": acc, "val_loss": 0.1,
                "float_test_accuracy": 0.9, "latency_ms": latency, "arena_bytes": 1000, "flash_bytes": flash,
                "macs": 1, "model": f"RUN/stages/final/{i}.keras"}

    base = {"board": "pico", "dataset": "wav", "dataset_options": {"resample": True}}
    tied = {**base, "finalists": [row("big", 1.0, 448.6, 159_324, winner=True), row("small", 1.0, 272.7, 104_092),
                                  row("worse", 0.9, 10.0, 1_000)]}
    note = cheaper_tie_note(tied)
    assert note.startswith("small tied the winner on validation accuracy (1.0000; the validation loss chose the "
                           "winner) at 272.70 ms and 104,092 B of flash against 448.60 ms and 159,324 B.")
    assert note.endswith("tinynas deploy RUN/stages/final/small.keras --profile pico --dataset wav -o resample=True "
                         "--out DIR")
    # a tie at about the winner's cost, or a cheaper finalist that is less accurate, is no news
    near = [row("big", 1.0, 448.6, 159_324, winner=True), row("near", 1.0, 400.0, 150_000), row("worse", 0.9, 1.0, 1)]
    assert cheaper_tie_note({**base, "finalists": near}) is None
    # within a quarter point of validation accuracy (one of 1,500 images) is a tie in all but name
    close = [row("big", 0.9380, 99.99, 49_065, winner=True), row("small", 0.9373, 73.58, 27_344)]
    assert cheaper_tie_note({**base, "finalists": close}).startswith(
        "small came within 0.07 points of the winner's validation accuracy (0.9373 against 0.9380) at 73.58 ms")


@pytest.mark.slow
def test_report_rebuilds_a_run(finished_run, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(finished_run, out)
    before = json.loads((out / "summary.json").read_text())
    for name in ("summary.json", "report.md", "report.html", "pareto.png"):
        (out / name).unlink()
    result = CliRunner().invoke(cli, ["report", str(out), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["winner"] == before["winner"]
    for name in ("summary.json", "report.md", "report.html", "pareto.png"):
        assert (out / name).is_file()
    assert json.loads((out / "summary.json").read_text())["winner"] == before["winner"]


@pytest.mark.slow
def test_rerunning_a_finished_run_trains_nothing(finished_run):
    journal = Journal(finished_run / "journal.jsonl")
    before = len(journal.candidates())

    result = CliRunner().invoke(cli, ["run", "--profile", "nano33ble", "--dataset", "digits", *TINY,
                                      "--out", str(finished_run), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert len(journal.candidates()) == before
    # the same out with other settings is refused, with the key that differs and a hint
    other = CliRunner().invoke(cli, ["run", "--profile", "nano33ble", "--dataset", "digits", *TINY,
                                     "--seed", "1", "--out", str(finished_run)])
    assert "seeds.seed: 0 -> 1" in str(other.exception) and "--out" in str(other.exception)


@pytest.mark.slow
def test_no_qat_deploys_post_training_int8_and_does_not_reuse_an_auto_deploy(finished_run, tmp_path):
    """--no-qat reaches deploy; a deploy of the same model made under another QAT setting (here the
    finished run's "auto", found through the shared cache) is redone, not reused."""
    out = tmp_path / "no-qat"
    args = ["run", "--profile", "nano33ble", "--dataset", "digits", *TINY, "--cache-dir",
            str(finished_run / "cache"), "--no-qat", "--out", str(out), "--json"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    win = json.loads((out / "summary.json").read_text())["winner"]
    before = json.loads((finished_run / "summary.json").read_text())["winner"]
    assert win["id"] == before["id"]  # the same trained model, from the cache
    assert win["qat"]["requested"] is False and win["qat"]["applied"] is False
    assert "reused_from" not in json.loads((out / "model" / "metrics.json").read_text())
    assert loads_config((out / "config.toml").read_text(), where="config")["deploy"] == {"qat": False}
    assert "fine-tuning turned off by --no-qat" in (out / "report.md").read_text()
    # the finished run (deploy's own choice) refuses to resume with QAT forced
    other = CliRunner().invoke(cli, ["run", "--profile", "nano33ble", "--dataset", "digits", *TINY,
                                     "--qat", "--out", str(finished_run)])
    assert other.exit_code != 0 and "deploy" in str(other.exception)
