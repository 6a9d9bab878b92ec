"""Resume: a run interrupted after K candidates, or killed outright, continues where it stopped and
never trains a candidate twice (real training on digits, a tiny budget)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from pipeline_helpers import TINY, tiny_settings

from tinynas.pipeline.journal import Journal
from tinynas.pipeline.run import search


def _search_candidates(out):
    return Journal(out / "journal.jsonl").candidates(stage="search")


@pytest.mark.slow
def test_interrupted_search_resumes_without_training_twice(tmp_path, digits):
    out = tmp_path / "run"
    settings = tiny_settings(budget_candidates=4, final_top_k=1, final_epochs=1)
    seen = []

    def interrupt_after_two(entry):
        seen.append(entry["id"])
        if len(seen) == 2:
            raise KeyboardInterrupt  # what Ctrl-C does between two candidates

    with pytest.raises(KeyboardInterrupt):
        search(settings=settings, out=out, dataset=digits, on_candidate=interrupt_after_two)
    assert len(_search_candidates(out)) == 2
    state = json.loads((out / "stages" / "search" / "strategy_state.json").read_text())
    assert len(state["strategy"]["history"]) == 2  # the strategy state was saved at the interrupt
    assert not (out / ".lock").exists()  # and the directory released
    assert not (out / "stages" / "search" / "done.json").exists()
    interrupted_wall = json.loads((out / "summary.json").read_text())["wall_seconds"]
    assert interrupted_wall > 0  # the interrupted session's time counts (it once said "wall 0 s")
    assert "2 trainings, search not finished, wall" in (out / "report.md").read_text()  # not "search - s"

    result = search(settings=settings, out=out, dataset=digits)
    assert result.summary["wall_seconds"] > interrupted_wall  # both sessions add up
    entries = _search_candidates(out)
    ids = [e["id"] for e in entries]
    assert len(ids) == 4 and len(set(ids)) == 4, ids  # the budget, each candidate once
    assert ids[:2] == seen  # the first two were not redone
    assert sum(1 for e in entries if not e["cached"]) == 4  # trainings == budget
    events = Counter((e["stage"], e["event"]) for e in Journal(out / "journal.jsonl").events())
    assert events[("prefilter", "start")] == 1 and events[("prefilter", "done")] == 1  # finished stage skipped
    assert events[("search", "interrupted")] == 1 and events[("search", "done")] == 1
    assert result.summary["candidates_evaluated"] == 4 and result.summary["winner"]["id"] in ids

    # A third call finds every stage done: nothing is trained, the same winner comes back.
    again = search(settings=settings, out=out, dataset=digits)
    assert again.summary["winner"] == result.summary["winner"]
    assert len(Journal(out / "journal.jsonl").candidates()) == len(entries) + 1  # + the one final training


@pytest.mark.slow
def test_killed_process_group_resumes_with_two_workers(tmp_path):
    """SIGKILL the whole `tinynas search --workers 2` (parent and pool) mid-search, then run it again."""
    out = tmp_path / "run"
    args = [sys.executable, "-c", "from tinynas.cli.main import main; main()", "search", "--profile", "nano33ble",
            "--dataset", "digits", "--strategy", "random", *TINY, "--budget-candidates", "4", "--final-top-k", "1",
            "--workers", "2", "--out", str(out)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "journal.jsonl").is_file() and len(_search_candidates(out)) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the search ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = [e["id"] for e in _search_candidates(out)]
    assert 2 <= len(before) < 4 and (out / ".lock").exists()  # killed: the lock is left behind, stale

    # Resume in one process (workers may change between invocations; it saves a pool start here).
    rerun = [a if a != "2" or args[i - 1] != "--workers" else "1" for i, a in enumerate(args)]
    done = subprocess.run(rerun, capture_output=True, text=True, env=env, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    entries = _search_candidates(out)
    ids = [e["id"] for e in entries]
    assert ids[:len(before)] == before and len(ids) == 4 and len(set(ids)) == 4
    # Each candidate journaled once; only one in flight at the kill (2 workers) can have reached the cache
    # before the kill, and then it is a cache hit, not a second training.
    assert sum(1 for e in entries if e["cached"]) <= 2
    first = [e for e in entries if e["id"] in before]
    pids = {e["worker"] for e in first}
    assert None not in pids and proc.pid not in pids  # trained in the pool's worker processes, not the parent


@pytest.mark.slow
def test_time_budget_stops_the_search(tmp_path, digits):
    """A budget in minutes (here 0.06 s) still buys one candidate and then stops submitting."""
    out = tmp_path / "run"
    settings = tiny_settings(strategy="random", budget_candidates=None, budget_minutes=0.001, final_top_k=1,
                             final_epochs=1)
    result = search(settings=settings, out=out, dataset=digits)
    assert len(_search_candidates(out)) == 1 and result.summary["candidates_evaluated"] == 1
    assert result.summary["winner"]["id"] == _search_candidates(out)[0]["id"]
