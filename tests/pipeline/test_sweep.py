"""`tinynas sweep`: boards share trained candidates through one cache; a failing board is reported
and the others go on."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from pipeline_helpers import TINY

from tinynas.cli.main import cli
from tinynas.pipeline.journal import Journal


@pytest.mark.slow
def test_sweep_shares_candidates_and_survives_a_failing_board(tmp_path, no_room_profile):
    out = tmp_path / "sweep"
    boards = f"nano33ble,{no_room_profile},nucleo-h743zi"
    args = ["sweep", "--profiles", boards, "--dataset", "digits", "--strategy", "evolution", *TINY, "--final-top-k", "1",
            "--search-only", "--out", str(out), "--json"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    rows = {b["board"]: b for b in report["boards"]}
    assert [b["board"] for b in report["boards"]] == ["nano33ble", "no-room", "nucleo-h743zi"]
    assert rows["no-room"]["status"] == "failed" and "fits board 'no-room'" in rows["no-room"]["error"]
    assert report["failed"] == ["no-room"]
    for board in ("nano33ble", "nucleo-h743zi"):
        assert rows[board]["status"] == "ok" and rows[board]["winner"], rows[board]
        assert (out / board / "summary.json").is_file()
    # h743zi (roomiest) ran first; nano33ble was told its results that fit and trained fewer itself.
    first, second = rows["nucleo-h743zi"], rows["nano33ble"]
    assert first["shared"] == 0 and second["shared"] > 0
    shared = [e for e in Journal(out / "nano33ble" / "journal.jsonl").candidates(stage="search")
              if e.get("shared_from")]
    assert shared and all(e["shared_from"] == "nucleo-h743zi" and e["cost"]["fits"] for e in shared)
    assert report["trainings"] < 2 * first["trainings"]
    md = (out / "sweep.md").read_text()
    assert "no-room | failed" in md and "nucleo-h743zi | ok" in md

    # `tinynas report` rebuilds the sweep, and running the sweep again trains nothing.
    (out / "sweep.md").unlink()
    rebuilt = CliRunner().invoke(cli, ["report", str(out), "--json"], catch_exceptions=False)
    assert rebuilt.exit_code == 0 and (out / "sweep.md").is_file()
    assert json.loads(rebuilt.output)["boards"] == report["boards"]
    again = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert json.loads(again.output)["trainings"] == report["trainings"]


@pytest.fixture
def twin_profile(tmp_path, repo_root):
    """nano33ble with another id and half its flash: the same candidates mostly fit both boards."""
    text = (repo_root / "hardware_profiles" / "nano33ble.toml").read_text()
    text = text.replace('id = "nano33ble"', 'id = "nano-twin"')
    text = text.replace("flash_bytes = 1_048_576", "flash_bytes = 524_288")
    path = tmp_path / "nano-twin.toml"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_sweep_scores_proxies_once_and_quantizes_a_shared_winner_once(tmp_path, twin_profile):
    """Proxy scores and the int8 deploy do not depend on the board: the second board reuses them."""
    out = tmp_path / "sweep"
    args = ["sweep", "--profiles", f"nano33ble,{twin_profile}", "--dataset", "digits", "--strategy", "staged", *TINY,
            "--out", str(out), "--json"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "sweep.json").read_text())  # stdout also holds the TFLite converter's chatter
    assert report["failed"] == [] and [b["status"] for b in report["boards"]] == ["ok", "ok"]

    # nano33ble (more flash) ran first and scored its feasible samples; the twin scored only the ones it had not.
    def prefilter(board):
        done = json.loads((out / board / "stages" / "prefilter" / "done.json").read_text())
        full = json.loads((out / board / "stages" / "prefilter" / "prefilter.json").read_text())
        return done, {s["id"]: s["scores"] for s in full["scored"]}

    (first, first_scores), (second, second_scores) = prefilter("nano33ble"), prefilter("nano-twin")
    assert first["reused"] == 0 and first["scored"] == first["n_feasible"] > 0
    common = set(first_scores) & set(second_scores)
    assert common and second["reused"] == len(common)
    assert second["scored"] == second["n_feasible"] - len(common)
    assert all(second_scores[i] == first_scores[i] for i in common)

    # Both boards deploy the same winner: quantized and validated once, re-checked against the twin's budgets.
    m1 = json.loads((out / "nano33ble" / "model" / "metrics.json").read_text())
    m2 = json.loads((out / "nano-twin" / "model" / "metrics.json").read_text())
    assert m1["model_id"] == m2["model_id"], "the test needs both boards to pick the same winner"
    assert "reused_from" not in m1 and m2["reused_from"].endswith(f"nano33ble/stages/deploy/{m1['model_id']}")
    assert m2["int8_sha256"] == m1["int8_sha256"] and m2["int8_accuracy"] == m1["int8_accuracy"]
    assert m2["profile_id"] == "nano-twin" and m2["flash_budget_bytes"] < m1["flash_budget_bytes"]
    assert {c["name"]: c["budget"] for c in m2["validation"]["checks"]}["flash"] == m2["flash_budget_bytes"]
    assert (out / "nano-twin" / "firmware").is_dir() and (out / "nano-twin" / "deploy" / "model_data.cc").is_file()

    # Resume: running the sweep again redoes nothing and reports the same.
    again = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert again.exit_code == 0 and json.loads(again.output)["boards"] == report["boards"]
    assert json.loads(again.output)["trainings"] == report["trainings"]
