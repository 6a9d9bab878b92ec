"""tinynas/pipeline/rundir.py and journal.py: config.toml, refusal of another config, the lock, the journal."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tinynas.errors import SearchError
from tinynas.pipeline.journal import Journal
from tinynas.pipeline.rundir import RunDir, loads_config

CONFIG = {
    "profile": {"id": "nano33ble", "sram_budget_bytes": 196608, "latency_target_ms": 200.0},
    "dataset": {"name": "digits", "fingerprint": "abc", "input_shape": [8, 8, 1]},
    "budget": {"candidates": 24, "minutes": None},
    "execution": {"workers": 1},
}


def test_config_is_written_and_reopening_with_it_resumes(tmp_path):
    out = tmp_path / "run"
    with RunDir.open(out, config=CONFIG) as rd:
        rd.journal.append({"type": "candidate", "id": "a"})
    config = loads_config((out / "config.toml").read_text(), where="x")
    assert config["profile"]["id"] == "nano33ble" and config["dataset"]["input_shape"] == [8, 8, 1]
    assert "minutes" not in config["budget"]  # None is left out
    changed_workers = {**CONFIG, "execution": {"workers": 4}}  # execution settings may change on resume
    with RunDir.open(out, config=changed_workers) as rd:
        assert [e["id"] for e in rd.journal.candidates()] == ["a"]
        assert rd.config["execution"]["workers"] == 4


def test_another_config_is_refused_naming_the_keys(tmp_path):
    out = tmp_path / "run"
    RunDir.open(out, config=CONFIG).close()
    other = {**CONFIG, "budget": {"candidates": 50}, "dataset": {**CONFIG["dataset"], "fingerprint": "xyz"}}
    with pytest.raises(SearchError) as err:
        RunDir.open(out, config=other)
    msg = str(err.value)
    assert "budget.candidates: 24 -> 50" in msg and "dataset.fingerprint" in msg and "--out" in msg
    assert loads_config((out / "config.toml").read_text(), where="x")["budget"]["candidates"] == 24  # untouched


def test_the_same_command_on_other_data_is_refused_saying_the_data_changed(tmp_path):
    """The same command, so "run the same command as before to resume" would not help: the data differ (files
    edited, or features computed with other float rounding on another machine), and the message says so."""
    out = tmp_path / "run"
    RunDir.open(out, config=CONFIG).close()
    with pytest.raises(SearchError) as err:
        RunDir.open(out, config={**CONFIG, "dataset": {**CONFIG["dataset"], "fingerprint": "xyz"}})
    msg = str(err.value)
    assert "holds a run of the same command, but dataset 'digits' now reads as other data" in msg
    assert "dataset.fingerprint: 'abc' -> 'xyz'" in msg and "run the same command" not in msg
    assert loads_config((out / "config.toml").read_text(), where="x")["dataset"]["fingerprint"] == "abc"


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SearchError, match="not empty .*notes.txt.*--out"):
        RunDir.open(tmp_path, config=CONFIG)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_live_lock_is_refused_and_a_stale_one_taken_over(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        out.mkdir()
        (out / ".lock").write_text(f"{holder.pid}\n")
        with pytest.raises(SearchError, match=f"in use by another tinynas process \\(pid {holder.pid}"):
            RunDir.open(out, config=CONFIG)
    finally:
        holder.kill()
        holder.wait()
    with RunDir.open(out, config=CONFIG):  # the holder is gone: its lock is stale
        assert (out / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(SearchError, match="in use"):  # and a second opener, even in this process, is refused
            RunDir.open(out, config=CONFIG)
    assert not (out / ".lock").exists()


def test_journal_ignores_a_torn_last_line_and_skips_a_damaged_one(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    for i in range(3):
        journal.append({"type": "candidate", "stage": "search", "id": str(i)})
    raw = (tmp_path / "journal.jsonl").read_text().splitlines()
    raw[1] = raw[1][:10]  # damaged in the middle
    (tmp_path / "journal.jsonl").write_text("\n".join(raw) + "\n" + '{"type": "candid')  # torn at the end
    assert [e["id"] for e in journal.candidates(stage="search")] == ["0", "2"]
    journal.append({"type": "stage", "stage": "search", "event": "done"})
    # appending after a torn line: the new line is readable, the torn one stays ignored
    assert journal.events(stage="search")[-1]["event"] == "done"
    lines = (tmp_path / "journal.jsonl").read_bytes().split(b"\n")
    assert json.loads(lines[-2])["event"] == "done"
