"""The learned kernel latency model (``tinynas/cost/kernel_latency.py``) and ``calibrate --measure host``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

from tinynas.cli.main import cli
from tinynas.cost import estimate
from tinynas.cost.convert import converter_view
from tinynas.cost.kernel_latency import (KernelLatencyModel, kernel_features, kernel_kind, kernel_model_path,
                                         load_kernel_model, save_kernel_model)
from tinynas.errors import CostError
from tinynas.hardware import clear_cache, load_profile
from tinynas.space import get_space


def _graph(seed: int = 0, shape=(96, 96, 3)):
    space = get_space("mcunet", input_shape=shape, num_classes=10)
    return space.graph(space.sample(np.random.default_rng(seed)))


def _synthetic_model() -> KernelLatencyModel:
    """Forests fitted (sklearn) on made-up kernel latencies: 1 ns per MAC or per element, plus 2 us."""
    from tinynas.measure.kernel_calibrate import fit_forests

    samples = []
    for seed in range(4):
        g = converter_view(_graph(seed))
        for op in g.ops:
            cfg = kernel_features(op, g)
            samples.append({"kind": kernel_kind(op, g), "config": cfg,
                            "kernel_ms": 2e-3 + 1e-6 * (cfg["macs"] or cfg["out_elems"])})
    forests, stats = fit_forests(samples, n_trees=5)
    return KernelLatencyModel(forests=forests, invoke_ms=0.01, threads=1, kernel_scale=0.9,
                              stats={"per_kind": stats})


@pytest.fixture(scope="module")
def synthetic_model() -> KernelLatencyModel:
    return _synthetic_model()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYNAS_HOME", str(tmp_path / "home"))
    clear_cache()
    yield tmp_path / "home"
    clear_cache()


def test_json_round_trip_predicts_the_same(synthetic_model):
    data = json.loads(json.dumps(synthetic_model.to_json()))
    back = KernelLatencyModel.from_json(data)
    g = converter_view(_graph(7))
    assert back.predict_ms(g) == pytest.approx(synthetic_model.predict_ms(g), rel=1e-12)
    assert back.kernel_scale == 0.9 and set(back.forests) == set(synthetic_model.forests)
    # the forests learned something: a bigger input costs more
    assert back.predict_ms(converter_view(_graph(7, (160, 160, 3)))) > back.predict_ms(g)


def test_group_scales_and_per_kernel_cost_round_trip_and_price(synthetic_model):
    import dataclasses

    g = converter_view(_graph(7))
    sums, kernels = synthetic_model.group_sums(g)
    assert kernels == sum(op.kind != "RESHAPE" for op in g.ops) and all(v > 0 for v in sums.values())
    model = dataclasses.replace(synthetic_model, group_scales={"dwconv": 2.0}, op_ms=0.001)
    assert model.target == "log_ms"
    expected = 0.01 + 0.001 * kernels + sum((2.0 if k == "dwconv" else 0.9) * v for k, v in sums.items())
    assert model.predict_ms(g) == pytest.approx(expected)
    back = KernelLatencyModel.from_json(json.loads(json.dumps(model.to_json())))
    assert back.group_scales == {"dwconv": 2.0} and back.predict_ms(g) == pytest.approx(expected)
    bad = dict(model.to_json(), group_scales={"dwconv": -1.0})
    with pytest.raises(CostError, match="group_scales positive"):
        KernelLatencyModel.from_json(bad)


def test_kernels_xnnpack_runs_differently_are_kinds_of_their_own():
    from tinynas.space.graph import GraphBuilder

    b = GraphBuilder(input_shape=(16, 16, 8), name="k")
    x = b.depthwise_conv2d(b.input, kernel=(7, 7), stride=(1, 1), padding="same", batch_norm=False)
    x = b.depthwise_conv2d(x, kernel=(5, 5), stride=(1, 1), padding="same", batch_norm=False)
    x = b.pool2d(x, kind="avg", pool=2, stride=2)
    x = b.pool2d(x, kind="max", pool=2, stride=2)
    g = b.build(outputs=[x])
    assert [kernel_kind(op, g) for op in g.ops] == ["dwconv_large", "dwconv", "avgpool", "pool"]
    # a model fitted before the split prices them with the kind they were part of
    old = _synthetic_model()
    assert "dwconv" in old.forests
    merged = KernelLatencyModel(forests={k: v for k, v in old.forests.items() if k in ("dwconv", "pool")},
                                invoke_ms=0.0, fallback_ms=123.0)
    cfg = kernel_features(g.ops[0], g)
    assert merged.kernel_ms("dwconv_large", [cfg])[0] == pytest.approx(merged.kernel_ms("dwconv", [cfg])[0])


def test_fit_correction_recovers_scales_and_per_kernel_cost():
    from tinynas.measure.kernel_calibrate import fit_correction

    rng = np.random.default_rng(0)
    rows = []
    for _ in range(30):
        groups = {"conv1x1": float(rng.uniform(0.1, 2)), "dwconv": float(rng.uniform(0.1, 2))}
        kernels = int(rng.integers(20, 60))
        measured = 0.002 + 0.0015 * kernels + 1.2 * groups["conv1x1"] + 0.8 * groups["dwconv"]
        rows.append({"measured_ms": measured, "kernels": kernels, "group_ms": groups})
    fit = fit_correction(rows, invoke_ms=0.002, ridge=1e-6)
    assert fit.group_scales == pytest.approx({"conv1x1": 1.2, "dwconv": 0.8}, rel=1e-3)
    assert fit.op_ms == pytest.approx(0.0015, rel=1e-3) and fit.median_error_pct < 0.1
    # too few whole models for a fit: the median ratio scales every kernel
    few = fit_correction(rows[:2], invoke_ms=0.002)
    assert few.group_scales == {} and few.op_ms == 0.0 and few.kernel_scale > 0


def test_numpy_trees_agree_with_sklearn():
    from sklearn.tree import DecisionTreeRegressor

    from tinynas.cost.kernel_latency import Tree

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 11)), rng.normal(size=200)
    t = DecisionTreeRegressor(max_depth=6, random_state=0).fit(x, y).tree_
    tree = Tree(t.children_left, t.children_right, t.feature, t.threshold, t.value[:, 0, 0])
    xs = rng.normal(size=(50, 11))
    np.testing.assert_allclose(tree.predict(xs), DecisionTreeRegressor(max_depth=6, random_state=0).fit(x, y)
                               .predict(xs))


def test_bad_model_files_name_the_file_and_the_fix(synthetic_model, home):
    path = save_kernel_model("rpi4", synthetic_model)
    data = json.loads(path.read_text())
    data["forests"]["conv"][0]["left"][0] = 10**6
    path.write_text(json.dumps(data))
    with pytest.raises(CostError, match=r"rpi4\.kernels\.json.*forests\.conv.*calibrate again"):
        load_kernel_model("rpi4")
    path.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(CostError, match="format"):
        load_kernel_model("rpi4")
    path.write_text("{not json")
    with pytest.raises(CostError, match="not a readable JSON"):
        load_kernel_model("rpi4")


def test_estimate_uses_the_kernel_model_for_mobile_only(synthetic_model, home):
    g = _graph(3)
    before = estimate(g, profile=load_profile("rpi4")).latency_ms
    mcu_before = estimate(g, profile=load_profile("nano33ble")).latency_ms
    save_kernel_model("rpi4", synthetic_model)
    save_kernel_model("nano33ble", synthetic_model)  # ignored: MCU latency stays the cycles-per-MAC model
    after = estimate(g, profile=load_profile("rpi4")).latency_ms
    assert after == pytest.approx(synthetic_model.predict_ms(converter_view(g))) and after != before
    assert estimate(g, profile=load_profile("nano33ble")).latency_ms == mcu_before
    os.remove(kernel_model_path("rpi4"))
    assert estimate(g, profile=load_profile("rpi4")).latency_ms == before  # falls back


def test_the_cost_model_with_a_kernel_model_imports_no_tensorflow(synthetic_model, home):
    save_kernel_model("rpi4", synthetic_model)
    code = textwrap.dedent("""
        import sys
        import numpy as np
        from tinynas.cost import estimate
        from tinynas.hardware import load_profile
        from tinynas.space import get_space
        space = get_space("mcunet", input_shape=(96, 96, 3), num_classes=10)
        cost = estimate(space.graph(space.sample(np.random.default_rng(0))), profile=load_profile("rpi4"))
        assert cost.latency_ms > 0
        heavy = [m for m in ("tensorflow", "keras", "sklearn", "ai_edge_litert") if m in sys.modules]
        print("HEAVY", heavy)
    """)
    env = dict(os.environ, TINYNAS_HOME=str(home))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout


def test_bad_measure_requests_are_clear(home):
    res = CliRunner().invoke(cli, ["calibrate", "--profile", "rpi4", "--measure", "adb"])
    assert res.exit_code == 2 and "'adb' is not 'host'" in res.output
    res = CliRunner().invoke(cli, ["calibrate", "--profile", "nano33ble", "--measure", "host", "--n", "5"])
    assert res.exit_code == 1
    assert "nano33ble is a mcu profile" in str(res.exception) and "tinynas measure" in str(res.exception)
    assert "measuring" not in res.output  # refused before any measuring starts
    res = CliRunner().invoke(cli, ["calibrate", "--profile", "rtx-4090", "--measure", "host", "--n", "5"])
    assert res.exit_code == 1 and "measuring" not in res.output
    assert "rtx-4090 is a gpu profile" in str(res.exception) and "this machine's CPU" in str(res.exception)
    res = CliRunner().invoke(cli, ["calibrate", "--profile", "rpi4"])
    assert res.exit_code == 2 and "--measure host" in res.output
    res = CliRunner().invoke(cli, ["calibrate", "--profile", "rpi4", "--measure", "host", "x.json"])
    assert res.exit_code == 2 and "not both" in res.output
    assert not kernel_model_path("rpi4").exists()


@pytest.mark.slow
def test_calibrate_measure_host_then_estimate_uses_it(home, tmp_path):
    report = tmp_path / "calib.json"
    # one thread (rpi4 says 4): this 2-core test machine times a single thread by its CPU time
    res = CliRunner().invoke(cli, ["calibrate", "--profile", "rpi4", "--measure", "host", "--n", "10", "--threads", "1",
                                   "--whole-models", "1", "--seed", "3", "--rounds", "2", "--out", str(report)])
    assert res.exit_code == 0, res.output
    assert "10 kernels timed with LiteRT" in res.output and "kernel latency model written to" in res.output
    model = load_kernel_model("rpi4")
    assert model is not None and model.threads == 1 and model.invoke_ms > 0 and model.kernel_scale > 0
    data = json.loads(report.read_text())
    assert len(data["samples"]) == 10 and all(s["kernel_ms"] > 0 for s in data["samples"])
    # two timing rounds, the fastest kept
    assert data["rounds"] == 2 and all(len(s["measured_rounds_ms"]) == 2 and s["measured_ms"] == min(
        s["measured_rounds_ms"]) for s in [*data["samples"], *data["whole_models"]])
    assert {"conv", "dwconv", "conv1x1"} <= set(model.forests)
    assert model.target == "log_ratio_baseline" and set(model.baselines) == set(model.forests)
    # the stored calibration refits offline to the same model (the whole model rebuilt from the seed)
    from tinynas.measure.kernel_calibrate import refit_calibration

    assert data["seed"] == 3 and len(data["whole_models"]) == 1
    refit = refit_calibration(data, where=str(report))
    assert refit.predict_ms(converter_view(_graph(5))) == pytest.approx(model.predict_ms(converter_view(_graph(5))))
    # `tinynas estimate` on a .tflite prices it with the kernel model
    from tinynas.deploy.quantize import quantize_untrained

    g = _graph(5)
    model_file = tmp_path / "m.tflite"
    model_file.write_bytes(quantize_untrained(g, seed=0, num_samples=4))
    res = CliRunner().invoke(cli, ["estimate", str(model_file), "--profile", "rpi4", "--json"])
    assert res.exit_code == 0, res.output
    from tinynas.space.tflite_reader import read_tflite

    assert json.loads(res.output)["latency_ms"] == pytest.approx(model.predict_ms(read_tflite(model_file)))


def test_calibrating_more_threads_than_cpus_says_what_it_measures(home, monkeypatch, caplog):
    from tinynas.measure import kernel_calibrate

    monkeypatch.setattr(kernel_calibrate.os, "cpu_count", lambda: 1)
    with caplog.at_level("WARNING", logger="tinynas.measure.kernel_calibrate"):
        result = kernel_calibrate.calibrate_host(profile="rpi4", n=2, threads=2, whole_models=0, rounds=1, save=False)
    assert result.threads == 2 and result.kernels == 2
    assert "2 LiteRT threads on a machine with 1 CPUs" in caplog.text and "--threads 1" in caplog.text
