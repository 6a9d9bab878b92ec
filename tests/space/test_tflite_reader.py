"""The .tflite reader: real MLPerf Tiny files and a freshly converted model read back into the Graph IR."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinynas.errors import ModelFileError
from tinynas.space.tflite_reader import TFLiteInfo, read_tflite, tflite_info


def test_kws_graph(mlperf_models):
    g = read_tflite(mlperf_models["kws"])
    assert g.input_shape == (1, 49, 10, 1) and g.output_shape == (1, 12)
    assert [op.kind for op in g.ops] == ["CONV_2D"] + ["DEPTHWISE_CONV_2D", "CONV_2D"] * 4 + [
        "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    first = g.ops[0]
    assert first.attrs["kernel"] == (10, 4) and first.attrs["stride"] == (2, 2)
    assert first.attrs["filters"] == 64 and first.attrs["padding"] == "same" and first.attrs["activation"] == "relu"
    w = g.tensors[first.inputs[1]]
    assert w.constant and w.shape == (64, 10, 4, 1) and w.dtype == "int8" and w.quant_channels == 64
    assert g.tensors[first.inputs[2]].dtype == "int32"
    assert not g.tensors[first.outputs[0]].constant
    assert g.ops[-4].attrs["pool"] == (25, 5)
    assert g.ops[-2].attrs["units"] == 12
    assert len(g.tensors) == 35


@pytest.mark.parametrize("key,kinds", [
    ("vww", {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"}),
    ("ic", {"CONV_2D", "ADD", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"}),
    ("ad", {"FULLY_CONNECTED"}),
])
def test_other_mlperf_models(key, kinds, mlperf_models):
    g = read_tflite(mlperf_models[key].read_bytes())  # bytes work as well as paths
    assert set(g.op_kinds()) == kinds
    for op in g.ops:
        for name in (*op.inputs, *op.outputs):
            assert not name or name in g.tensors


def test_tflite_info(mlperf_models):
    info = tflite_info(mlperf_models["kws"])
    (inp,), (out,) = info.inputs, info.outputs
    assert inp.shape == (1, 49, 10, 1) and inp.dtype == "int8" and inp.scale > 0 and -128 <= inp.zero_point <= 127
    assert out.shape == (1, 12) and out.dtype == "int8"
    assert info.op_kinds[0] == "CONV_2D" and info.file_bytes == mlperf_models["kws"].stat().st_size
    again = TFLiteInfo.from_json(json.loads(json.dumps(info.to_json())))
    assert again == info


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        read_tflite(tmp_path / "nope.tflite")


def test_not_a_flatbuffer(tmp_path):
    p = tmp_path / "model.tflite"
    p.write_bytes(b"this is not a model at all")
    with pytest.raises(ModelFileError, match="TFL3"):
        read_tflite(p)
    with pytest.raises(ModelFileError, match="TFL3"):
        tflite_info(b"\x00" * 3)


def test_corrupt_flatbuffer(mlperf_models):
    data = bytearray(mlperf_models["kws"].read_bytes()[:200])
    with pytest.raises(ModelFileError):
        read_tflite(bytes(data))


def test_float_model_is_refused_with_the_fix():
    import tflite_micro

    sine = Path(tflite_micro.__file__).parent / "python" / "tflite_micro" / "sine_float.tflite"
    with pytest.raises(ModelFileError, match="quantize"):
        read_tflite(sine)
    assert tflite_info(sine).inputs[0].dtype == "float32"  # info still works on float models


def test_reader_imports_no_tensorflow(mlperf_models):
    code = (
        "import sys\nfrom tinynas.space.tflite_reader import read_tflite\n"
        f"read_tflite({str(mlperf_models['vww'])!r})\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.slow
def test_converted_model_reads_back_as_its_graph():
    from tinynas.deploy.quantize import quantize_int8
    from tinynas.space.graph import GraphBuilder
    from tinynas.space.keras_builder import build_keras_model

    b = GraphBuilder(input_shape=(12, 12, 2))
    x = b.conv2d(b.input, filters=6, kernel=3, stride=2)
    x = b.depthwise_conv2d(x, kernel=3)
    x = b.pool2d(x, kind="max", pool=2)
    x = b.flatten(x)
    x = b.softmax(b.fully_connected(x, units=3))
    g = b.build(outputs=[x])
    rep = np.random.default_rng(0).normal(size=(8, 12, 12, 2)).astype("float32")
    back = read_tflite(quantize_int8(build_keras_model(g, seed=0), representative=rep, num_samples=8))
    assert [op.kind for op in back.ops] == [op.kind for op in g.ops]
    for mine, theirs in zip(g.ops, back.ops):
        assert back.tensors[theirs.outputs[0]].shape == g.tensors[mine.outputs[0]].shape
        for key in ("kernel", "stride", "padding", "activation", "filters", "units", "pool"):
            if key in mine.attrs:
                assert theirs.attrs[key] == mine.attrs[key], (mine.kind, key)
