"""tinynas/measure/host.py: real LiteRT and ONNX Runtime timing of tiny models made here, and their errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tinynas.errors import MeasureError


def _tiny_keras():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
    model(np.zeros((1, 8, 8, 1), np.float32))  # called once: ONNX export needs built call signatures
    return model


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A float .tflite (TFLiteConverter) and an .onnx (Keras 3 export through tf2onnx) of one tiny CNN."""
    import tensorflow as tf

    out = tmp_path_factory.mktemp("tiny")
    model = _tiny_keras()
    tflite = out / "tiny.tflite"
    tflite.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    onnx = out / "tiny.onnx"
    model.export(str(onnx), format="onnx", verbose=False)
    return {"tflite": tflite, "onnx": onnx}


@pytest.mark.slow
def test_time_litert_and_onnx(tiny_models):
    from tinynas.measure.host import time_litert, time_onnx

    lite = time_litert(tiny_models["tflite"], threads=2, runs=7, warmup=2)
    assert lite.runtime == "litert" and lite.threads == 2 and len(lite.times_ms) == 7
    assert 0 < lite.min_ms <= lite.median_ms <= lite.p90_ms < 1000
    onnx = time_onnx(tiny_models["onnx"], threads=1, runs=5, warmup=1)
    assert onnx.runtime == "onnxruntime" and len(onnx.times_ms) == 5 and onnx.median_ms > 0
    assert json.loads(json.dumps(onnx.to_json()))["runs"] == 5


@pytest.mark.slow
def test_measure_on_host_writes_latency_json(tiny_models, mlperf_models, tmp_path):
    from tinynas.cli.main import cli
    from tinynas.measure.runner import LatencyReport

    for kind, runtime, threads in (("tflite", "litert", "4"), ("onnx", "onnxruntime", "1")):
        result = CliRunner().invoke(cli, ["measure", "--on", "host", "--model", str(tiny_models[kind]), "--profile",
                                          "rpi4", "--threads", threads, "--runs", "9", "--warmup", "2", "--run",
                                          str(tmp_path / kind), "--json"])
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        assert data["runtime"] == runtime and data["threads"] == int(threads) and len(data["windows"]) == 9
        saved = LatencyReport.load(tmp_path / kind / "measure" / "latency.json")
        assert saved.complete and saved.latency_ms == pytest.approx(data["latency_ms"]) and saved.target == "host"
    table = CliRunner().invoke(cli, ["measure", "--on", "host", "--model", str(tiny_models["tflite"]), "--runs", "3"])
    assert table.exit_code == 0 and "runtime            litert, 1 thread(s)" in table.output, table.output
    # with --run it ends with the next step: the calibrate command, or why calibrate would not take it
    accepted = f"calibrate  tinynas calibrate --profile rpi4 {tmp_path / 'kws_ref_model'}"
    for model, said in ((mlperf_models["kws"], accepted),
                        (tiny_models["tflite"], "calibrate  not with this measurement: a float model"),
                        (tiny_models["onnx"], "calibrate  not with this measurement: measured the ONNX model")):
        shown = CliRunner().invoke(cli, ["measure", "--on", "host", "--model", str(model), "--profile", "rpi4",
                                         "--runs", "3", "--run", str(tmp_path / model.stem)])
        assert shown.exit_code == 0 and said in shown.output, shown.output


def test_host_rejects_a_model_it_cannot_load(tmp_path):
    from tinynas.measure.host import time_litert, time_onnx
    from tinynas.measure.runner import MeasurementFailed
    from tinynas.measure.target import measure_on_target

    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer at all" * 4)
    with pytest.raises(MeasureError, match="junk.tflite: LiteRT cannot load this model"):
        time_litert(junk)
    bad_onnx = tmp_path / "junk.onnx"
    bad_onnx.write_bytes(b"\x00garbage")
    with pytest.raises(MeasureError, match="junk.onnx: ONNX Runtime cannot load this model"):
        time_onnx(bad_onnx)
    with pytest.raises(MeasureError, match="cannot read the model"):
        time_litert(tmp_path / "missing.tflite")
    with pytest.raises(MeasurementFailed, match="LiteRT cannot load") as info:
        measure_on_target(target="host", model=junk, run_dir=tmp_path / "run")
    assert info.value.report.complete is False and (tmp_path / "run" / "measure" / "latency.json").is_file()


def test_runs_must_be_positive(tmp_path):
    from tinynas.measure.host import _timed

    with pytest.raises(MeasureError, match="at least 1 timed run"):
        _timed(lambda: None, runs=0, warmup=0)
    assert len(_timed(lambda: None, runs=3, warmup=1)) == 3


@pytest.mark.slow
def test_ssh_runs_the_real_litert_benchmark_script(tiny_models, tmp_path, monkeypatch):
    """ssh and scp replaced by local stand-ins, so the real benchmark_litert_model writes the real result JSON."""
    import shlex
    import sys

    from tinynas.measure.target import measure_on_target

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tools = {
        # scp [opts] -- SRC HOST:DST -> copy SRC to DST here
        "scp": "import shutil, sys\nshutil.copy(sys.argv[-2], sys.argv[-1].split(':', 1)[1])\n",
        # ssh [opts] HOST COMMAND -> run COMMAND (an argument list after splitting) here
        "ssh": "import shlex, subprocess, sys\nsys.exit(subprocess.run(shlex.split(sys.argv[-1])).returncode)\n",
        "python3": f"import os, sys\nos.execv({sys.executable!r}, [{sys.executable!r}, *sys.argv[1:]])\n",
    }
    for name, body in tools.items():
        (bin_dir / name).write_text(f"#!{sys.executable}\n{body}")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    remote = tmp_path / "board"
    remote.mkdir()
    report = measure_on_target(target="ssh:pi@rpi4.local", model=tiny_models["tflite"], profile="rpi4", runs=10,
                               warmup=2, remote_dir=str(remote), run_dir=tmp_path / "run")
    assert report.complete and report.runtime == "litert benchmark_litert_model" and report.threads == 4
    # the tool rounds to 0.01 ms, and this tiny model can run in under 5 us on a quiet machine
    assert report.inferences_per_window == 10 and report.latency_ms >= 0 and report.max_ms >= report.min_ms
    assert shlex.split(report.command[-1])[:3] == ["python3", "-m", "ai_edge_litert.tools.benchmark_litert_model"]
    assert (remote / "tiny.tflite.latency.json").is_file()
