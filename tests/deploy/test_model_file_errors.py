"""A model file that is cut short or not a model is reported as such, naming the file
(issue #11 item 11), instead of an allocation failure at every arena size; so is a model that
TFLite Micro would abort on (a softmax over logits that barely vary), and `estimate` says so."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from tinynas.cli.main import cli
from tinynas.deploy.arena import measure_arena_bytes
from tinynas.deploy.interpreter import check_model_file, check_tflm_aborts, read_model_io, require_int8
from tinynas.errors import DeployError, ModelFileError


@pytest.mark.parametrize("cut", [1, 135, 1000])
def test_truncated_model_is_named_and_called_truncated(mlperf_models, cut):
    data = mlperf_models["kws"].read_bytes()[:-cut]
    with pytest.raises(DeployError) as info:
        measure_arena_bytes(data, source="models/kws.tflite")
    text = str(info.value)
    assert text.startswith("models/kws.tflite: ") and "truncated" in text
    assert "could not allocate" not in text
    with pytest.raises(ModelFileError, match=r"^models/kws.tflite: corrupt or truncated"):
        read_model_io(data, source="models/kws.tflite")


def test_not_a_model_names_the_file():
    with pytest.raises(DeployError, match=r"^notes.txt: not a TFLite flatbuffer.*TFL3"):
        measure_arena_bytes(b"0123456789abcdef", source="notes.txt")


def test_every_reference_model_passes(mlperf_models):
    for path in mlperf_models.values():
        check_model_file(path.read_bytes(), source=str(path))
        check_tflm_aborts(path.read_bytes(), source=str(path))


def _softmax_model(bias_step: float) -> bytes:
    """int8 Dense -> Softmax on 8x8 inputs whose logits are the bias alone: 0, step, 2 step, ..."""
    from tinynas.deploy.quantize import quantize_int8
    from tinynas.tf_runtime import quiet_import

    quiet_import()
    import keras

    inp = keras.Input((8, 8, 1))
    dense = keras.layers.Dense(10)
    model = keras.Model(inp, keras.layers.Softmax()(dense(keras.layers.Flatten()(inp))))
    dense.set_weights([np.zeros((64, 10), "float32"), (np.arange(10) * bias_step).astype("float32")])
    return quantize_int8(model, representative=np.random.default_rng(0).normal(size=(16, 8, 8, 1)).astype("float32"))


_ALLOCATE = ("import sys; from tflite_micro.python.tflite_micro import runtime; "
             "runtime.Interpreter.from_bytes(open(sys.argv[1], 'rb').read(), arena_size=1 << 20)")


def test_a_softmax_tflm_would_abort_on_is_refused_with_the_reason(tmp_path):
    flat, fine = _softmax_model(1e-9), _softmax_model(0.1)
    path = tmp_path / "flat.tflite"
    path.write_bytes(flat)
    # the condition is real: TFLM's own interpreter aborts the process on the flat model and runs the other
    assert subprocess.run([sys.executable, "-c", _ALLOCATE, str(path)], capture_output=True).returncode == -6
    (tmp_path / "fine.tflite").write_bytes(fine)
    assert subprocess.run([sys.executable, "-c", _ALLOCATE, str(tmp_path / "fine.tflite")]).returncode == 0
    check_tflm_aborts(fine)
    assert measure_arena_bytes(fine) > 0

    with pytest.raises(ModelFileError, match=r"^flat.tflite: the SOFTMAX input .* aborts below it"):
        require_int8(flat, source="flat.tflite")
    with pytest.raises(DeployError, match=r"^flat.tflite: the SOFTMAX input .*train the model"):
        measure_arena_bytes(flat, source="flat.tflite")  # at once, not after a crash at every arena size
    from tinynas.deploy.flatbuffer import strip_tensor_names

    with pytest.raises(ModelFileError, match=r"^flat.tflite: the SOFTMAX input \(tensor \d+\) has scale"):
        require_int8(strip_tensor_names(flat)[0], source="flat.tflite")  # as deploy checks it: no names left
    out = tmp_path / "deployed"
    done = subprocess.run([sys.executable, "-m", "tinynas.cli.main", "deploy", str(path), "--profile", "nano33ble",
                           "--dataset", "digits", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "the SOFTMAX input" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


def test_estimate_says_a_microcontroller_cannot_run_a_model_tflm_would_abort_on(tmp_path):
    path = tmp_path / "flat.tflite"
    path.write_bytes(_softmax_model(1e-9))
    res = CliRunner().invoke(cli, ["estimate", str(path), "--profile", "nano33ble"])
    assert res.exit_code == 0, res.output
    assert "sram" in res.output and "the SOFTMAX input" in res.output  # its cost, and why it will not run
    assert "fits nano33ble: no (TFLite Micro cannot run it)" in res.output
    res = CliRunner().invoke(cli, ["estimate", str(path), "-p", "nano33ble", "-p", "rpi4", "--json"])
    mcu, phone = json.loads(res.output)
    assert mcu["fits"] is False and "train the model" in mcu["tflm_aborts"]
    assert phone["fits"] is True and phone["tflm_aborts"] is None  # LiteRT runs it
