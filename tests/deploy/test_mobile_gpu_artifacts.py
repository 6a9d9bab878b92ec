"""Mobile and GPU profiles get what their runtime loads: LiteRT int8/fp16 models and ONNX fp32/fp16, each
checked in the real runtime (ai-edge-litert, onnxruntime), a runner or the trtexec command, and no firmware."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _deploy_support import digits, trained_digits_keras

pytestmark = pytest.mark.usefixtures("deploy_digits_model")

PIPELINE_HELPERS = Path(__file__).resolve().parents[1] / "pipeline"


def _tinynas(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "tinynas.cli.main", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def _keras_probs(x: np.ndarray) -> np.ndarray:
    import keras

    return np.asarray(keras.saving.load_model(trained_digits_keras()).predict(x, verbose=0))


@pytest.mark.slow
def test_cli_deploy_rpi4_writes_litert_models_and_a_runner_that_runs(tmp_path):
    out = tmp_path / "rpi4"
    proc = _tinynas("deploy", str(trained_digits_keras()), "--profile", "rpi4", "--dataset", "digits",
                    "--out", str(out), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads(proc.stdout)
    assert m == json.loads((out / "metrics.json").read_text())
    assert m["kind"] == "mobile" and m["fits"] is True and m["template"] is None and m["threads"] == 4
    assert set(m["artifacts"]) == {"model_int8.tflite", "model_fp16.tflite"}
    int8, fp16 = m["artifacts"]["model_int8.tflite"], m["artifacts"]["model_fp16.tflite"]
    assert int8["runtime"] == fp16["runtime"] == "litert"
    assert int8["accuracy"] == m["int8_accuracy"] and abs(m["float_accuracy"] - int8["accuracy"]) <= 0.02
    assert abs(m["float_accuracy"] - fp16["accuracy"]) <= 0.005
    assert int8["max_abs_diff"] < 0.1 and fp16["max_abs_diff"] < 0.01
    assert int8["top1_agreement"] >= 0.97 and fp16["top1_agreement"] >= 0.99
    for a in (int8, fp16):  # memory against the RAM budget, the file against the storage budget
        assert a["runtime_bytes"] > 0 and a["file_bytes"] == (out / a["file"]).stat().st_size
        assert {c["name"] for c in a["checks"]} == {"sram", "flash"} and a["fits"]
    assert "non-constant tensors" in m["memory_measure"]
    # what LiteRT runs instead of firmware: no C arrays, no firmware project
    assert not (out / "model_data.cc").exists() and not (out / "firmware").exists()
    android = (out / "RUN_ANDROID.md").read_text()
    assert "adb push model_int8.tflite /data/local/tmp/" in android
    assert "benchmark_model --graph=/data/local/tmp/model_fp16.tflite --num_threads=4 --use_xnnpack=true" in android

    # the Linux-board runner, run here on one test sample
    x = digits().x_test[:1].astype(np.float32)
    np.save(tmp_path / "input.npy", x[0])
    want = int(_keras_probs(x).argmax())
    for model in ("model_int8.tflite", "model_fp16.tflite"):
        run = subprocess.run([sys.executable, str(out / "run_litert.py"), str(out / model), str(tmp_path / "input.npy"),
                              "--json", "--runs", "5"], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        result = json.loads(run.stdout.strip().splitlines()[-1])
        assert result["class"] == want and result["latency_ms"] > 0 and result["threads"] == 4


@pytest.mark.slow
def test_cli_deploy_rtx4090_writes_onnx_and_the_trtexec_command(tmp_path):
    import onnxruntime as ort

    out = tmp_path / "gpu"
    proc = _tinynas("deploy", str(trained_digits_keras()), "--profile", "rtx-4090", "--dataset", "digits",
                    "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "model_fp16.onnx" in proc.stdout and "onnxruntime" in proc.stdout
    m = json.loads((out / "metrics.json").read_text())
    assert m["kind"] == "gpu" and m["fits"] is True and m["int8_accuracy"] is None
    fp32, fp16 = m["artifacts"]["model_fp32.onnx"], m["artifacts"]["model_fp16.onnx"]
    assert fp32["max_abs_diff"] < 1e-4 and fp32["top1_agreement"] == 1.0
    assert fp32["accuracy"] == pytest.approx(m["float_accuracy"])
    assert fp16["max_abs_diff"] < 1e-2 and abs(fp16["accuracy"] - m["float_accuracy"]) <= 0.005
    assert fp16["file_bytes"] < 0.7 * fp32["file_bytes"]  # float16 weights
    # fp16 keeps the float32 interface, so the same feed works for both files
    x = digits().x_test[:4].astype(np.float32)
    for name in ("model_fp32.onnx", "model_fp16.onnx"):
        session = ort.InferenceSession(str(out / name), providers=["CPUExecutionProvider"])
        assert session.get_inputs()[0].type == session.get_outputs()[0].type == "tensor(float)"
        y = session.run(None, {session.get_inputs()[0].name: x[:1]})[0]
        assert y.dtype == np.float32 and y.shape == (1, 10)
    script = (out / "build_trt_engine.sh").read_text()
    assert "trtexec --onnx=model_fp16.onnx --fp16 --saveEngine=model_fp16.engine" in script
    assert f"--shapes={m['onnx_input_name']}:1x8x8x1" in script
    assert os.access(out / "build_trt_engine.sh", os.X_OK)
    assert not (out / "model_data.cc").exists() and not (out / "firmware").exists()


def _sine_model(path: Path) -> Path:
    """A model with SIN, which TFLite has in float only (the converter leaves it float in an int8 model)."""
    import keras

    @keras.saving.register_keras_serializable("tinynas_tests")
    class Sine(keras.layers.Layer):
        def call(self, x):
            return keras.ops.sin(x)

    inp = keras.Input(digits().input_shape)
    x = keras.layers.Dense(16)(keras.layers.Flatten()(inp))
    keras.Model(inp, keras.layers.Dense(10, activation="softmax")(Sine()(x))).save(path)
    return path


def _exact_gelu_model(path: Path) -> Path:
    """Exact GELU exports an Erfc node, which ONNX Runtime has no kernel for."""
    import keras

    inp = keras.Input(digits().input_shape)
    x = keras.layers.Activation("gelu")(keras.layers.Dense(16)(keras.layers.Flatten()(inp)))
    keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x)).save(path)
    return path


def test_bad_models_fail_naming_the_file_and_the_fix_and_write_nothing(tmp_path):
    from tinynas.deploy.deployer import deploy
    from tinynas.errors import DeployError, ModelFileError
    from tinynas.hardware import load_profile

    sine = _sine_model(tmp_path / "sine.keras")
    with pytest.raises(DeployError) as err:
        deploy(model_path=sine, profile=load_profile("rpi4"), dataset=digits(), out_dir=tmp_path / "o1")
    assert str(sine) in str(err.value) and "SIN in float" in str(err.value) and "'gpu' profile" in str(err.value)

    gelu = _exact_gelu_model(tmp_path / "gelu.keras")
    with pytest.raises(ModelFileError) as err:
        deploy(model_path=gelu, profile=load_profile("rtx-4090"), dataset=digits(), out_dir=tmp_path / "o2")
    text = str(err.value)
    assert str(gelu) in text and "ONNX Runtime cannot load" in text and "Erfc" in text and "approximate GELU" in text

    tflite = tmp_path / "model.tflite"
    from _deploy_support import digits_int8

    tflite.write_bytes(digits_int8())
    with pytest.raises(ModelFileError, match="pass the trained .keras model"):
        deploy(model_path=tflite, profile=load_profile("pixel8-cpu"), dataset=digits(), out_dir=tmp_path / "o3")
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == ["gelu.keras", "model.tflite", "sine.keras"]


def test_runtime_threads_come_from_the_profile(tmp_path):
    from tinynas.errors import ProfileError
    from tinynas.hardware import load_profile

    assert load_profile("pixel8-cpu").runtime_threads == 1
    assert load_profile("rpi4").runtime_threads == 4
    assert load_profile("jetson-orin-nano").runtime_threads == 1  # not stated: one thread
    bad = dataclasses.replace(load_profile("rpi4"), extra={"threads": "four"})
    with pytest.raises(ProfileError, match="extra.threads must be a whole number"):
        bad.runtime_threads
    text = (Path(load_profile("rpi4").source_path)).read_text().replace("threads = 4", "threads = 0")
    (tmp_path / "rpi4-bad.toml").write_text(text)
    with pytest.raises(ProfileError, match="extra.threads must be a whole number"):
        load_profile(str(tmp_path / "rpi4-bad.toml"))


def _run_published_runner(deploy: Path, tmp_path: Path) -> None:
    """Run the runner of a run's deploy/ folder there, as its instructions say: run_litert.py on the int8 model,
    or build_trt_engine.sh with a stand-in trtexec that only checks the ONNX file it is given opens."""
    if (deploy / "run_litert.py").is_file():
        np.save(tmp_path / "input.npy", digits().x_test[0].astype(np.float32))
        proc = subprocess.run([sys.executable, "run_litert.py", "model_int8.tflite", str(tmp_path / "input.npy"),
                               "--json", "--runs", "2"], cwd=deploy, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert 0 <= json.loads(proc.stdout.strip().splitlines()[-1])["class"] < 10
        return
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "trtexec").write_text(
        f"#!{sys.executable}\n"
        "import sys, onnx\n"
        "path = next(a.split('=', 1)[1] for a in sys.argv[1:] if a.startswith('--onnx='))\n"
        "print('inputs', [i.name for i in onnx.load(path).graph.input])\n")
    (bin_dir / "trtexec").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(["sh", str(deploy / "build_trt_engine.sh")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("inputs ['"), proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("profile, models, runners, runtime", [
    ("rpi4", ["model_int8.tflite", "model_fp16.tflite"], ["run_litert.py", "RUN_ANDROID.md"], "LiteRT"),
    ("rtx-4090", ["model_fp32.onnx", "model_fp16.onnx"], ["build_trt_engine.sh"], "ONNX Runtime"),
])
def test_run_end_to_end_publishes_the_kinds_artifacts(tmp_path, capsys, profile, models, runners, runtime):
    from click.testing import CliRunner

    from tinynas.cli.main import cli

    sys.path.insert(0, str(PIPELINE_HELPERS))
    from pipeline_helpers import TINY

    out = tmp_path / profile
    result = CliRunner().invoke(cli, ["run", "--profile", profile, "--dataset", "digits", *TINY, "--out", str(out),
                                      "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for name in [*models, "model.keras", "metrics.json"]:
        assert (out / "model" / name).is_file(), name
    # deploy/ is what goes onto the target: the runners and the models they open beside them
    assert sorted(p.name for p in (out / "deploy").iterdir()) == sorted([*models, *runners])
    _run_published_runner(out / "deploy", tmp_path)
    assert not (out / "firmware").exists() and not (out / "model" / "model_data.cc").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["deployed"] and set(summary["winner"]["artifacts"]) == set(models)
    report = (out / "report.md").read_text()
    for name in models:
        assert f"test accuracy ({name}, {runtime})" in report
        assert f"{summary['winner']['artifacts'][name]['file_bytes']:,} bytes)" in report
    assert "TFLite Micro" not in report
    from tinynas.cli.search import _print_summary

    capsys.readouterr()
    _print_summary(summary, out)  # what `run` prints without --json: where the runners are, no firmware line
    printed = capsys.readouterr().out
    listed = ", ".join(sorted([*models, *runners]))
    assert f"deploy     {out / 'deploy'}   ({listed})" in printed and "firmware " not in printed
    # the accuracy of the model the target runs (a GPU gets no int8 model: its fp32 ONNX one, named), and the
    # runtime's memory and model file rather than a microcontroller's arena and flash
    w = summary["winner"]
    assert w["deployed_model"] == models[0] and w["deployed_accuracy"] == w["artifacts"][models[0]]["accuracy"]
    named = "int8" if profile == "rpi4" else "model_fp32.onnx"
    assert f"  {named} test acc {w['deployed_accuracy']:.4f}" in printed
    assert f"runtime memory {w['tflm_arena_bytes']:,} B  model file {w['tflite_flash_bytes']:,} B" in printed
    if profile == "rtx-4090":
        _calibrate_from_trtexec(out, tmp_path)


def _calibrate_from_trtexec(out: Path, tmp_path: Path) -> None:
    """The GPU loop closes: the deployed ONNX model timed by trtexec (a stand-in that prints trtexec's timing
    line) calibrates rtx-4090, priced as the run's winner graph, which calibrate cannot read from ONNX; a
    copy of the file outside the run cannot be priced and is refused."""
    import shutil

    from tinynas.errors import MeasureError
    from tinynas.hardware import load_profile
    from tinynas.measure.calibrate import calibrate, graph_features, predict_ms
    from tinynas.measure.runner import LatencyReport
    from tinynas.measure.target import measure_on_target
    from tinynas.pipeline.report import run_space
    from tinynas.pipeline.rundir import RunDir
    from tinynas.space.arch import Arch

    tool = tmp_path / "timing" / "trtexec"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\necho '[I] GPU Compute Time: min = 0.30 ms, max = 0.50 ms, mean = 0.35 ms, "
                    "median = 0.34 ms, percentile(90%) = 0.40 ms'\n")
    tool.chmod(0o755)
    report = measure_on_target(target="trtexec", model=out / "deploy" / "model_fp16.onnx", profile="rtx-4090",
                               benchmark_binary=str(tool), run_dir=tmp_path / "m1")
    assert report.latency_ms == pytest.approx(0.34)
    measured = LatencyReport.load(tmp_path / "m1" / "measure" / "latency.json")
    result = calibrate(profile="rtx-4090", measurements=[measured], save=False)
    arch = Arch.from_json(json.loads((out / "model" / "arch.json").read_text()))
    features = graph_features(run_space(RunDir.read(out).config).graph(arch))
    gpu = load_profile("rtx-4090")
    assert result.per_measurement[0]["before_ms"] == pytest.approx(
        predict_ms(features, gpu.latency, clock_hz=gpu.clock_hz))  # priced as the search priced the winner
    stray = tmp_path / "elsewhere" / "deploy" / "model_fp16.onnx"
    stray.parent.mkdir(parents=True)
    shutil.copy(out / "deploy" / "model_fp16.onnx", stray)
    measure_on_target(target="trtexec", model=stray, profile="rtx-4090", benchmark_binary=str(tool),
                      run_dir=tmp_path / "m2")
    with pytest.raises(MeasureError, match="calibrate has no ONNX reader and prices it as the network a tinynas "
                                           "run deployed"):
        calibrate(profile="rtx-4090", measurements=[tmp_path / "m2" / "measure" / "latency.json"], save=False)


def test_a_model_over_the_ram_budget_is_written_and_reported(tmp_path):
    """LiteRT's tensor memory is checked against the profile's RAM budget, like the arena on a board."""
    from tinynas.deploy.deployer import DeployResult, deploy
    from tinynas.errors import DoesNotFitError
    from tinynas.hardware import load_profile

    rpi4 = load_profile("rpi4")
    small = dataclasses.replace(rpi4, id="rpi4-tiny-ram", sram_bytes=rpi4.reserved_sram_bytes + 1000)
    with pytest.raises(DoesNotFitError) as err:
        deploy(model_path=trained_digits_keras(), profile=small, dataset=digits(), out_dir=tmp_path / "out")
    assert "runtime memory" in str(err.value) and "budget 1,000 B" in str(err.value)
    m = DeployResult.load(tmp_path / "out").metrics
    assert m["fits"] is False and (tmp_path / "out" / "model_int8.tflite").is_file()
    assert [c["fits"] for c in m["checks"] if c["name"] == "sram"] == [False, False]
