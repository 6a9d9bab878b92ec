"""A model file that is cut short or not a model is reported as such, naming the file
(issue #11 item 11), instead of an allocation failure at every arena size."""

from __future__ import annotations

import pytest

from tinynas.deploy.arena import measure_arena_bytes
from tinynas.deploy.interpreter import check_model_file, read_model_io
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
