"""`tinynas estimate`: the table, --json, several models and boards, and errors as exit code 1."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from tinynas.cli.main import cli


def test_estimate_one_model_on_a_board(mlperf_models):
    res = CliRunner().invoke(cli, ["estimate", str(mlperf_models["kws"]), "--profile", "nano33ble"])
    assert res.exit_code == 0, res.output
    assert "2,656,768" in res.output and "24,272 B" in res.output
    assert "measured in the TFLite Micro interpreter, x86-64; as the cost model predicts" in res.output
    assert "sram" in res.output and "latency" in res.output and "fits nano33ble" in res.output
    # --model, as firmware generate, emulate and measure name the file, is the same
    named = CliRunner().invoke(cli, ["estimate", "--model", str(mlperf_models["kws"]), "--profile", "nano33ble"])
    assert named.exit_code == 0 and named.output == res.output
    nothing = CliRunner().invoke(cli, ["estimate", "--profile", "nano33ble"])
    assert nothing.exit_code == 2 and "name a .tflite model" in nothing.output


def test_estimate_json(mlperf_models):
    res = CliRunner().invoke(cli, ["estimate", str(mlperf_models["ad"]), "-p", "nano33ble", "--json",
                                   "--latency-target-ms", "1000"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    from tinynas.deploy.flatbuffer import strip_tensor_names

    # the board holds the model as deploy writes it, without its tensor names
    assert data["macs"] == 264_192 and data["file_bytes"] == mlperf_models["ad"].stat().st_size
    assert data["flash_bytes"] == len(strip_tensor_names(mlperf_models["ad"].read_bytes())[0]) < data["file_bytes"]
    assert data["profile_id"] == "nano33ble" and [c["name"] for c in data["checks"]] == ["sram", "flash", "latency"]
    assert data["checks"][2]["budget"] == 1000 and data["fits"] is True
    # the arena TFLite Micro allocates, which the SRAM check uses; the cost model's figure beside it
    assert data["arena_bytes"] == data["checks"][0]["need"] == 4_632 and data["arena_predicted_bytes"] == 4_636


def test_a_phone_class_board_counts_the_memory_deploy_checks_and_a_gpu_says_what_its_figure_is(mlperf_models):
    """For rpi4 the arena of TFLite Micro is not what deploy checks against the RAM budget: LiteRT's runtime
    memory is (deploy's metrics.json, runtime_bytes); estimate measures the same in LiteRT. A GPU gets ONNX,
    so its figure stays the cost model's, and says so."""
    import numpy as np

    from tinynas.deploy.interpreter import read_model_io
    from tinynas.deploy.litert import predict_litert

    model = mlperf_models["kws"]
    data = model.read_bytes()
    shape = tuple(read_model_io(data).input.shape[1:])
    _, deployed = predict_litert(data, np.zeros((1, *shape), dtype=np.float32), threads=1, source=str(model))
    res = CliRunner().invoke(cli, ["estimate", str(model), "-p", "rpi4", "-p", "nano33ble", "-p", "rtx-4090", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["profile_id"]: r for r in json.loads(res.output)}
    assert rows["rpi4"]["arena_source"] == "litert" and rows["rpi4"]["arena_bytes"] == deployed
    assert rows["rpi4"]["checks"][0]["need"] == deployed != rows["rpi4"]["arena_predicted_bytes"]
    assert rows["nano33ble"]["arena_source"] == "tflm" and rows["nano33ble"]["arena_bytes"] == 24_272
    assert rows["rtx-4090"]["arena_source"] == "cost_model"
    one = CliRunner().invoke(cli, ["estimate", str(model), "-p", "rpi4"]).output
    assert f"memory    {deployed:,} B (LiteRT's runtime memory" in one and "TFLite Micro's arena would be" in one
    gpu = CliRunner().invoke(cli, ["estimate", str(model), "-p", "rtx-4090"]).output
    assert "rtx-4090 gets ONNX models, whose memory `tinynas deploy` measures" in gpu


def test_estimate_table_of_models_and_boards(mlperf_models):
    args = ["estimate", str(mlperf_models["kws"]), str(mlperf_models["vww"]), "-p", "nano33ble", "-p", "nucleo-l432kc"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    lines = [line for line in res.output.splitlines() if line.startswith(("kws", "vww"))]
    assert len(lines) == 4
    assert any("no (" in line and "sram" in line for line in lines if "vww" in line and "l432kc" in line)


def test_estimate_without_profile_says_how_to_get_checks(mlperf_models):
    res = CliRunner().invoke(cli, ["estimate", str(mlperf_models["kws"])])
    assert res.exit_code == 0 and "--profile" in res.output


def test_bad_file_is_exit_code_1(tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"0123456789")
    proc = subprocess.run([sys.executable, "-m", "tinynas.cli.main", "estimate", str(bad), "-p", "nano33ble"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "TFL3" in proc.stderr


def test_a_front_end_deploy_wrote_beside_the_model_counts_in_the_sram_check(mlperf_models, tmp_path):
    """A WAV or image folder's model ships with a C front end whose static RAM sits beside the tensor arena
    (`run` budgets both). estimate of that deployed file counts both, read from the metrics.json deploy wrote
    for this very file; a metrics.json of another model is not taken."""
    import hashlib
    import shutil

    model = tmp_path / "model_int8.tflite"
    shutil.copyfile(mlperf_models["kws"], model)
    record = {"static_ram_bytes": 180_000, "file": "audio_frontend.c", "max_source": None}
    metrics = {"int8_sha256": hashlib.sha256(model.read_bytes()).hexdigest(), "front_end": record}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    args = ["estimate", str(model), "-p", "nano33ble", "--latency-ms", "10000"]
    res = CliRunner().invoke(cli, [*args, "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["arena_bytes"] == 24_272 and data["checks"][0]["need"] == 24_272 + 180_000
    assert data["front_end"] == record and data["fits"] is False  # 204,272 B against a 196,608 B budget
    text = CliRunner().invoke(cli, args)
    assert ("model_int8.tflite: deploy wrote audio_frontend.c beside it, 180,000 B of static RAM beside the tensor "
            "arena; on a TFLite Micro board the sram check counts both") in text.output
    assert "fits nano33ble: no" in text.output
    (tmp_path / "metrics.json").write_text(json.dumps({**metrics, "int8_sha256": "0" * 64}))
    other = json.loads(CliRunner().invoke(cli, [*args, "--json"]).output)
    assert "front_end" not in other and other["checks"][0]["need"] == 24_272 and other["fits"] is True


def test_a_keras_or_onnx_model_is_refused_with_how_to_get_the_tflite(tmp_path):
    """The files an engineer hands estimate by mistake: say what each is and the command that makes the .tflite."""
    import keras
    import onnx
    from onnx import TensorProto, helper

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph), tmp_path / "m.onnx")
    for name, said in (("m.keras", "it is a zip archive, as a Keras .keras model is: `tinynas deploy MODEL.keras"),
                       ("m.h5", "it is an HDF5 file, as a legacy Keras .h5 model is: `tinynas deploy MODEL.h5"),
                       ("m.onnx", "it is an ONNX model, which tinynas writes for GPUs but does not read")):
        res = CliRunner().invoke(cli, ["estimate", str(tmp_path / name), "-p", "nano33ble"])
        assert res.exit_code == 1 and said in str(res.exception), (name, res.exception)
        assert "model_int8.tflite this reads (for a microcontroller or a phone-class BOARD; for a GPU it writes " \
               "ONNX)" in str(res.exception)
