"""Real differentiable searches on the mcunet layer-wise supernet (sklearn digits, a few steps): the derived
arch is a valid mcunet arch, the power-iteration eigenvalue agrees with the exact one, a diverging search stops
on NaN with a valid arch, a killed search resumes from its per-epoch checkpoint to the same result, and an
arch over the board's budget is repaired to the nearest feasible one."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from tinynas.cost import estimate
from tinynas.darts import DartsConfig, relax, search_layerwise
from tinynas.darts.layerwise_search import nearest_feasible_layerwise
from tinynas.data import load_dataset
from tinynas.errors import SearchError
from tinynas.hardware import load_profile
from tinynas.space import Arch
from tinynas.space.base import get_space


def _base(space):
    values = dict(space.sample(np.random.default_rng(0)).decisions)
    # two blocks: s1_b1, which cannot be skipped (its skip option is masked), and s1_b2, which can
    values.update(width=0.1, resolution=8, head=False, s1_depth=2, s2_depth=0, s3_depth=0, s4_depth=0, s5_depth=0)
    return space.canonical(Arch.from_dict("mcunet", values))


@pytest.fixture(scope="module")
def plan():
    space = get_space("mcunet", input_shape=(8, 8, 1), num_classes=10)
    return relax(space, _base(space))


@pytest.fixture(scope="module")
def digits():
    d = load_dataset("digits")
    return replace(d, x_train=d.x_train[:256], y_train=d.y_train[:256], x_val=d.x_val[:128], y_val=d.y_val[:128])


TINY = DartsConfig(epochs=2, batch_size=32, hessian_samples=64, w_lr=0.05, alpha_lr=0.01)


@pytest.mark.slow
def test_short_drnas_search_derives_a_valid_mcunet_arch(plan, digits):
    result = search_layerwise(digits, plan=plan, config=replace(TINY, method="drnas", hessian="power"),
                              profile=load_profile("nucleo-h743zi"))
    plan.space.validate(result.arch)
    assert result.epochs_run == 2 and np.asarray(result.weights).shape == (2, *plan.shape)
    weights = np.asarray(result.weights[-1])
    assert plan.shape == (2, 10) and weights[0, -1] == 0 and weights[1, -1] > 0  # s1_b1 may not skip, s1_b2 may
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-4)
    assert all(e is not None and np.isfinite(e) for e in result.eigenvalues)
    assert result.cost["fits"] and result.changed_to_fit == 0
    assert len(result.expected_latency_ms) == 2 and result.expected_latency_ms[-1] > 0
    assert max(result.val_accuracy) > 0.1  # above chance on 10 classes after 16 steps


@pytest.mark.slow
def test_power_iteration_matches_the_exact_eigenvalue(plan, digits):
    from tinynas.darts.layerwise_net import build_layerwise_supernet
    from tinynas.darts.search import _State

    model = build_layerwise_supernet(plan, input_shape=(8, 8, 1), num_classes=10)
    state = _State(model, replace(TINY, power_iterations=50), shape=plan.shape, mask=plan.mask)
    state.alpha.assign(np.random.default_rng(0).normal(size=plan.shape).astype(np.float32))
    x, y = digits.x_train[:64].astype(np.float32), digits.y_train[:64].astype(np.int32)
    exact = np.linalg.eigvalsh(state.hessian(x, y))
    dominant = exact[np.argmax(np.abs(exact))]
    assert state.power_eigenvalue(x, y) == pytest.approx(dominant, rel=0.05, abs=1e-4)


def test_a_block_weighted_all_on_skip_is_the_identity(plan, digits):
    from tinynas.darts.layerwise_net import build_layerwise_supernet

    model = build_layerwise_supernet(plan, input_shape=(8, 8, 1), num_classes=10)
    (_, first), (_, second) = model.blocks
    assert second.name == "s1_b2" and len(second.branches) == 9  # skip adds no branch
    x = first(model.stem(digits.x_train[:4].astype(np.float32)), np.full(10, 0.1, np.float32))
    skip, conv = np.eye(10, dtype=np.float32)[9], np.eye(10, dtype=np.float32)[0]
    np.testing.assert_array_equal(second(x, skip).numpy(), x.numpy())
    assert not np.allclose(second(x, conv).numpy(), x.numpy())


def test_diverging_search_stops_on_nan_with_a_valid_arch(plan, digits):
    bad = replace(digits, x_train=digits.x_train * np.float32(1e30))
    result = search_layerwise(bad, plan=plan, config=replace(TINY, epochs=3, w_lr=1e30, grad_clip=1e30))
    assert result.nan_stop and result.stopped_early and result.epochs_run < 3
    plan.space.validate(result.arch)


_CHILD = """
import sys
from dataclasses import replace
sys.path.insert(0, {root!r})
import tests.darts.test_layerwise_search as t
from tinynas.darts import relax, search_layerwise
from tinynas.data import load_dataset
from tinynas.space.base import get_space
space = get_space("mcunet", input_shape=(8, 8, 1), num_classes=10)
d = load_dataset("digits")
d = replace(d, x_train=d.x_train[:256], y_train=d.y_train[:256], x_val=d.x_val[:128], y_val=d.y_val[:128])
search_layerwise(d, plan=relax(space, t._base(space)), config=replace(t.TINY, epochs=4, hessian_every=0),
                 state_dir={state!r})
"""


@pytest.mark.slow
def test_killed_search_resumes_from_its_checkpoint(plan, digits, tmp_path, monkeypatch):
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    cfg = replace(TINY, epochs=4, hessian_every=0)
    state = tmp_path / "state"
    child = subprocess.Popen([sys.executable, "-c", _CHILD.format(root=root, state=str(state))])
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and child.poll() is None:
            meta = state / "supernet.json"
            if meta.exists() and json.loads(meta.read_text())["epochs_run"] >= 1:
                break
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait()
    done = json.loads((state / "supernet.json").read_text())["epochs_run"]
    assert 1 <= done < 4, "the child should have been killed mid-search"
    resumed = search_layerwise(digits, plan=plan, config=cfg, state_dir=state)
    fresh = search_layerwise(digits, plan=plan, config=cfg)
    assert resumed.epochs_run == 4 and resumed.arch == fresh.arch
    np.testing.assert_allclose(resumed.weights, fresh.weights, atol=2e-3)
    # resumed again after it ended (a stage killed later): the same result, and no supernet is built for it
    import tinynas.darts.layerwise_net as layerwise_net

    with monkeypatch.context() as m:
        m.setattr(layerwise_net, "build_layerwise_supernet", lambda *a, **k: pytest.fail("the supernet was built"))
        again = search_layerwise(digits, plan=plan, config=cfg, state_dir=state)
    assert again.to_json() | {"seconds": 0} == resumed.to_json() | {"seconds": 0}
    with pytest.raises(SearchError, match="another config"):
        search_layerwise(digits, plan=plan, config=replace(cfg, seed=1), state_dir=state)
    # a plan with another option list (here the base's own choices only, no skip) is refused by shape
    own = sorted({tuple(plan.blocks[i].options[o]) for i, o in enumerate(plan.choice(plan.one_hot(plan.base)))})
    with pytest.raises(SearchError, match=r"mixes 2 blocks x 10 options, this search 2 x"):
        search_layerwise(digits, plan=relax(plan.space, plan.base, options=own), config=cfg, state_dir=state)


def test_infeasible_arch_is_repaired_to_the_nearest_feasible(plan):
    profile = load_profile("nucleo-h743zi")
    latency = lambda a: estimate(plan.space.graph(a), profile=profile).latency_ms  # noqa: E731
    biggest = plan.arch_of([8] * plan.shape[0])
    smallest = plan.arch_of([0] * plan.shape[0])
    limit = (latency(biggest) + latency(smallest)) / 2
    weights = np.full(plan.shape, 0.01)
    weights[:, 8] = 0.9
    weights[:, 7] = 0.05
    arch, changed = nearest_feasible_layerwise(plan, biggest, weights, lambda a: latency(a) <= limit)
    assert changed >= 1 and latency(arch) <= limit
    plan.space.validate(arch)
    assert nearest_feasible_layerwise(plan, smallest, weights, lambda a: True) == (smallest, 0)
    # a budget only a shallower stage meets: the repair leaves s1_b2 out (s1_b1 cannot be)
    shallow, changed = nearest_feasible_layerwise(plan, biggest, weights, lambda a: latency(a) < latency(smallest))
    assert shallow["s1_depth"] == 1 and latency(shallow) < latency(smallest) and changed >= 1
    with pytest.raises(SearchError, match="start from a smaller base"):
        nearest_feasible_layerwise(plan, biggest, weights, lambda a: False)


@pytest.mark.slow
def test_epoch_passes_go_over_the_weights_half_that_many_times_per_epoch(plan, digits, monkeypatch):
    """A small set's epoch passes over it several times; each pass takes each weight sample once and its batches
    stay within the pass."""
    from tinynas.darts.search import _State

    seen: list[list[bytes]] = []  # per weight step: its samples
    step = _State.weight_step
    monkeypatch.setattr(_State, "weight_step",
                        lambda self, x, y, lr: (seen.append([r.tobytes() for r in x]), step(self, x, y, lr))[1])
    small = replace(digits, x_train=digits.x_train[:70], y_train=digits.y_train[:70])  # halves of 35 and 35
    config = replace(TINY, epochs=2, batch_size=16, epoch_passes=3, hessian_every=0)
    result = search_layerwise(small, plan=plan, config=config)
    assert result.epochs_run == 2 and [len(b) for b in seen] == [16] * (2 * 3 * 2)  # 2 whole batches per pass
    passes = [seen[i] + seen[i + 1] for i in range(0, len(seen), 2)]
    assert all(len(set(p)) == 32 for p in passes)  # no sample twice within a pass
    assert len(set().union(*passes)) > 32  # passes draw afresh from the half of 35
    with pytest.raises(SearchError, match="epoch_passes must be at least 1"):
        replace(config, epoch_passes=0)


def test_a_search_that_ended_before_newer_config_fields_existed_is_taken_as_it_is(plan, tmp_path):
    """A stage resumed after an upgrade: its supernet.json lacks warmup_epochs and epoch_passes, which it ran at
    0 and 1; with those values the result is taken, with others it is not."""
    from dataclasses import asdict

    from tinynas.darts.checkpoint import finished_result

    cfg = replace(TINY, hessian_every=0)
    old = {k: v for k, v in asdict(cfg).items() if k not in ("warmup_epochs", "epoch_passes")}
    weights = np.full(plan.shape, 0.1).tolist()
    (tmp_path / "supernet.json").write_text(json.dumps({
        "config": old, "epochs_run": 2, "weights": [weights, weights], "eigenvalues": [None, None],
        "val_accuracy": [0.5, 0.6], "expected_latency_ms": [], "expected_arena_bytes": [],
        "finished": {"arch": plan.base.to_json(), "arch_epoch": 1, "stopped_early": False, "stop_epoch": None,
                     "nan_stop": False}}))
    result = finished_result(tmp_path, cfg, shape=plan.shape)
    assert result is not None and result.arch == plan.base and result.val_accuracy == [0.5, 0.6]
    assert finished_result(tmp_path, replace(cfg, epoch_passes=3), shape=plan.shape) is None
