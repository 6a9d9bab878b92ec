"""`tinynas run --strategy darts|drnas|rdarts`: the differentiable stage searches a layer-wise supernet (here
dscnn's, which traces in seconds; mcunet's whole runs are the run matrix's cells) on digits, journals the derived
arch (fidelity "supernet"), and the search trains that arch first; spaces without a layer-wise supernet are
refused before anything is written (tinynas/pipeline/differentiable.py, strategies/differentiable.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from pipeline_helpers import run_cli

from tinynas.darts.layerwise import rules_for
from tinynas.errors import SearchError
from tinynas.hardware import load_profile
from tinynas.pipeline.constraints import CostCheck
from tinynas.pipeline.differentiable import pick_base
from tinynas.space import get_space
from tinynas.space.arch import Arch
from tinynas.text import counted

FLAGS = ["--budget-candidates", "2", "--search-epochs", "1", "--search-samples", "64", "--final-epochs", "1",
         "--final-top-k", "1", "--no-progress", "--max-macs", "200k"]


@pytest.mark.slow
def test_darts_run_journals_a_valid_feasible_derived_arch_and_trains_it_first(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    # dscnn: its supernet traces in seconds (mcunet's darts run is the run matrix's cell)
    code, err = run_cli(monkeypatch, capsys, "run", "--profile", "nano33ble", "--dataset", "digits", "--space",
                     "dscnn", "--strategy", "darts", *FLAGS, "--no-qat", "--out", str(out))  # as run_matrix_helpers
    assert code == 0, err[-3000:]
    lines = [json.loads(x) for x in (out / "journal.jsonl").read_text().splitlines() if x.strip()]
    supernet = [e for e in lines if e.get("stage") == "differentiable" and e.get("type") == "candidate"]
    assert len(supernet) == 1 and supernet[0]["fidelity"] == "supernet"
    derived = Arch.from_json(supernet[0]["arch"])
    space = get_space("dscnn", input_shape=(8, 8, 1), num_classes=10)
    space.validate(derived)
    assert supernet[0]["cost"]["fits"] is True and supernet[0]["cost"]["macs"] <= 200_000
    done = json.loads((out / "stages" / "differentiable" / "done.json").read_text())
    assert done["derived"] == derived.id and 1 <= done["mixed_blocks"] <= 8  # the stem and blocks 2-8
    assert done["expected_latency_ms"] > 0 and (out / "stages" / "differentiable" / "supernet.npz").is_file()
    searched = [e for e in lines if e.get("stage") == "search" and e.get("type") == "candidate"]
    assert searched[0]["id"] == derived.id  # the derived arch is the search's first candidate
    assert (out / "model" / "model_int8.tflite").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["refinement"]["stage"] == "differentiable" and summary["refinement"]["derived"] == derived.id
    mixed = counted(done['mixed_blocks'], 'mixed block')
    line = f"Search: darts on a layer-wise supernet around {done['base']} ({mixed}) in "
    assert line in (out / "report.md").read_text() and f"derived {derived.id}. Expected latency" in (
        out / "report.md").read_text()
    from tinynas.cli.search import _print_summary

    _print_summary(summary, out)
    assert f"supernet   darts on a layer-wise supernet around {done['base']}" in capsys.readouterr().out


@pytest.mark.parametrize("strategy", ["darts", "drnas", "rdarts"])
def test_other_spaces_are_refused_before_anything_is_written(strategy, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    code, err = run_cli(monkeypatch, capsys, "search", "--profile", "nano33ble", "--dataset", "digits", "--space",
                     "nanonas", "--strategy", strategy, *FLAGS, "--out", str(out))
    assert code == 1 and f"strategy {strategy!r} works only on" in err and "mcunet" in err and "dscnn" in err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("option, message", [("max_mixed_blocks", "max_mixed_blocks must be at least 1"),
                                             ("supernet_epochs", "supernet_epochs must be at least 1")])
def test_bad_hyperparameters_are_clear_errors(option, message):
    from tinynas.strategies import make_strategy

    space = get_space("mcunet", input_shape=(8, 8, 1), num_classes=10)
    with pytest.raises(SearchError, match=message):
        make_strategy("drnas", space=space, **{option: 0})


def test_base_is_feasible_and_within_the_block_cap():
    space = get_space("mcunet", input_shape=(8, 8, 1), num_classes=10)
    check = CostCheck(space=space, profile=load_profile("nano33ble"))
    base = pick_base(space, check=check, seed=0, samples=8, max_blocks=3)
    assert check(base) and 1 <= sum(int(base[f"s{s}_depth"]) for s in range(1, 6)) <= 3
    assert rules_for(space).branches(space, base) == 9 * sum(int(base[f"s{s}_depth"]) for s in range(1, 6))
    # a resumed stage must rebuild the same supernet, or its checkpoint would not load
    assert pick_base(space, check=check, seed=0, samples=8, max_blocks=3) == base
    with pytest.raises(SearchError, match="no feasible mcunet arch"):
        pick_base(space, check=lambda a: False, seed=0, samples=8, max_blocks=3, max_tries=20)


def test_a_dscnn_base_is_the_largest_feasible_draw():
    """A dscnn supernet has one branch per stem kernel and block (at most 12), under any block cap: the base is
    the feasible draw with the most MACs."""
    space = get_space("dscnn", input_shape=(8, 8, 1), num_classes=10)
    check = CostCheck(space=space, profile=load_profile("nano33ble"))
    base = pick_base(space, check=check, seed=0, samples=8, max_blocks=1)
    assert check(base) and rules_for(space).branches(space, base) <= 12
    rng = np.random.default_rng(0)
    draws = {a.id: a for a in (space.canonical(space.sample(rng)) for _ in range(2000)) if check(a)}
    first = list(draws.values())[:8]
    assert check.cost(base).macs == max(check.cost(a).macs for a in first)


@pytest.mark.parametrize("samples, search_samples, supernet_samples, passes", [
    (42, 1000, None, 24),    # GunPoint's training series: 24 passes draw 1,008 per epoch
    (42, 256, None, 7),      # a smaller search subset asks for fewer
    (42, None, None, 24),    # no cap: as a large set's 1,000
    (1200, 1000, None, 1),   # a large set: the first 1,000, once
    (1200, 1000, 256, 1),    # supernet_samples caps what an epoch draws
])
def test_a_small_training_set_passes_several_times_per_supernet_epoch(samples, search_samples, supernet_samples,
                                                                      passes):
    """As training does (``TrainBudget.on_train_set``): one pass over 42 series was one step per epoch."""
    from dataclasses import replace
    from types import SimpleNamespace

    from tinynas.data import load_dataset
    from tinynas.pipeline.differentiable import supernet_search_setup
    from tinynas.strategies import make_strategy

    digits = load_dataset("digits")
    data = replace(digits, x_train=digits.x_train[:samples], y_train=digits.y_train[:samples])
    ctx = SimpleNamespace(settings=SimpleNamespace(search_samples=search_samples, search_epochs=3),
                          resolved=SimpleNamespace(dataset=data))
    strategy = make_strategy("drnas", space=get_space("dscnn", input_shape=(8, 8, 1), num_classes=10),
                             supernet_samples=supernet_samples)
    used, config, epochs = supernet_search_setup(ctx, strategy)
    n = min(samples, supernet_samples or search_samples or samples)
    assert len(used.y_train) == n and epochs == 3 and config.epoch_passes == passes
    assert config.batch_size == min(32, n // 2)
