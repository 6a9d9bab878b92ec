"""int8 PTQ: a real Keras model becomes a full-integer .tflite that the TFLM interpreter runs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tinynas.errors import DeployError


def _model():
    from tinynas.space.graph import GraphBuilder
    from tinynas.space.keras_builder import build_keras_model

    b = GraphBuilder(input_shape=(10, 10, 1))
    x = b.conv2d(b.input, filters=4, kernel=3, stride=2, batch_norm=False, activation="relu")
    x = b.global_avg_pool(x)
    x = b.softmax(b.fully_connected(x, units=3))
    return build_keras_model(b.build(outputs=[x]), seed=1)


@pytest.fixture(scope="module")
def model_and_data():
    rng = np.random.default_rng(0)
    return _model(), rng.uniform(0, 1, size=(32, 10, 10, 1)).astype("float32")


@pytest.mark.slow
def test_full_integer_model_runs_in_tflm_and_agrees_with_float(model_and_data):
    from tflite_micro.python.tflite_micro import runtime

    from tinynas.deploy.quantize import quantize_int8
    from tinynas.space.tflite_reader import read_tflite, tflite_info

    model, x = model_and_data
    data = quantize_int8(model, representative=x, num_samples=32)
    assert data[4:8] == b"TFL3"
    info = tflite_info(data)
    assert info.inputs[0].dtype == "int8" and info.outputs[0].dtype == "int8"
    assert info.inputs[0].shape == (1, 10, 10, 1)  # batch 1, static shapes
    graph = read_tflite(data)
    assert all(t.dtype in ("int8", "int32") for t in graph.tensors.values())
    assert [op.kind for op in graph.ops] == ["CONV_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX"]

    interp = runtime.Interpreter.from_bytes(data, arena_size=64 * 1024)
    inp, out = info.inputs[0], info.outputs[0]
    want = model.predict(x[:8], verbose=0)
    for i in range(8):
        q = np.clip(np.round(x[i : i + 1] / inp.scale + inp.zero_point), -128, 127).astype(np.int8)
        interp.set_input(q, 0)
        interp.invoke()
        got = (interp.get_output(0).astype(np.float32) - out.zero_point) * out.scale
        np.testing.assert_allclose(got[0], want[i], atol=0.05)


@pytest.mark.slow
def test_same_model_and_data_give_the_same_bytes(model_and_data):
    from tinynas.deploy.quantize import quantize_int8

    model, x = model_and_data
    assert quantize_int8(model, representative=x, num_samples=16) == quantize_int8(
        model, representative=x, num_samples=16)


def test_representative_data_must_match_the_model(model_and_data):
    from tinynas.deploy.quantize import quantize_int8

    model, x = model_and_data
    with pytest.raises(DeployError, match="model expects"):
        quantize_int8(model, representative=np.zeros((4, 12, 12, 1), "float32"))
    with pytest.raises(DeployError, match="batch"):
        quantize_int8(model, representative=np.zeros((10,), "float32"))
    with pytest.raises(DeployError, match="num_samples"):
        quantize_int8(model, representative=x, num_samples=0)


def _from_keras_model(model, x=None):
    """What ``TFLiteConverter.from_keras_model`` writes: int8 with ``x`` as calibration data, else fp16."""
    import keras
    import tensorflow as tf

    from tinynas.deploy.quantize import _batch_one

    converter = tf.lite.TFLiteConverter.from_keras_model(_batch_one(keras, model, model.input_shape[1:]))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if x is None:
        converter.target_spec.supported_types = [tf.float16]
    else:
        converter.representative_dataset = lambda: ([x[i:i + 1]] for i in range(len(x)))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    with warnings.catch_warnings():  # "Statistics for quantized inputs were expected": as in quantize_int8
        warnings.simplefilter("ignore", UserWarning)
        return bytes(converter.convert())


@pytest.mark.slow
def test_the_files_are_what_from_keras_model_writes_but_for_names_and_metadata(model_and_data):
    """quantize_int8 and quantize_fp16 convert the traced call, skipping Keras's ExportArchive and the SavedModel
    round trip (half a conversion's time); the flash cost model is fitted to the files from_keras_model gave, and
    LiteRT users read their signature."""
    from tinynas.deploy.flatbuffer import network_of
    from tinynas.deploy.litert import quantize_fp16
    from tinynas.deploy.quantize import quantize_int8

    model, x = model_and_data
    int8 = quantize_int8(model, representative=x, num_samples=16)
    for ours, theirs in ((int8, _from_keras_model(model, x[:16])),
                         (quantize_fp16(model, sample_shape=(10, 10, 1)), _from_keras_model(model))):
        assert network_of(ours) == network_of(theirs) and len(ours) == len(theirs)
        # the output tensor's name (in the same padded length) and the conversion metadata's model type
        assert 0 < sum(a != b for a, b in zip(ours, theirs)) <= 6
    # other calibration data: other activation ranges, another network
    assert network_of(quantize_int8(model, representative=x[16:], num_samples=16)) != network_of(int8)
