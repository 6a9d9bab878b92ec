"""`tinynas run --strategy staged --refine darts|drnas|rdarts`: the refine stage between evolution and final
training (tinynas/pipeline/refine.py): which blocks it mixes, its refusals before anything is written, and a
real tiny run on digits whose derived arch is journaled (fidelity "supernet") and resumes without retraining.
The run whose top candidates agree is in test_refine_neighbourhood_run.py.
"""

from __future__ import annotations

import json
import shutil

import pytest
from pipeline_helpers import run_cli

from tinynas.cost import estimate
from tinynas.darts import relax
from tinynas.darts.layerwise import SKIP
from tinynas.errors import CostError, SearchError
from tinynas.pipeline.refine import block_choices, check_refine, mixed_blocks, neighbour_blocks
from tinynas.pipeline.rundir import loads_config
from tinynas.pipeline.settings import RunSettings, settings_from_config
from tinynas.pipeline.stages import stage_plan
from tinynas.space import get_space
from tinynas.space.arch import Arch

# --no-qat: as in run_matrix_helpers.FLAGS (QAT would fine-tune the 1-epoch models for most of the test)
FLAGS = ["--budget-candidates", "3", "--search-epochs", "1", "--search-samples", "64", "--final-epochs", "1",
         "--final-top-k", "2", "--prefilter-candidates", "6", "--no-progress", "--max-macs", "200k", "--no-qat"]


def _arch(space, **blocks: tuple[int, int]) -> Arch:
    """An mcunet arch with stage 2 of depth 2 (and whatever else the sample fixed), blocks set as given."""
    import numpy as np

    values = dict(space.canonical(space.sample(np.random.default_rng(0))).decisions)
    values.update({f"s{s}_depth": 0 for s in range(1, 6)}, s2_depth=2)
    for name, (k, e) in blocks.items():
        values[f"{name}_kernel"], values[f"{name}_expand"] = k, e
    return space.canonical(Arch.from_dict("mcunet", values))


def test_mixes_only_the_blocks_where_the_top_candidates_disagree():
    space = get_space("mcunet", input_shape=(8, 8, 1), num_classes=10)
    base = _arch(space, s2_b1=(3, 3), s2_b2=(5, 4))
    other = _arch(space, s2_b1=(3, 3), s2_b2=(7, 6))
    assert block_choices(base, [base, other], space=space)["s2_b2"] == {(5, 4), (7, 6)}
    names, options = mixed_blocks(base, [base, other], space=space, max_blocks=4)
    assert names == ["s2_b2"] and options == [(5, 4), (7, 6)]
    plan = relax(space, base, options=options, blocks=names)
    assert plan.shape == (1, 2) and plan.derive([[0.2, 0.8]])["s2_b2_kernel"] == 7
    assert plan.derive([[0.2, 0.8]])["s2_b1_kernel"] == 3  # the agreed block keeps the base's choice
    assert mixed_blocks(base, [base, base], space=space, max_blocks=4) == ([], [])
    with pytest.raises(SearchError, match="not among the mixed options"):
        relax(space, base, options=[(7, 6), (3, 4)], blocks=["s2_b2"])


def test_agreeing_top_candidates_mix_the_best_arch_around_its_own_choices():
    space = get_space("mcunet", input_shape=(8, 8, 1), num_classes=10)
    base = _arch(space, s2_b1=(3, 3), s2_b2=(5, 4))
    assert mixed_blocks(base, [base, base], space=space, max_blocks=4) == ([], [])  # nothing to mix by disagreement
    # a latency that grows with s2_b2's kernel only: that block ranks first under a one-block cap
    names, options = neighbour_blocks(base, space=space, max_blocks=1, latency=lambda a: a["s2_b2_kernel"])
    assert names == ["s2_b2"] and options == [(k, e) for k in (3, 5, 7) for e in (3, 4, 6)] + [SKIP]
    names, options = neighbour_blocks(base, space=space, max_blocks=1, latency=lambda a: a["s2_b1_expand"])
    # one step around (3, 3), and no skip: a stage's first block cannot be left out
    assert names == ["s2_b1"] and options == [(3, 3), (3, 4), (5, 3), (5, 4)]
    names, options = neighbour_blocks(base, space=space, max_blocks=4, latency=lambda a: 0.0)
    assert names == ["s2_b1", "s2_b2"] and (3, 3) in options and (5, 4) in options and options[-1] == SKIP
    plan = relax(space, base, options=options, blocks=names)  # the plan can express the base
    assert plan.derive(plan.one_hot(base)) == base


def test_a_top_candidate_with_a_shallower_stage_puts_skip_among_the_options():
    space = get_space("mcunet", input_shape=(8, 8, 1), num_classes=10)
    base = _arch(space, s2_b1=(3, 3), s2_b2=(5, 4))
    shallow = space.canonical(base.replace(s2_depth=1))
    names, options = mixed_blocks(base, [base, shallow], space=space, max_blocks=4)
    assert names == ["s2_b2"] and options == [(5, 4), SKIP]
    plan = relax(space, base, options=options, blocks=names)
    assert plan.derive([[0.3, 0.7]]) == shallow and plan.derive([[0.7, 0.3]]) == base


def test_dscnn_mixes_the_stem_kernel_and_the_blocks_a_top_candidate_lacks():
    space = get_space("dscnn", input_shape=(8, 8, 1), num_classes=10)
    base = Arch.from_dict("dscnn", {"blocks": 4, "channels": 16, "stem_kernel": "3x3", "stem_stride": "2x2"})
    fewer = base.replace(blocks=2, stem_kernel="5x5")
    other_stride = base.replace(stem_kernel="7x7", stem_stride="1x1")  # 7x7 is a kernel the base's stride allows
    names, options = mixed_blocks(base, [base, fewer, other_stride], space=space, max_blocks=4)
    assert names == ["b3", "b4", "stem"] and options == [("3x3",), ("5x5",), ("7x7",), ("block",), SKIP]
    plan = relax(space, base, options=options, blocks=names)
    assert plan.derive(plan.one_hot(fewer)) == fewer and plan.derive(plan.one_hot(base)) == base
    # they agree: the neighbourhood mixes the stem (3x3 -> 5x5 moves latency) and keeps or skips the blocks
    names, options = neighbour_blocks(base, space=space, max_blocks=4,
                                      latency=lambda a: estimate(space.graph(a)).macs)
    assert names == ["b2", "b3", "b4", "stem"] and options == [("3x3",), ("5x5",), ("block",), SKIP]
    names, _ = neighbour_blocks(base, space=space, max_blocks=1, latency=lambda a: estimate(space.graph(a)).macs)
    assert names == ["stem"]  # 3x3 -> 7x7 at stride 2 adds 10k MACs, a whole block only 6k at 16 channels
    # one block and one kernel its stride allows (stride 4x4 on 8x8: 5x5, 7x7): only the stem is mixed
    single = Arch.from_dict("dscnn", {"blocks": 1, "channels": 8, "stem_kernel": "5x5", "stem_stride": "4x4"})
    assert neighbour_blocks(single, space=space, max_blocks=4, latency=lambda a: 0.0) == (
        ["stem"], [("5x5",), ("7x7",)])


def test_a_neighbour_the_cost_model_refuses_ranks_last_and_a_bug_is_not_swallowed():
    space = get_space("mcunet", input_shape=(8, 8, 1), num_classes=10)
    base = _arch(space, s2_b1=(3, 3), s2_b2=(5, 4))

    def refuses_s2_b2(arch):
        if arch["s2_b2_kernel"] == 7:
            raise CostError("no latency for a 7x7 kernel here")
        return float(arch["s2_b1_kernel"])

    # s2_b2 would spread most, but its largest option cannot be costed: s2_b1 is mixed instead
    names, _ = neighbour_blocks(base, space=space, max_blocks=1, latency=refuses_s2_b2)
    assert names == ["s2_b1"]

    def broken(arch):
        raise KeyError("s9_b9_kernel")

    with pytest.raises(KeyError):
        neighbour_blocks(base, space=space, max_blocks=1, latency=broken)


def test_the_refinement_says_what_became_of_the_derived_arch():
    from tinynas.pipeline.report import refinement_text

    r = {"method": "drnas", "base": "b", "mixed_blocks": 2, "derived": "d", "seconds": 9.4, "handed": True,
         "accuracy": 0.95, "cut_accuracy": 0.93, "feasible": True, "top": 3}
    head = "drnas on a layer-wise supernet around b (2 mixed blocks) in 9 s: derived d"
    assert refinement_text(r) == head + ", handed to final training (0.9500 at search fidelity)"
    assert refinement_text({**r, "handed": False, "accuracy": 0.91}) == (
        head + ", not handed to final training: it scored 0.9100 at search fidelity, below the 0.9300 of the last "
        "of the 3 top candidates")
    assert refinement_text({**r, "handed": False, "feasible": False}).endswith("it does not fit the board")
    assert refinement_text({**r, "handed": False, "accuracy": None}).endswith("search-fidelity training failed")
    assert refinement_text({**r, "handed": None}) == head  # --strategy darts: final training takes it anyway
    assert refinement_text({"method": "darts", "skipped": "nothing to mix"}) == "darts skipped: nothing to mix"
    from tinynas.pipeline.report import _refinement_lines

    trained = {**r, "stage": "refine", "expected_latency_ms": 1.0, "latency_ms": 1.1, "epochs_run": 6,
               "epoch_passes": 24, "supernet_val_accuracy": 0.875}
    assert ("The supernet trained 6 epochs, each 24 passes over the small training set; at the epoch whose arch "
            "was taken it scored 0.8750 on the validation split") in "\n".join(_refinement_lines(trained))
    assert "trained 6 epochs; at" in "\n".join(_refinement_lines({**trained, "epoch_passes": 1}))
    assert "chance" not in "\n".join(_refinement_lines({**trained, "classes": 2}))
    assert ("scored 0.5000 on the validation split. That is chance for 2 classes (a constant guess scores 0.5000 "
            "on this split): the supernet did not learn" in "\n".join(
                _refinement_lines({**trained, "supernet_val_accuracy": 0.5, "classes": 2})))
    # 27 of 269 on 10 classes is above 1/10, but the split's most common class has 28: still chance
    lines = "\n".join(_refinement_lines({**trained, "supernet_val_accuracy": 27 / 269, "classes": 10,
                                         "chance_accuracy": 28 / 269}))
    assert "(a constant guess scores 0.1041 on this split)" in lines and "--refine-option supernet_epochs=N" in lines
    assert "chance" not in "\n".join(_refinement_lines({**trained, "supernet_val_accuracy": 0.2, "classes": 10,
                                                       "chance_accuracy": 28 / 269}))


def test_plan_settings_and_config_carry_the_refine_method():
    assert stage_plan("staged", refine="drnas") == ["prefilter", "search", "refine", "final", "winner"]
    assert stage_plan("staged") == ["prefilter", "search", "final", "winner"]
    assert stage_plan("evolution", refine="darts") == ["search", "final", "winner"]
    s = RunSettings(profile="nano33ble", dataset="digits", space="mcunet", refine="rdarts")
    config = {"profile": {"id": "nano33ble"}, "dataset": {"name": "digits"}, "space": {"name": "mcunet"},
              "strategy": {"name": "staged"}, "refine": {"method": s.refine}}
    assert settings_from_config(config).refine == "rdarts"
    config["refine"]["max_mixed_blocks"] = 2  # --refine-option, kept beside the method
    assert settings_from_config(config).refine_options == {"max_mixed_blocks": 2}
    del config["refine"]
    assert settings_from_config(config).refine == "none"  # a run from before --refine
    with pytest.raises(SearchError, match="--refine 'adam' is unknown"):
        check_refine(refine="adam", strategy="staged", space="mcunet")


@pytest.mark.parametrize("args, message", [
    (["--space", "nanonas", "--strategy", "staged"], "space 'nanonas' has nothing to mix"),
    (["--space", "mcunet", "--strategy", "evolution"], "refines the evolution of --strategy staged"),
])
def test_refusals_exit_1_before_anything_is_written(args, message, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    code, err = run_cli(monkeypatch, capsys, "run", "--profile", "nano33ble", "--dataset", "digits", *args,
                     "--refine", "darts", *FLAGS, "--out", str(out))
    assert code == 1 and message in err, err[-2000:]
    assert "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("args, message", [
    (["--refine", "none", "--refine-option", "max_mixed_blocks=2"], "runs only with --refine darts|drnas|rdarts"),
    (["--refine", "drnas", "--refine-option", "max_mixed_block=2"],
     "--refine drnas has no option 'max_mixed_block'; did you mean 'max_mixed_blocks'?"),
    # a hyperparameter of --strategy drnas's own search, which the refinement does not use
    (["--refine", "drnas", "--refine-option", "population_size=4"], "has no option 'population_size'"),
    (["--refine", "darts", "--refine-option", "max_mixed_blocks=0"], "darts max_mixed_blocks must be at least 1"),
    (["--refine", "darts", "--refine-option", "alpha_lr=fast"], "--refine darts cannot take alpha_lr='fast'"),
])
def test_a_bad_refine_option_exits_1_before_anything_is_written(args, message, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    code, err = run_cli(monkeypatch, capsys, "run", "--profile", "nano33ble", "--dataset", "digits", "--space",
                        "mcunet", "--strategy", "staged", *args, *FLAGS, "--out", str(out))
    assert code == 1 and message in err, err[-2000:]
    assert "Traceback" not in err and not out.exists()


@pytest.mark.slow
def test_staged_refine_journals_the_derived_arch_and_resumes_without_retraining(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    args = ["run", "--profile", "nano33ble", "--dataset", "digits", "--space", "mcunet", "--strategy", "staged",
            "--refine", "drnas", "--refine-option", "max_mixed_blocks=2", *FLAGS, "--out", str(out)]
    code, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0, err[-3000:]
    done = json.loads((out / "stages" / "refine" / "done.json").read_text())
    lines = [json.loads(x) for x in (out / "journal.jsonl").read_text().splitlines() if x.strip()]
    refined = [e for e in lines if e.get("stage") == "refine" and e.get("type") == "candidate"]
    assert not done.get("skipped"), done  # this seed's top candidates disagree: the stage must mix
    space = get_space("mcunet", input_shape=(8, 8, 1), num_classes=10)
    derived = Arch.from_json(done["arch"])
    space.validate(derived)
    supernet = [e for e in refined if e["fidelity"] == "supernet"]
    assert len(supernet) == 1 and supernet[0]["id"] == derived.id and supernet[0]["cost"]["fits"] is True
    assert 1 <= done["mixed_blocks"] <= 2 and (out / "stages" / "refine" / "supernet.npz").is_file()
    assert 0.1 <= done["chance_accuracy"] < 0.12  # digits' validation split: the most common class's share
    assert loads_config((out / "config.toml").read_text(), where="config")["refine"] == {
        "method": "drnas", "max_mixed_blocks": 2}
    assert done["handed"] == (done["feasible"] and done["accuracy"] >= done["cut_accuracy"])
    finals = {e["id"] for e in lines if e.get("stage") == "final" and e.get("type") == "candidate"}
    assert (derived.id in finals) == done["handed"] or derived.id in finals
    assert (out / "model" / "model_int8.tflite").is_file()
    report = (out / "report.md").read_text()
    assert "## Differentiable refinement (drnas, stage `refine`)" in report and f"derived {derived.id}" in report
    html = (out / "report.html").read_text()
    assert "<h2>Differentiable refinement (drnas, stage `refine`)</h2>" in html and f"derived {derived.id}" in html
    fate = ("handed to final training" if done["handed"] else
            f"not handed to final training: it scored {done['accuracy']:.4f} at search fidelity, below the "
            f"{done['cut_accuracy']:.4f} of the last of the {len(done['top'])} top candidates")
    assert fate in report and fate in html, report
    search = done["search"]
    assert search["config"]["epoch_passes"] == 1  # 64 search samples: one pass draws what an epoch asks
    assert (f"The supernet trained 1 epoch; at the epoch whose arch was taken it scored "
            f"{search['val_accuracy'][search['arch_epoch']]:.4f} on the validation split") in report
    from tinynas.cli.search import _print_summary

    _print_summary(json.loads((out / "summary.json").read_text()), out)
    assert (f"refine     drnas (max_mixed_blocks=2) on a layer-wise supernet around {done['base']}"
            in capsys.readouterr().out)
    # killed after the supernet's last epoch, before the stage finished: resume from the checkpoint
    (out / "stages" / "refine" / "done.json").unlink()
    for later in ("final", "winner", "deploy"):
        shutil.rmtree(out / "stages" / later, ignore_errors=True)
    code, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0, err[-3000:]
    again = json.loads((out / "stages" / "refine" / "done.json").read_text())
    assert again["derived"] == derived.id
    lines = [json.loads(x) for x in (out / "journal.jsonl").read_text().splitlines() if x.strip()]
    assert len([e for e in lines if e.get("stage") == "refine" and e.get("type") == "candidate"]) == len(refined)
    # the option binds the run: another value would mix two refinements in one journal
    other = [a if a != "max_mixed_blocks=2" else "max_mixed_blocks=3" for a in args]
    code, err = run_cli(monkeypatch, capsys, *other)
    assert code == 1 and "refine.max_mixed_blocks: 2 -> 3" in err, err[-2000:]


@pytest.mark.slow
def test_staged_refine_on_dscnn_derives_an_arch_of_the_space(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    code, err = run_cli(monkeypatch, capsys, "run", "--profile", "nano33ble", "--dataset", "digits", "--space",
                        "dscnn", "--strategy", "staged", "--refine", "darts", *FLAGS, "--out", str(out))
    assert code == 0, err[-3000:]
    done = json.loads((out / "stages" / "refine" / "done.json").read_text())
    assert not done.get("skipped"), done
    assert set(done["mixed"]) <= {"stem", *(f"b{b}" for b in range(2, 9))} and done["mixed"]
    space = get_space("dscnn", input_shape=(8, 8, 1), num_classes=10)
    derived, base = Arch.from_json(done["arch"]), Arch.from_json(
        next(e["arch"] for e in map(json.loads, (out / "journal.jsonl").read_text().splitlines())
             if e.get("type") == "candidate" and e.get("id") == done["base"]))
    space.validate(derived)
    assert derived["channels"] == base["channels"] and derived["stem_stride"] == base["stem_stride"]
    assert done["feasible"] is True and (out / "model" / "model_int8.tflite").is_file()
