"""`tinynas run --strategy ofa` end to end on a digits slice: exit codes, the supernet stage, inherited
accuracy in the journal, a second run reusing the cached supernet, and the refusals."""

from __future__ import annotations

import json
import sys

import pytest

from tinynas.pipeline.stages import rank_key

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


def test_a_reuse_says_the_whole_seconds_the_training_run_said():
    """The training run's done.json rounds its seconds to 0.1 s, the cache keeps each phase's exact seconds:
    7.46 s read "trained in 8 s" there and "saved its 7 s" in the run that reused it (a CI run failed on it)."""
    from tinynas.pipeline.report import supernet_text

    phases = {"full": 3.46, "kernel": 4.0}  # as the cache's checkpoint.json keeps them
    trained = supernet_text({"reused": False, "key": "k", "seconds": round(sum(phases.values()), 1),
                             "phase_seconds": {k: round(v, 1) for k, v in phases.items()}})
    reused = supernet_text({"reused": True, "key": "k", "cached_training": {"phase_seconds": phases}})
    assert trained.startswith("trained in 8 s (full 4, kernel 4 s)") and "which saved its 8 s of training" in reused


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
    key = done["directory"].rsplit("/", 1)[-1]
    trained = f"trained in {done['seconds']:.0f} s (full "
    assert f"supernet   {trained}" in cap.out and f"cached as {key}" in cap.out, cap.out
    report = (first / "report.md").read_text()
    epochs = "/".join(map(str, done["schedule"]["epochs"]))
    assert f"Once-for-all supernet: {trained}" in report and f"epochs per phase {epochs}." in report
    assert "Once-for-all supernet: trained in" in (first / "report.html").read_text()

    second = tmp_path / "b"
    code, cap = _run(monkeypatch, capsys, "--profile", "nucleo-l432kc", "--dataset", "digits", "--space", "mcunet",
                     "--strategy", "ofa", *FLAGS, "--cache-dir", str(cache), "--out", str(second),
                     command="search")
    assert code == 0, cap.err[-3000:]
    again = json.loads((second / "stages" / "supernet" / "done.json").read_text())
    assert again["reused"] is True and again["directory"] == done["directory"] and not again["phase_seconds"]
    saved = f"reused from the cache ({key}), which saved its {done['seconds']:.0f} s of training"
    assert f"supernet   {saved}" in cap.out and saved in (second / "report.md").read_text(), cap.out

    third = tmp_path / "c"  # readers_phase is another supernet: trained anew, ending with the readers phase
    code, cap = _run(monkeypatch, capsys, "--profile", "nucleo-l432kc", "--dataset", "digits", "--space", "mcunet",
                     "--strategy", "ofa", *[f for f in FLAGS if f != "--no-progress"], "--strategy-option",
                     "readers_phase=true", "--cache-dir", str(cache), "--out", str(third), command="search")
    assert code == 0, cap.err[-3000:]
    # with progress on, a bar counts the supernet's epochs, readers phase included (2 + 1 + 1 + 1 + 1 + 1)
    assert "supernet: 100%" in cap.err and "7/7" in cap.err and "readers 1/1" in cap.err, cap.err[-3000:]
    readers = json.loads((third / "stages" / "supernet" / "done.json").read_text())
    assert readers["reused"] is False and readers["directory"] != done["directory"]
    assert list(readers["phase_seconds"]) == ["full", "kernel", "depth", "expand", "width", "readers"]
    assert readers["schedule"]["reader_sampling"] == "round_robin" and readers["schedule"]["reader_epochs"] == 1


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
    assert code == 1 and "smallest" in cap.err and "macs" in cap.err and "vs budget 1,000" in cap.err, cap.err
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
    trainer = next(b for b, d in done.items() if not d["reused"])
    key = done[trainer]["directory"].rsplit("/", 1)[-1]
    assert (f"Once-for-all supernet {key}: trained by {trainer} ({done[trainer]['seconds']:.0f} s), "
            "reused by 1 board") in (out / "sweep.md").read_text()
    for board in done:  # no board is told another's subnets: each spends its whole budget on its own search
        search = [e for e in _journal(out / board) if e.get("stage") == "search" and "arch" in e]
        assert len(search) == 3 and not any(e.get("shared_from") for e in search), board


@pytest.mark.slow
def test_a_search_by_the_accuracy_predictor_scores_the_pairs_once_per_supernet(tmp_path, monkeypatch, capsys):
    from tinynas.ofa import pipeline

    cache, first = tmp_path / "cache", tmp_path / "a"
    by_predictor = [*FLAGS, "--strategy-option", "score=predictor", "--strategy-option", "predictor_samples=12",
                    "--cache-dir", str(cache)]
    code, cap = _run(monkeypatch, capsys, "--profile", "nano33ble", "--dataset", "digits", "--space", "mcunet",
                     "--strategy", "ofa", *by_predictor, "--out", str(first), command="search")
    assert code == 0, cap.err[-3000:]
    done = json.loads((first / "stages" / "supernet" / "done.json").read_text())["predictor"]
    assert done["scored"] == 12 and done["reused"] == 0 and done["n_train"] + done["n_held_out"] == 12
    assert -1.0 <= done["kendall_tau"] <= 1.0 and done["mae"] >= 0.0
    pairs = json.loads(open(done["pairs_file"]).read())["pairs"]
    assert len(pairs) == 12 and all(0.0 <= p["accuracy"] <= 1.0 for p in pairs)
    lines = _journal(first)
    search = [e for e in lines if e.get("stage") == "search" and "arch" in e]
    assert len(search) == 3 and all(e["predicted"] and not e["inherited"] and e["accuracy"] is not None
                                    for e in search)
    verify = [e for e in lines if e.get("stage") == "verify" and "arch" in e]
    assert sorted(e["id"] for e in verify) == sorted(e["id"] for e in search)  # verify_top 20 > the 3 searched
    assert all(e["inherited"] and e["predicted_accuracy"] == next(s["accuracy"] for s in search if s["id"] == e["id"])
               for e in verify)
    stage = json.loads((first / "stages" / "verify" / "done.json").read_text())
    best = min(verify, key=rank_key)  # most accurate; a tie (0.1115 twice after one step per phase) by loss
    assert stage["verified"] == 3 and stage["best_id"] == best["id"]
    final = [e for e in lines if e.get("stage") == "final" and "arch" in e]
    assert [e["id"] for e in final] == [best["id"]]  # the final takes the measured best, not the predicted one
    assert final[0]["inherited_accuracy"] == pytest.approx(best["accuracy"])
    report = (first / "report.md").read_text()
    assert "accuracy predictor, fitted on 12 subnets" in report and "The 3 best predicted were measured" in report
    summary = json.loads((first / "summary.json").read_text())  # the final fine-tune is the only training
    assert (summary["trainings"], summary["subnets_scored"], summary["subnets_predicted"]) == (1, 6, 3)
    assert "1 trainings, 6 subnets scored on the supernet (3 of them by the accuracy predictor)" in report

    monkeypatch.setattr(pipeline, "_PREDICTORS", {})  # a later process: the pairs come from the file
    second = tmp_path / "b"
    code, cap = _run(monkeypatch, capsys, "--profile", "nucleo-l432kc", "--dataset", "digits", "--space", "mcunet",
                     "--strategy", "ofa", *by_predictor, "--out", str(second), command="search")
    assert code == 0, cap.err[-3000:]
    again = json.loads((second / "stages" / "supernet" / "done.json").read_text())["predictor"]
    assert again["reused"] == 12 and again["scored"] == 0 and again["pairs_file"] == done["pairs_file"]
    assert again["mae"] == done["mae"]  # the same pairs and seed fit the same predictor


@pytest.mark.parametrize("options, message", [
    (["score=oracle"], "ofa score must be one of ['inherited', 'predictor']"),
    (["score=predictor", "predictor_samples=5"], "predictor_samples must be at least 10"),
    (["score=predictor", "verify_top=0"], "verify_top must be at least 1"),
    (["score=predictor", "verify_rounds=0"], "verify_rounds must be at least 1"),
    (["fill_budget=1"], "fill_budget must be true or false"),
    (["readers_phase=yes"], "readers_phase must be true or false"),
])
def test_bad_predictor_options_are_refused_before_anything_is_written(tmp_path, monkeypatch, capsys, options, message):
    out = tmp_path / "run"
    flags = [x for option in options for x in ("--strategy-option", option)]
    code, cap = _run(monkeypatch, capsys, "--profile", "nano33ble", "--dataset", "digits", "--space", "mcunet",
                     "--strategy", "ofa", *FLAGS, *flags, "--out", str(out))
    assert code == 1 and message in cap.err, cap.err
    assert "Traceback" not in cap.err and not out.exists()


def test_a_predictor_search_with_only_a_time_budget_is_refused(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    flags = [f for f in FLAGS if f not in ("--budget-candidates", "3")]
    code, cap = _run(monkeypatch, capsys, "--profile", "nano33ble", "--dataset", "digits", "--space", "mcunet",
                     "--strategy", "ofa", *flags, "--budget-minutes", "1", "--strategy-option", "score=predictor",
                     "--out", str(out))
    assert code == 1 and "give --budget-candidates N as well" in cap.err, cap.err
    assert "Traceback" not in cap.err and not out.exists()


@pytest.mark.slow
def test_a_crash_between_state_saves_resumes_from_the_journal_without_scoring_twice(tmp_path):
    """The search saves its strategy state every couple of seconds, not after each predicted subnet: a crash
    in between leaves journaled subnets the saved state has not heard of, and the rerun tells it them."""
    from tinynas.pipeline.journal import Journal
    from tinynas.pipeline.run import search
    from tinynas.pipeline.settings import RunSettings

    settings = RunSettings(profile="nano33ble", dataset="digits", space="mcunet", strategy="ofa",
                           budget_candidates=40, search_epochs=1, search_samples=64, final_epochs=1, final_top_k=1,
                           max_macs=200_000, cache_dir=str(tmp_path / "cache"),
                           strategy_options={"steps_per_phase": 1, "supernet_samples": 64, "score": "predictor",
                                             "predictor_samples": 12})
    out, seen = tmp_path / "run", []

    def crash_at_30(entry):
        seen.append(entry["id"])
        if len(seen) == 30:
            raise RuntimeError("the machine went away")

    with pytest.raises(RuntimeError, match="went away"):
        search(settings=settings, out=out, on_candidate=crash_at_30)
    state = json.loads((out / "stages" / "search" / "strategy_state.json").read_text())
    assert len(state["strategy"]["history"]) < 30  # saved before the crash, not after every subnet

    search(settings=settings, out=out)
    ids = [e["id"] for e in Journal(out / "journal.jsonl").candidates(stage="search")]
    assert ids[:30] == seen and len(ids) == 40 and len(set(ids)) == 40


@pytest.mark.slow
def test_verify_rounds_refit_the_predictor_and_a_killed_stage_picks_the_same_subnets_again(tmp_path, monkeypatch):
    """Round 1 measures the search's best predicted; later rounds re-rank by the predictor refitted with what
    was measured. The refit is deterministic, so a stage killed in round 3 replays rounds 1-2 from the journal
    and measures only round 3's subnets."""
    from tinynas.ofa import pipeline
    from tinynas.pipeline.journal import Journal
    from tinynas.pipeline.run import search
    from tinynas.pipeline.settings import RunSettings

    settings = RunSettings(profile="nano33ble", dataset="digits", space="mcunet", strategy="ofa",
                           budget_candidates=12, search_epochs=1, search_samples=64, final_epochs=1, final_top_k=1,
                           max_macs=200_000, cache_dir=str(tmp_path / "cache"),
                           strategy_options={"steps_per_phase": 1, "supernet_samples": 64, "score": "predictor",
                                             "predictor_samples": 12, "verify_top": 6, "verify_rounds": 3})
    out, refits = tmp_path / "run", []
    real = pipeline.anchored_predictor

    def killed_before_round_3(ctx, anchors):
        refits.append([a.id for a, _ in anchors])
        if len(refits) == 2:
            raise RuntimeError("the machine went away")
        return real(ctx, anchors)

    monkeypatch.setattr(pipeline, "anchored_predictor", killed_before_round_3)
    with pytest.raises(RuntimeError, match="went away"):
        search(settings=settings, out=out)
    journal = Journal(out / "journal.jsonl")
    before = [(e["id"], e["round"]) for e in journal.candidates(stage="verify")]
    assert [r for _, r in before] == [1, 1, 2, 2] and refits[1] == [i for i, _ in before]
    assert not (out / "stages" / "verify" / "done.json").exists()
    searched = sorted(journal.candidates(stage="search"), key=lambda e: -e["accuracy"])
    assert [i for i, _ in before[:2]] == [e["id"] for e in searched[:2]]  # round 1: the search's best predicted

    monkeypatch.setattr(pipeline, "anchored_predictor", real)
    search(settings=settings, out=out)
    verify = journal.candidates(stage="verify")
    assert [(e["id"], e["round"]) for e in verify[:4]] == before  # rounds 1-2 replayed, nothing measured twice
    assert [e["round"] for e in verify] == [1, 1, 2, 2, 3, 3] and len({e["id"] for e in verify}) == 6
    refitted = [e for e in verify if e["round"] > 1]
    by_search = {e["id"]: e["accuracy"] for e in searched}
    assert any(e["predicted_accuracy"] != pytest.approx(by_search[e["id"]]) for e in refitted)
    done = json.loads((out / "stages" / "verify" / "done.json").read_text())
    best = min(verify, key=rank_key)  # most accurate; a tie (0.1115 twice after one step per phase) by loss
    assert done["verified"] == 6 and done["rounds"] == 3 and done["best_id"] == best["id"]
    assert done["best_round"] == best["round"]
    final = [e for e in journal.candidates(stage="final")]
    assert [e["id"] for e in final] == [best["id"]]


@pytest.mark.slow
def test_fill_budget_times_the_best_then_trains_the_top_that_fits_and_a_resumed_final_keeps_its_plan(tmp_path):
    """With ``fill_budget`` the final stage trains the best subnet at the planned epochs, times it, and plans
    the top and epochs for the seconds the search left; the plan is journaled, so a final killed midway trains
    the same top at the same epochs and nothing twice."""
    from tinynas.pipeline.fill import plan_fill
    from tinynas.pipeline.journal import Journal
    from tinynas.pipeline.run import search
    from tinynas.pipeline.settings import RunSettings
    from tinynas.pipeline.stages import top_candidates

    settings = RunSettings(profile="nano33ble", dataset="digits", space="mcunet", strategy="ofa",
                           budget_candidates=4, budget_minutes=2, search_epochs=1, search_samples=64,
                           final_epochs=1, final_top_k=2, max_macs=200_000, cache_dir=str(tmp_path / "cache"),
                           strategy_options={"steps_per_phase": 1, "supernet_samples": 64, "fill_budget": True})
    out, finals = tmp_path / "run", []

    def killed_after_the_first_planned_training(entry):
        if entry.get("stage") == "final":
            finals.append(entry)
            if len(finals) == 2:
                raise RuntimeError("the machine went away")

    with pytest.raises(RuntimeError, match="went away"):
        search(settings=settings, out=out, on_candidate=killed_after_the_first_planned_training)
    assert not (out / "stages" / "final" / "done.json").exists()
    journal = Journal(out / "journal.jsonl")
    plans = [e for e in journal.events(stage="final") if e.get("event") == "filled"]
    assert len(plans) == 1
    plan = plans[0]["plan"]
    searched = top_candidates(journal.candidates(stage="search"), 4)  # best first (rank_key)
    probe = journal.candidates(stage="final")[0]
    assert probe["id"] == searched[0]["id"] and probe["epochs"] == 1  # the best, at the planned epochs
    assert plan["probe_seconds"] == pytest.approx(probe["train_seconds"], abs=1e-3)
    search_done = json.loads((out / "stages" / "search" / "done.json").read_text())
    assert 0 < plan["seconds"] <= search_done["stop"]["budget_left"]["seconds"]
    assert plan_fill(seconds=plan["seconds"], probe_seconds=plan["probe_seconds"], planned_epochs=1,
                     planned_top_k=2, available=len(searched)).to_json() == plan
    assert plan["top_k"] >= 2 and plan["epochs"] in (1, 2, 3)

    search(settings=settings, out=out)
    assert len([e for e in journal.events(stage="final") if e.get("event") == "filled"]) == 1
    final = journal.candidates(stage="final")
    filled = [e for e in final if e["epochs"] == plan["epochs"]]
    assert [e["id"] for e in filled] == [e["id"] for e in searched[:plan["top_k"]]]
    assert len(final) == plan["top_k"] + (0 if plan["probe_counts"] else 1)  # nothing trained twice
    done = json.loads((out / "stages" / "final" / "done.json").read_text())
    assert done["fill"] == plan and done["budget"]["epochs"] == plan["epochs"]
    assert set(done["ranked"]) == {e["id"] for e in filled}
    winner = json.loads((out / "stages" / "winner" / "done.json").read_text())
    assert winner["id"] == done["ranked"][0]
    from tinynas.pipeline.report import render_markdown, summarize

    summary = summarize(out)
    assert summary["final_training"]["fill"] == plan
    assert f"Final training: top {plan['top_k']} x {plan['epochs']} epochs to fill the" in render_markdown(summary)
