"""A search that runs out of feasible archs before its budget says so and gives the rest to final training.

Issue 11: `tinynas run --space dscnn --budget-minutes 6` on a tight board ended its search after
44 s and 21 candidates, every feasible arch trained, and nothing said so. Here a MAC bound leaves
dscnn a handful of feasible archs on digits and the candidate budget is four times that.
"""

from __future__ import annotations

import itertools
import json

import pytest
from pipeline_helpers import tiny_settings

from tinynas.pipeline.journal import Journal

MAX_MACS = 1000
BUDGET = 12
FLAGS = ["--space", "dscnn", "--max-macs", str(MAX_MACS), "--budget-candidates", str(BUDGET),
         "--search-epochs", "1", "--search-samples", "400", "--final-epochs", "2", "--final-top-k", "1",
         "--prefilter-candidates", "12", "--no-progress"]


def _feasible_ids() -> set[str]:
    """The dscnn archs that fit nano33ble under the MAC bound, counted here without the strategy."""
    from tinynas.hardware import load_profile
    from tinynas.pipeline.constraints import CostCheck
    from tinynas.space import get_space

    space = get_space("dscnn", input_shape=(8, 8, 1), num_classes=10)
    check = CostCheck(space=space, profile=load_profile("nano33ble").with_budgets(max_macs=MAX_MACS))
    archs = (space.decode(i) for i in itertools.product(*(range(len(d.options)) for d in space.decisions())))
    return {a.id for a in archs if space.contains(a) and check(a)}


@pytest.mark.slow
def test_an_exhausted_search_says_so_and_trains_the_finalists_longer(tmp_path, digits):
    from click.testing import CliRunner

    from tinynas.cli.main import cli
    from tinynas.pipeline.run import run

    feasible = _feasible_ids()
    assert 1 < len(feasible) < BUDGET // 2  # a tiny feasible set, a budget far larger than it
    out = tmp_path / "run"
    # The same run as the command below, interrupted right after the last feasible arch was trained.
    settings = tiny_settings(space="dscnn", max_macs=MAX_MACS, budget_candidates=BUDGET, search_samples=400,
                             final_epochs=2, final_top_k=1, prefilter_candidates=12, prefilter_keep=8)
    seen = []

    def stop_after_the_last_feasible(entry):
        seen.append(entry["id"])
        if len(seen) == len(feasible):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(settings=settings, out=out, dataset=digits, on_candidate=stop_after_the_last_feasible)

    # Resumed through the CLI: nothing is trained again, the search notices it has tried everything.
    result = CliRunner().invoke(cli, ["run", "--profile", "nano33ble", "--dataset", "digits", *FLAGS,
                                      "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "exhausted" in result.output and f"all {len(feasible)} feasible archs" in result.output

    journal = Journal(out / "journal.jsonl")
    searched = journal.candidates(stage="search")
    assert {e["id"] for e in searched} == feasible and len(searched) == len(feasible)  # each trained once
    summary = json.loads((out / "summary.json").read_text())
    stop = summary["search_stop"]
    assert stop["reason"] == "exhausted" and stop["exhausted"] is True
    assert stop["feasible_archs"] == len(feasible) and stop["evaluated"] == len(feasible)
    assert stop["budget_left"]["candidates"] == BUDGET - len(feasible)
    events = [e for e in journal.events(stage="search") if e["event"] == "exhausted"]
    assert len(events) == 1 and events[0]["feasible_archs"] == len(feasible)

    # The unused candidates went to the final training: more epochs than planned, and really trained.
    final = summary["final_training"]
    assert final["planned_epochs"] == 2 and 2 < final["epochs"] <= 4 and final["extension"]["reason"] == "exhausted"
    finals = journal.candidates(stage="final")
    assert len(finals) == 1 and finals[0]["epochs"] == final["epochs"] == finals[0]["epochs_run"]
    assert [e["event"] for e in journal.events(stage="final")].count("extended") == 1
    report = (out / "report.md").read_text()
    assert "Feasible space exhausted" in report and f"all {len(feasible)} feasible archs" in report
    assert f"{final['epochs']} epochs per candidate instead of 2" in report
    assert summary["winner"]["fits"] is True and (out / "model" / "model_int8.tflite").is_file()

    # Once more: every stage is done, nothing is trained.
    again = CliRunner().invoke(cli, ["run", "--profile", "nano33ble", "--dataset", "digits", *FLAGS,
                                     "--out", str(out)], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert len(Journal(out / "journal.jsonl").candidates()) == len(feasible) + 1


def _context(tmp_path, digits, **changes):
    from tinynas.pipeline.rundir import RunDir
    from tinynas.pipeline.settings import config_for, resolve
    from tinynas.pipeline.stages import StageContext

    resolved = resolve(tiny_settings(**changes), dataset=digits)
    rd = RunDir.open(tmp_path / "run", config=config_for(resolved))
    return StageContext(run=rd, resolved=resolved, check=None, evaluator=None)


def _search_done(ctx, *, reason, candidates=None, seconds=None, trained=2, train_seconds=1.0):
    for i in range(trained):
        ctx.run.journal.append({"type": "candidate", "stage": "search", "id": f"a{i}", "cached": False,
                                "train_seconds": train_seconds, "accuracy": 0.5})
    ctx.run.mark_done("search", {"stop": {"reason": reason, "budget_left": {"candidates": candidates,
                                                                             "seconds": seconds}}})


def test_unused_minutes_become_final_epochs_at_the_rate_the_search_trained(tmp_path, digits):
    from tinynas.pipeline.stages import final_budget

    ctx = _context(tmp_path, digits, budget_candidates=None, budget_minutes=2.0, final_epochs=10)
    _search_done(ctx, reason="exhausted", seconds=60.0)  # two trainings of 1 epoch x 200 samples, 1 s each
    n_train = len(digits.x_train)
    budget, extension = final_budget(ctx, n_final=2)
    # 400 sample-epochs in 2 s: 60 s buy 12,000 sample-epochs, over 2 finalists of n_train samples each
    assert extension["extra_epochs"] == 12_000 // (2 * n_train) >= 1
    assert budget.epochs == 10 + extension["extra_epochs"] and extension["planned_epochs"] == 10
    ctx.run.close()


def test_the_extension_is_bounded_and_absent_when_the_budget_ended_the_search(tmp_path, digits):
    from tinynas.pipeline.stages import MAX_FINAL_SCALE, final_budget

    ctx = _context(tmp_path, digits, budget_candidates=500, final_epochs=3)
    _search_done(ctx, reason="finished", candidates=480)  # far more work left than the final stage can use
    budget, extension = final_budget(ctx, n_final=1)
    assert budget.epochs == 3 * MAX_FINAL_SCALE and extension["reason"] == "finished"
    ctx.run.close()
    other = _context(tmp_path / "b", digits, final_epochs=3)
    _search_done(other, reason="budget", candidates=0)
    assert final_budget(other, n_final=1) == (other.settings.final_budget(train_samples=other.train_samples), None)
    other.run.close()


@pytest.mark.parametrize("reason, feasible, says", [
    ("exhausted", 5, "all 5 feasible archs of space 'dscnn' on b"),
    ("exhausted", None, "all 7 distinct feasible archs the strategy could propose were trained"),
    ("stalled", 40, "proposed only archs already trained 200 times in a row: all 7 distinct feasible archs the "
                    "strategy could propose were trained; 40 feasible archs exist"),
    ("finished", 40, "finished on its own (a local optimum) after 7 candidates; 40 feasible archs exist"),
])
def test_the_stop_message_says_what_was_trained_of_what_exists(reason, feasible, says):
    from tinynas.pipeline.stages import _stop_message

    stop = {"reason": reason, "feasible_archs": feasible, "evaluated": 7 if feasible != 5 else 5,
            "budget_left": {"candidates": 5, "seconds": 90.0}, "unused_fraction": 0.25}
    message = _stop_message(stop, strategy="s", space="dscnn", board="b", note="a local optimum")
    assert says in message and "5 candidates / 1.5 min of the budget left (25 % unused)" in message
