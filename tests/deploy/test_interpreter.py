"""tinynas.deploy.interpreter: the TFLM wrapper, int8 checks on model files, output agreement."""

from __future__ import annotations

import numpy as np
import pytest

from _deploy_support import digits, digits_int8, float_only_tflite
from tinynas.deploy.interpreter import (
    MicroInterpreter,
    int8_accuracy,
    output_agreement,
    read_model_io,
    require_int8,
)
from tinynas.errors import DeployError, ModelFileError

pytestmark = pytest.mark.usefixtures("deploy_digits_model")


def test_reads_io_of_mlperf_kws(mlperf_models):
    io = require_int8(mlperf_models["kws"].read_bytes())
    assert io.input.shape == (1, 49, 10, 1) and io.input.dtype == "int8"
    assert io.output.shape == (1, 12) and io.output.dtype == "int8"
    # Softmax output: TFLite's fixed int8 quantization.
    assert io.output.scale == pytest.approx(1 / 256) and io.output.zero_point == -128


def test_tflm_agrees_with_litert_on_kws(mlperf_models):
    """Cross-check: TFLM and the LiteRT interpreter give the same int8 outputs (within 1 step)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    data = mlperf_models["kws"].read_bytes()
    micro = MicroInterpreter(data)
    # Reference kernels: XNNPACK rounds differently (a few steps) from TFLM's reference int8 kernels.
    lite = Interpreter(model_content=data, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    lite.allocate_tensors()
    rng = np.random.default_rng(0)
    x = rng.normal(0, 20, size=(5, *micro.input_shape)).astype(np.float32)
    ours = micro.predict_int8(x)
    for i in range(len(x)):
        lite.set_tensor(lite.get_input_details()[0]["index"], micro.quantize_input(x[i : i + 1]))
        lite.invoke()
        theirs = lite.get_tensor(lite.get_output_details()[0]["index"])
        assert output_agreement(ours[i], theirs) <= 1
    # float helpers are the int8 values dequantized
    assert np.allclose(micro.predict(x[:1]), (ours[:1].astype(np.float32) + 128) / 256)


def test_int8_accuracy_on_digits_is_high():
    ds = digits()
    acc = int8_accuracy(digits_int8(), x=ds.x_test, y=ds.y_test)
    assert 0.85 < acc <= 1.0


def test_corrupt_and_truncated_models_are_clear_errors(mlperf_models):
    with pytest.raises(ModelFileError, match="not a TFLite flatbuffer"):
        read_model_io(b"this is not a model at all", source="junk.tflite")
    data = mlperf_models["kws"].read_bytes()
    with pytest.raises(ModelFileError, match="cut.tflite"):
        read_model_io(data[: len(data) // 3], source="cut.tflite")


def test_float_only_model_is_refused():
    data = float_only_tflite()
    assert read_model_io(data).input.dtype == "float32"
    with pytest.raises(ModelFileError, match="float32.*int8 input and output"):
        require_int8(data, source="float.tflite")


def test_wrong_input_shape_is_clear():
    micro = MicroInterpreter(digits_int8())
    with pytest.raises(DeployError, match=r"model input is \(8, 8, 1\)"):
        micro.predict(np.zeros((2, 16, 16, 1), np.float32))


def test_too_small_arena_is_a_deploy_error():
    with pytest.raises(DeployError, match="arena of 2000 bytes"):
        MicroInterpreter(digits_int8(), arena_bytes=2000)


def test_output_agreement_in_int8_steps():
    a = np.array([-128, 0, 5, 127], np.int8)
    assert output_agreement(a, a.copy()) == 0
    assert output_agreement(a, np.array([-128, 2, 5, 126], np.int8)) == 2
    scale = 1 / 256
    fa = (a.astype(np.float64) + 128) * scale
    fb = np.round(((a.astype(np.float64) + 128 + np.array([0, 0, 3, 0])) * scale), 6)  # printed with 6 decimals
    assert output_agreement(fa, fb, scale=scale) == 3
    with pytest.raises(DeployError, match="scale"):
        output_agreement(fa, fb)
    with pytest.raises(DeployError, match="differ in size"):
        output_agreement(a, a[:2])
