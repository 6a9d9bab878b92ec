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
