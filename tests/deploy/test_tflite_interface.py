"""A quantized .tflite as the TFLite converter writes it by default (float32 or uint8 in and out)
deployed with the int8 interface of the network inside."""

from __future__ import annotations

import functools
import hashlib
import json

import numpy as np
import pytest
from click.testing import CliRunner

from _deploy_support import digits, float_only_tflite, trained_digits_keras
from tinynas.cli.main import cli
from tinynas.deploy.flatbuffer import strip_tensor_names
from tinynas.deploy.interpreter import MicroInterpreter, read_model_io
from tinynas.deploy.tflite_interface import int8_interface
from tinynas.errors import ModelFileError
from tinynas.space.tflite_reader import tflite_info


@functools.lru_cache(maxsize=None)
def _converted(interface: str) -> bytes:
    """The shared digits CNN through TFLiteConverter: calibrated int8 with a float32 or uint8 interface."""
    import keras
    import tensorflow as tf

    model = keras.saving.load_model(trained_digits_keras())
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    x = digits().x_train[:100]
    converter.representative_dataset = lambda: ([x[i:i + 1]] for i in range(len(x)))
    if interface == "uint8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.uint8
    return bytes(converter.convert())


def _tflm_outputs(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    """The model's output for each sample in the TFLite Micro interpreter, with its own interface."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(model_bytes, arena_size=256 * 1024)
    outs = []
    for sample in x:
        interp.set_input(sample[None].astype(interp.get_input_details(0)["dtype"]), 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0)[0], copy=True))
    return np.array(outs)


@pytest.mark.slow
@pytest.mark.parametrize("interface", ["float32", "uint8"])
def test_the_int8_network_inside_runs_exactly_as_it_did(interface):
    """TFLM's QUANTIZE and DEQUANTIZE are removed, not re-done: the int8 model gives the original's
    outputs bit for bit once the caller does that (de)quantization."""
    source = _converted(interface)
    assert read_model_io(source).input.dtype == interface
    fixed, change = int8_interface(source, source="m.tflite")
    assert change is not None and change.input_was == change.output_was == interface
    io = read_model_io(fixed)
    assert io.input.dtype == io.output.dtype == "int8"
    assert "QUANTIZE" not in tflite_info(fixed).op_kinds and "DEQUANTIZE" not in tflite_info(fixed).op_kinds

    x = digits().x_test[:60]
    if interface == "uint8":  # the same scales, zero points shifted by 128: the same integers, moved
        before = read_model_io(source)
        assert (before.input.scale, before.output.scale) == (io.input.scale, io.output.scale)
        u_in = np.clip(np.round(x / before.input.scale + before.input.zero_point), 0, 255)
        original = _tflm_outputs(source, u_in).astype(np.int32)
        got = _tflm_outputs(fixed, u_in - before.input.zero_point + io.input.zero_point).astype(np.int32)
        np.testing.assert_array_equal(got - io.output.zero_point, original - before.output.zero_point)
    else:
        original = _tflm_outputs(source, x)
        q_in = np.clip(np.round(x / io.input.scale + io.input.zero_point), -128, 127)
        got = _tflm_outputs(fixed, q_in).astype(np.int32)
        np.testing.assert_array_equal((got - io.output.zero_point) * io.output.scale, original)
        assert MicroInterpreter(fixed).accuracy(x, digits().y_test[:60]) > 0.85


@pytest.mark.slow
def test_weights_stay_16_byte_aligned_and_the_signature_names_the_new_tensors():
    """TFLM reads weights in place from flash, as the converter aligned them; LiteRT looks the
    input up through the signature, which must point at the int8 tensors."""
    from ai_edge_litert.interpreter import Interpreter
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    fixed, _ = int8_interface(_converted("float32"))
    model = schema.Model.GetRootAsModel(fixed, 0)
    starts = [model.Buffers(i).DataAsNumpy().ctypes.data - np.frombuffer(fixed, np.uint8).ctypes.data
              for i in range(model.BuffersLength()) if model.Buffers(i).DataLength()]
    assert starts and all(start % 16 == 0 for start in starts)

    interp = Interpreter(model_content=fixed)
    runner = interp.get_signature_runner()
    (name,) = runner.get_input_details()
    assert runner.get_input_details()[name]["dtype"] == np.int8
    (out_name,) = runner.get_output_details()
    assert runner.get_output_details()[out_name]["dtype"] == np.int8


def test_an_int8_model_is_left_as_it_is():
    from _deploy_support import digits_int8

    data = digits_int8()
    assert int8_interface(data) == (data, None)


def test_a_float_network_is_refused_with_the_converter_settings():
    with pytest.raises(ModelFileError, match=r"f\.tflite: input is float32 and output is float32, and the "
                                             r"input does not go straight into one QUANTIZE.*inference_input_type"):
        int8_interface(float_only_tflite(), source="f.tflite")


@pytest.mark.slow
def test_a_float_input_read_by_another_op_too_is_refused():
    """Removing the QUANTIZE would leave that other op reading an int8 tensor as float."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(_converted("float32"), 0)
    graph = model.subgraphs[0]
    graph.operators.insert(1, graph.operators[0])  # a second reader of the float input
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with pytest.raises(ModelFileError, match="does not go straight into one QUANTIZE"):
        int8_interface(bytes(builder.Output()), source="two.tflite")


@pytest.mark.slow
def test_deploy_of_a_float_interface_tflite_writes_an_int8_build(tmp_path):
    src = tmp_path / "converted.tflite"
    src.write_bytes(_converted("float32"))
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["deploy", str(src), "--profile", "nano33ble", "--dataset", "digits",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert ("interface: the model's float32 input and float32 output became the int8 tensors inside "
            "(the input's QUANTIZE and the output's DEQUANTIZE removed)") in result.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["source"]["sha256"] == before == hashlib.sha256(src.read_bytes()).hexdigest()  # the file untouched
    assert m["source"]["interface_removed"]["input_was"] == "float32"
    assert m["int8_accuracy"] > 0.85
    deployed = (out / "model_int8.tflite").read_bytes()
    assert read_model_io(deployed).input.dtype == "int8"
    assert "QUANTIZE" not in (out / "op_resolver.h").read_text()

    # firmware generate takes only int8 models, and says where the interface gets fixed
    fw = CliRunner().invoke(cli, ["firmware", "generate", "--template", "arduino", "--model", str(src),
                                  "--profile", "nano33ble", "--out", str(tmp_path / "fw")])
    assert isinstance(fw.exception, ModelFileError) and "`tinynas deploy` takes a quantized model" in str(fw.exception)
    assert not (tmp_path / "fw").exists()


@pytest.mark.slow
def test_estimate_gives_the_file_as_it_is_and_what_deploy_would_make_of_it(tmp_path):
    from tinynas.cost import estimate_tflite

    src = tmp_path / "converted.tflite"
    src.write_bytes(_converted("uint8"))
    fixed, _ = int8_interface(src.read_bytes())
    fixed, _ = strip_tensor_names(fixed)  # as deploy writes it
    want = estimate_tflite(fixed)
    result = CliRunner().invoke(cli, ["estimate", str(src), "-p", "nano33ble"])
    assert result.exit_code == 0, result.output
    assert f"flash     {len(src.read_bytes()):,} B (the .tflite file)" in result.output
    assert (f"converted.tflite: its uint8 input and uint8 output wrap an int8 network; `tinynas deploy` removes the "
            f"input's QUANTIZE and the output's QUANTIZE, and the deployed model needs {want.arena_bytes:,} B of "
            f"arena and {want.flash_bytes:,} B of flash") in " ".join(result.output.split())
    record = json.loads(CliRunner().invoke(cli, ["estimate", str(src), "--json"]).output)
    assert record["deployed_int8_interface"] == {"arena_bytes": want.arena_bytes, "flash_bytes": len(fixed)}
    int8 = tmp_path / "int8.tflite"
    int8.write_bytes(fixed)
    assert "deployed_int8_interface" not in json.loads(CliRunner().invoke(cli, ["estimate", str(int8), "--json"]).output)
