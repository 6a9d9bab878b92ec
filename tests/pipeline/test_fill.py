"""ofa's ``fill_budget``: the final that fits the seconds the search left (tinynas.pipeline.fill)."""

from __future__ import annotations

import pytest

from tinynas.pipeline.fill import MAX_FILL_SCALE, FillPlan, plan_fill, seconds_left
from tinynas.pipeline.journal import Journal


def test_spare_minutes_go_to_more_epochs_and_more_candidates_within_the_seconds():
    # nucleo-l010rb on glyphs: 574 s left, the best candidate took 26 s at the planned 10 epochs
    plan = plan_fill(seconds=574, probe_seconds=26, planned_epochs=10, planned_top_k=2, available=20)
    assert plan.epochs == 30 and plan.top_k == 7 and not plan.probe_counts
    assert plan.probe_seconds + plan.top_k * 26 * 3 <= 574  # the estimate fits what was left
    # a roomy board's larger subnets: three times the probe, fewer and shorter trainings
    roomy = plan_fill(seconds=574, probe_seconds=78, planned_epochs=10, planned_top_k=2, available=20)
    assert (roomy.epochs, roomy.top_k) == (20, 3)


def test_little_time_left_keeps_the_planned_final_and_the_probe_counts_at_the_planned_epochs():
    plan = plan_fill(seconds=40, probe_seconds=26, planned_epochs=10, planned_top_k=2, available=20)
    assert (plan.epochs, plan.top_k, plan.probe_counts) == (10, 2, True)
    nothing = plan_fill(seconds=0, probe_seconds=26, planned_epochs=10, planned_top_k=3, available=20)
    assert (nothing.epochs, nothing.top_k) == (10, 3)
    # at the planned epochs the probe is one of the trainings: 60 s hold it and one more
    two = plan_fill(seconds=60, probe_seconds=25, planned_epochs=10, planned_top_k=1, available=20)
    assert (two.epochs, two.top_k, two.probe_counts) == (10, 2, True)
    # twice the spare time: one candidate at twice the epochs (the square root of 4 each way, rounded down)
    one = plan_fill(seconds=100, probe_seconds=25, planned_epochs=10, planned_top_k=1, available=20)
    assert (one.epochs, one.top_k, one.probe_counts) == (20, 1, False)


def test_the_scale_and_the_top_are_capped():
    plan = plan_fill(seconds=10_000, probe_seconds=1, planned_epochs=5, planned_top_k=2, available=6)
    assert plan.epochs == 5 * MAX_FILL_SCALE and plan.top_k == 6
    few = plan_fill(seconds=10_000, probe_seconds=1, planned_epochs=5, planned_top_k=3, available=2)
    assert few.top_k == 2
    assert FillPlan.from_json(plan.to_json()) == plan


def test_seconds_left_subtracts_every_verify_session_and_is_none_without_a_time_budget(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    for event, t in [("start", 100.0), ("interrupted", 130.0), ("start", 500.0), ("done", 510.0)]:
        journal.append({"type": "stage", "stage": "verify", "event": event, "time": t})
    journal.append({"type": "stage", "stage": "search", "event": "done", "time": 90.0})
    stop = {"stop": {"reason": "budget", "budget_left": {"candidates": 0, "seconds": 300.0}}}
    assert seconds_left(journal, stop) == pytest.approx(260.0)
    assert seconds_left(journal, {"stop": {"budget_left": {"candidates": 0, "seconds": 20.0}}}) == 0.0
    assert seconds_left(journal, {"stop": {"budget_left": {"candidates": 0}}}) is None
    assert seconds_left(journal, None) is None

