"""Tensor names stripped from the int8 model a microcontroller holds: the same outputs in less flash."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from _deploy_support import digits, digits_int8, make_profile, trained_digits_keras
from tinynas.cli.main import cli
from tinynas.deploy.arena import measure_arena_bytes
from tinynas.deploy.deployer import deploy
from tinynas.deploy.flatbuffer import network_of, strip_tensor_names, unpack
from tinynas.deploy.interpreter import MicroInterpreter
from tinynas.errors import ModelFileError

pytestmark = pytest.mark.usefixtures("deploy_digits_model")


def _names(model_bytes: bytes) -> list[bytes]:
    return [t.name for t in unpack(model_bytes).subgraphs[0].tensors]


def test_the_stripped_model_computes_the_same_in_tflite_micro_with_its_weights_aligned():
    data = digits_int8()
    stripped, saved = strip_tensor_names(data)
    assert saved == len(data) - len(stripped) and saved > 0.05 * len(data)  # the names of a 22 KB CNN
    x = digits().x_test
    want, got = MicroInterpreter(data).predict_int8(x), MicroInterpreter(stripped).predict_int8(x)
    assert np.array_equal(want, got)
    assert measure_arena_bytes(stripped) == measure_arena_bytes(data)
    assert network_of(stripped) == network_of(data)  # the same network, names aside

    graph = unpack(data).subgraphs[0]
    interface = {int(graph.inputs[0]), int(graph.outputs[0])}
    before, after = _names(data), _names(stripped)
    assert all(after[i] == before[i] for i in interface) and all(before[i] for i in interface)
    assert all(after[i] is None for i in range(len(after)) if i not in interface)

    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(stripped, 0)
    base = np.frombuffer(stripped, np.uint8).ctypes.data
    starts = [model.Buffers(i).DataAsNumpy().ctypes.data - base for i in range(model.BuffersLength())
              if model.Buffers(i).DataLength()]
    assert starts and all(start % 16 == 0 for start in starts)
    assert strip_tensor_names(stripped) == (stripped, 0)  # nothing left to strip: the bytes as they are


def test_a_corrupt_file_is_refused_with_its_name():
    with pytest.raises(ModelFileError, match=r"m\.tflite: corrupt TFLite flatbuffer"):
        strip_tensor_names(b"TFL3" * 3, source="m.tflite")


def test_deploy_writes_the_stripped_model_and_says_what_it_saved(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["deploy", str(trained_digits_keras()), "-p", "nano33ble", "--dataset", "digits",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())
    written = (out / "model_int8.tflite").read_bytes()
    assert m["flash_bytes"] == len(written) and m["tensor_names_stripped_bytes"] > 0
    assert strip_tensor_names(written)[1] == 0
    assert (f"model {len(written):,} B of 786,432 B flash budget ({m['tensor_names_stripped_bytes']:,} B of tensor "
            "names stripped)") in result.output
    assert f"0x{written[0]:02x}" in (out / "model_data.cc").read_text()  # the C array is the stripped file


def test_estimate_costs_the_flash_deploy_writes(tmp_path):
    src = tmp_path / "m.tflite"
    src.write_bytes(digits_int8())
    stripped, _ = strip_tensor_names(src.read_bytes())
    result = CliRunner().invoke(cli, ["estimate", str(src), "-p", "nucleo-l010rb"])
    assert result.exit_code == 0, result.output
    assert (f"flash     {len(stripped):,} B (as deploy writes it, tensor names stripped; the .tflite file is "
            f"{len(src.read_bytes()):,} B)") in result.output
    record = json.loads(CliRunner().invoke(cli, ["estimate", str(src), "-p", "nucleo-l010rb", "-p", "rpi4",
                                                 "--json"]).output)
    # a phone's LiteRT deploy keeps the file as it is
    assert [(r["flash_bytes"], r["file_bytes"]) for r in record] == [(len(stripped), len(src.read_bytes())),
                                                                    (len(src.read_bytes()), len(src.read_bytes()))]
    flash = next(c for c in record[0]["checks"] if c["name"] == "flash")
    assert flash["need"] == len(stripped)


def test_a_deploy_output_deployed_into_its_own_folder_is_refused_as_the_input_model(tmp_path):
    out = tmp_path / "out"
    src = tmp_path / "m.tflite"
    src.write_bytes(digits_int8())
    deploy(model_path=src, profile=make_profile(), dataset=digits(), out_dir=out, firmware=False)
    before = (out / "model_int8.tflite").read_bytes()
    assert before != src.read_bytes()  # stripped: the folder's model is not the source's bytes
    from tinynas.errors import DeployError

    with pytest.raises(DeployError, match="overwrite the input model; choose another --out"):
        deploy(model_path=out / "model_int8.tflite", profile=make_profile(), dataset=digits(), out_dir=out,
               firmware=False)
    assert (out / "model_int8.tflite").read_bytes() == before
