"""`tinynas run --strategy ofa` end to end on a digits slice: exit codes, the supernet stage, inherited
accuracy in the journal, a second run reusing the cached supernet, and the refusals."""

from __future__ import annotations

import json
import sys

import pytest

# The supernet's own schedule (default: 200 steps per phase on every training sample) cut to 1 step per phase on
# 64 samples: --search-epochs and --search-samples do not size it.
FLAGS = ["--budget-candidates", "3", "--search-epochs", "1", "--search-samples", "64", "--final-epochs", "1",
         "--final-top-k", "1", "--no-progress", "--strategy-option", "steps_per_phase=1",
         "--strategy-option", "supernet_samples=64", "--max-macs", "200k"]


def _run(monkeypatch, capsys, *args, command="run"):
    from tinynas.cli.main import main

    monkeypatch.setattr(sys, "argv", ["tinynas", command, *args])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    return exc.value.code, capsys.readouterr()


def _journal(out):
    return [json.loads(x) for x in (out / "journal.jsonl").read_text().splitlines() if x.strip()]


@pytest.mark.slow
def test_ofa_run_trains_once_and_reuses_the_supernet(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    first = tmp_path / "a"
    code, cap = _run(monkeypatch, capsys, "--profile", "nano33ble", "--dataset", "digits", "--space", "mcunet",
                     "--strategy", "ofa", *FLAGS, "--no-qat", "--cache-dir", str(cache), "--out", str(first))
    assert code == 0, cap.err[-3000:]
    done = json.loads((first / "stages" / "supernet" / "done.json").read_text())
    assert done["reused"] is False and set(done["phase_seconds"]) == {"full", "kernel", "depth", "expand", "width"}
    lines = _journal(first)
    search = [e for e in lines if e.get("stage") == "search" and "arch" in e]
    assert len(search) == 3 and all(e["fidelity"] == "ofa" and e["accuracy"] is not None for e in search)
    assert all(float(e["arch"]["decisions"]["width"]) <= 0.35 for e in search)  # covered by the supernet
    final = [e for e in lines if e.get("stage") == "final" and "arch" in e]
    assert final and final[0]["inherited_accuracy"] is not None and final[0]["worker"] == "ofa"
    assert final[0]["finetune_keep"] == 0.5  # shrink and perturb by default
    assert (first / "model" / "model_int8.tflite").is_file() and (first / "deploy" / "model_data.cc").is_file()

    second = tmp_path / "b"
    code, cap = _run(monkeypatch, capsys, "--profile", "nucleo-l432kc", "--dataset", "digits", "--space", "mcunet",
                     "--strategy", "ofa", *FLAGS, "--cache-dir", str(cache), "--out", str(second),
                     command="search")
    assert code == 0, cap.err[-3000:]
    again = json.loads((second / "stages" / "supernet" / "done.json").read_text())
    assert again["reused"] is True and again["directory"] == done["directory"] and not again["phase_seconds"]


def test_ofa_on_another_space_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    code, cap = _run(monkeypatch, capsys, "--profile", "nano33ble", "--dataset", "digits", "--space", "dscnn",
                     "--strategy", "ofa", *FLAGS, "--out", str(out))
    assert code == 1 and "strategy 'ofa' works only on space(s) mcunet" in cap.err
    assert "Traceback" not in cap.err and not out.exists()


def test_a_finetune_keep_outside_0_to_1_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    code, cap = _run(monkeypatch, capsys, "--profile", "nano33ble", "--dataset", "digits", "--space", "mcunet",
                     "--strategy", "ofa", *FLAGS, "--strategy-option", "finetune_keep=1.5", "--out", str(out))
    assert code == 1 and "finetune_keep must be within 0..1" in cap.err, cap.err
    assert "Traceback" not in cap.err and not out.exists()


def test_a_board_no_subnet_fits_names_the_smallest_subnets_cost(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    code, cap = _run(monkeypatch, capsys, "--profile", "nucleo-l010rb", "--dataset", "digits", "--space", "mcunet",
                     "--strategy", "ofa", *FLAGS[:-2], "--max-macs", "1k", "--out", str(out))
    assert code == 1 and "smallest" in cap.err and "macs" in cap.err and "vs budget 1000" in cap.err, cap.err
    assert not out.exists()


@pytest.mark.slow
def test_an_ofa_sweep_shares_the_supernet_and_each_board_scores_its_own_subnets(tmp_path, monkeypatch, capsys):
    out = tmp_path / "sweep"
    code, cap = _run(monkeypatch, capsys, "--profiles", "nucleo-l432kc,nano33ble", "--dataset", "digits", "--space",
                     "mcunet", "--strategy", "ofa", *FLAGS, "--search-only", "--out", str(out), command="sweep")
    assert code == 0, cap.err[-3000:]
    done = {b: json.loads((out / b / "stages" / "supernet" / "done.json").read_text())
            for b in ("nucleo-l432kc", "nano33ble")}
    assert done["nucleo-l432kc"]["directory"] == done["nano33ble"]["directory"]  # one supernet for both boards
    assert sorted(d["reused"] for d in done.values()) == [False, True]
    for board in done:  # no board is told another's subnets: each spends its whole budget on its own search
        search = [e for e in _journal(out / board) if e.get("stage") == "search" and "arch" in e]
        assert len(search) == 3 and not any(e.get("shared_from") for e in search), board
