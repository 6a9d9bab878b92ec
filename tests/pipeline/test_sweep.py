"""`tinynas sweep`: boards share trained candidates through one cache; a failing board is reported
and the others go on."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from pipeline_helpers import TINY

from tinynas.cli.main import cli
from tinynas.pipeline.journal import Journal
from tinynas.pipeline.report import sweep_budget_note


@pytest.mark.slow
def test_sweep_shares_candidates_and_survives_a_failing_board(tmp_path, no_room_profile):
    out = tmp_path / "sweep"
    boards = f"nano33ble,{no_room_profile},nucleo-h743zi"
    args = ["sweep", "--profiles", boards, "--dataset", "digits", "--strategy", "evolution", *TINY, "--final-top-k", "1",
            "--search-only", "--out", str(out), "--json"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    # the others finish and are reported; the exit code tells a script that one board failed
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: 1 of 3 boards failed (no-room): each says why above and in ")
    report = json.loads(result.stdout)
    rows = {b["board"]: b for b in report["boards"]}
    assert [b["board"] for b in report["boards"]] == ["nano33ble", "no-room", "nucleo-h743zi"]
    assert rows["no-room"]["status"] == "failed" and "fits board 'no-room'" in rows["no-room"]["error"]
    assert report["failed"] == ["no-room"]
    for board in ("nano33ble", "nucleo-h743zi"):
        assert rows[board]["status"] == "ok" and rows[board]["winner"], rows[board]
        assert (out / board / "summary.json").is_file()
    # Tightest first: no-room (nothing fits) failed at once, then nano33ble searched; h743zi was told
    # nano33ble's results (all fit it), counted in its budget, and trained fewer itself.
    assert report["order"] == "tightest-first"
    assert report["run_order"] == ["no-room", "nano33ble", "nucleo-h743zi"]
    first, second = rows["nano33ble"], rows["nucleo-h743zi"]
    assert first["shared"] == 0 and second["shared"] > 0
    shared = [e for e in Journal(out / "nucleo-h743zi" / "journal.jsonl").candidates(stage="search")
              if e.get("shared_from")]
    assert shared and all(e["shared_from"] == "nano33ble" and e["cost"]["fits"] for e in shared)
    assert second["trainings"] < first["trainings"] and report["trainings"] < 2 * first["trainings"]
    md = (out / "sweep.md").read_text()
    assert "no-room | failed" in md and "(nucleo-h743zi/report.md) | ok" in md
    assert "Boards ran tightest-first: no-room, nano33ble, nucleo-h743zi" in md
    assert f"| {first['arena_bytes']:,} | {first['flash_bytes']:,} |" in md  # bytes as every report writes them
    # each board links to its own report; the failed board has none to link to
    assert "| [nano33ble](nano33ble/report.md) | ok |" in md and "| no-room | failed" in md
    page = (out / "sweep.html").read_text()
    assert "<a href='nano33ble/report.html'>nano33ble</a>" in page and "<td>no-room</td><td>failed" in page
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "](sweep.png)" in md

    # `tinynas report` rebuilds the sweep, and running the sweep again trains nothing.
    for name in ("sweep.md", "sweep.html", "sweep.png"):
        (out / name).unlink()
    rebuilt = CliRunner().invoke(cli, ["report", str(out), "--json"], catch_exceptions=False)
    assert rebuilt.exit_code == 0 and all((out / name).is_file() for name in ("sweep.md", "sweep.html", "sweep.png"))
    assert json.loads(rebuilt.output)["boards"] == report["boards"]
    again = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert again.exit_code == 1 and json.loads(again.stdout)["trainings"] == report["trainings"]


@pytest.mark.slow
def test_a_time_budget_counts_the_seconds_of_the_shared_results(tmp_path):
    """A shared result costs the later board what it cost the earlier one: here more than the whole budget."""
    out = tmp_path / "sweep"
    i = TINY.index("--budget-candidates")
    tiny = TINY[:i] + TINY[i + 2:]
    args = ["sweep", "--profiles", "nucleo-h743zi,nano33ble", "--dataset", "digits", "--strategy", "random", *tiny,
            "--budget-minutes", "0.001", "--search-only", "--out", str(out), "--json"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["run_order"] == ["nano33ble", "nucleo-h743zi"]
    first = Journal(out / "nano33ble" / "journal.jsonl").candidates(stage="search")
    assert len(first) == 1 and first[0]["seconds"] > 0.06  # any budget buys one candidate
    second = Journal(out / "nucleo-h743zi" / "journal.jsonl").candidates(stage="search")
    assert [(e["id"], e.get("shared_from")) for e in second] == [(first[0]["id"], "nano33ble")]
    # its search time is what that result cost nano33ble, and its report says so beside a short wall time
    summary = json.loads((out / "nucleo-h743zi" / "summary.json").read_text())
    assert summary["shared_seconds"] == pytest.approx(first[0]["seconds"], abs=1e-3)
    assert summary["search_seconds"] >= summary["shared_seconds"]
    assert (f"search {summary['search_seconds']:.0f} s ({first[0]['seconds']:.0f} s of it the shared candidates' "
            "on other boards)") in (out / "nucleo-h743zi" / "report.md").read_text()
    # The report says that nucleo-h743zi's winner is nano33ble's, not a search of its own.
    note = "nucleo-h743zi evaluated no candidate of its own: the candidates shared from earlier boards filled"
    assert note in (out / "sweep.md").read_text()
    assert "nano33ble evaluated" not in (out / "sweep.md").read_text()


def test_the_sweep_note_names_only_the_boards_that_searched_nothing_of_their_own():
    def row(board, candidates, shared, status="ok", stop="budget"):
        return {"board": board, "status": status, "candidates": candidates, "shared": shared, "search_stop": stop}

    assert sweep_budget_note([row("a", 8, 0), row("b", 8, 3), row("c", 5, 5, stop="exhausted")]) is None
    note = sweep_budget_note([row("a", 8, 0), row("b", 8, 8), row("c", 0, 0, status="failed"), row("d", 8, 8)])
    assert note.startswith("b and d evaluated no candidate of their own:")
    assert sweep_budget_note([row("a", 8, 0), row("b", 8, 8)]).startswith("b evaluated no candidate of its own:")


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
    """Proxy scores and the int8 deploy do not depend on the board: the second board reuses them.
    The twin goes first: as many archs fit both, and it has less flash."""
    out = tmp_path / "sweep"
    args = ["sweep", "--profiles", f"nano33ble,{twin_profile}", "--dataset", "digits", "--strategy", "staged", *TINY,
            "--out", str(out), "--json"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "sweep.json").read_text())  # stdout also holds the TFLite converter's chatter
    assert report["failed"] == [] and [b["status"] for b in report["boards"]] == ["ok", "ok"]

    # The twin ran first and scored its feasible samples; nano33ble scored only the ones it had not.
    assert report["run_order"] == ["nano-twin", "nano33ble"]

    def prefilter(board):
        done = json.loads((out / board / "stages" / "prefilter" / "done.json").read_text())
        full = json.loads((out / board / "stages" / "prefilter" / "prefilter.json").read_text())
        return done, {s["id"]: s["scores"] for s in full["scored"]}

    (first, first_scores), (second, second_scores) = prefilter("nano-twin"), prefilter("nano33ble")
    assert first["reused"] == 0 and first["scored"] == first["n_feasible"] > 0
    common = set(first_scores) & set(second_scores)
    assert common and second["reused"] == len(common)
    assert second["scored"] == second["n_feasible"] - len(common)
    assert all(second_scores[i] == first_scores[i] for i in common)

    # Both boards deploy the same winner: quantized and validated once, re-checked against nano33ble's budgets.
    m1 = json.loads((out / "nano-twin" / "model" / "metrics.json").read_text())
    m2 = json.loads((out / "nano33ble" / "model" / "metrics.json").read_text())
    assert m1["model_id"] == m2["model_id"], "the test needs both boards to pick the same winner"
    assert "reused_from" not in m1 and m2["reused_from"].endswith(f"nano-twin/stages/deploy/{m1['model_id']}")
    assert m2["int8_sha256"] == m1["int8_sha256"] and m2["int8_accuracy"] == m1["int8_accuracy"]
    assert m2["profile_id"] == "nano33ble" and m2["flash_budget_bytes"] > m1["flash_budget_bytes"]
    assert {c["name"]: c["budget"] for c in m2["validation"]["checks"]}["flash"] == m2["flash_budget_bytes"]
    assert (out / "nano33ble" / "firmware").is_dir() and (out / "nano33ble" / "deploy" / "model_data.cc").is_file()

    # Resume: running the sweep again redoes nothing and reports the same.
    again = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert again.exit_code == 0 and json.loads(again.output)["boards"] == report["boards"]
    assert json.loads(again.output)["trainings"] == report["trainings"]


def test_sweep_orders_tightest_or_roomiest_first_and_names_the_known_orders(tmp_path):
    import numpy as np

    from tinynas.errors import SearchError
    from tinynas.hardware import load_profile
    from tinynas.pipeline.constraints import CostCheck, space_archs
    from tinynas.pipeline.sweep import ORDERS
    from tinynas.space import get_space

    space = get_space("dscnn", input_shape=(8, 8, 1), num_classes=10)
    profiles = {b: load_profile(b) for b in ("nucleo-h743zi", "nucleo-l412kb", "nano33ble")}
    fits = {b: sum(CostCheck(space=space, profile=p)(a) for a in space_archs(space, np.random.default_rng(0)))
            for b, p in profiles.items()}
    assert fits["nucleo-l412kb"] < fits["nano33ble"] < fits["nucleo-h743zi"], fits
    tight = ORDERS.get("tightest-first")(profiles, space=space, seed=0)
    assert tight == ["nucleo-l412kb", "nano33ble", "nucleo-h743zi"]
    assert ORDERS.get("roomiest-first")(profiles, space=space, seed=0) == ["nucleo-h743zi", "nano33ble", "nucleo-l412kb"]

    with pytest.raises(SearchError, match="tightest-first"):
        ORDERS.get("sideways")
    out = tmp_path / "s"
    result = CliRunner().invoke(cli, ["sweep", "--profiles", "pico,nano33ble", "--dataset", "digits", "--order",
                                      "sideways", "--out", str(out)])
    assert isinstance(result.exception, SearchError) and "known: roomiest-first, tightest-first" in str(result.exception)
    assert not out.exists()
    result = CliRunner().invoke(cli, ["sweep", "--profiles", "pico,nano33ble", "--dataset", "digits", "--strategy",
                                      "sideways", "--out", str(out)])
    assert isinstance(result.exception, SearchError) and "staged" in str(result.exception)
    assert not out.exists(), "a sweep that cannot start writes nothing, so the fixed command can use the same --out"
    # a mistyped board is said before the other boards spend their budgets (it used to fail last, as a board)
    (tmp_path / "broken.toml").write_text("id = 'broken'\n")
    result = CliRunner().invoke(cli, ["sweep", "--profiles", f"nano33ble,esp32-s3,{tmp_path / 'broken.toml'}",
                                      "--dataset", "digits", "--out", str(out)])
    text = str(result.exception)
    assert isinstance(result.exception, SearchError) and "did you mean 'esp32s3-devkitc'" in text, text
    assert "broken.toml" in text and text.endswith("fix --profiles (nothing was run)") and not out.exists()
    # -p repeated, as `run -p` and `estimate -p` take a board, names the same boards as the comma list
    result = CliRunner().invoke(cli, ["sweep", "-p", "nano33ble", "-p", f"esp32-s3,{tmp_path / 'broken.toml'}",
                                      "--dataset", "digits", "--out", str(out)])
    assert isinstance(result.exception, SearchError) and str(result.exception) == text


@pytest.mark.slow
@pytest.mark.parametrize("kind, models", [("mobile", {"model_int8.tflite", "model_fp16.tflite"}),
                                          ("gpu", {"model_fp32.onnx", "model_fp16.onnx"})])
def test_a_sweep_over_phones_or_gpus_deploys_each_board_in_its_own_runtime(tmp_path, kind, models):
    from tinynas.hardware import list_profiles

    out = tmp_path / kind
    args = ["sweep", "--kind", kind, "--dataset", "digits", *TINY, "--final-top-k", "1", "--out", str(out), "--json"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert sorted(b["board"] for b in report["boards"]) == sorted(p.id for p in list_profiles(kind=kind))
    for row in report["boards"]:
        assert row["status"] == "ok", row
        board = out / row["board"]
        assert models <= {p.name for p in (board / "model").iterdir()}
        assert not list(board.rglob("model_data.cc")), "phones and GPUs get no C arrays"
        winner = json.loads((board / "summary.json").read_text())["winner"]
        assert winner["kind"] == kind and set(winner["artifacts"]) == models
        assert all(a["accuracy"] > 0.3 for a in winner["artifacts"].values()), winner["artifacts"]
        # the sweep shows the test accuracy of the model the board runs: a GPU gets no int8 model, its fp32
        # ONNX model's accuracy is shown and named
        primary = "model_int8.tflite" if kind == "mobile" else "model_fp32.onnx"
        assert row["deployed_model"] == primary == winner["deployed_model"]
        assert row["deployed_accuracy"] == winner["artifacts"][primary]["accuracy"]
        cell = f"| {row['deployed_accuracy']:.4f}{'' if kind == 'mobile' else ' (model_fp32.onnx)'} |"
        assert cell in (out / "sweep.md").read_text()
    # The boards share one cache: the second board trains nothing the first already trained.
    assert report["boards"][-1]["trainings"] == 0 and report["trainings"] == report["boards"][0]["trainings"]
