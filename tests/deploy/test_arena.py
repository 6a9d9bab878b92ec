"""The arena ground truth: the real TFLM interpreter, probed in a child process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tinynas.deploy.arena import arena_breakdown, measure_arena_bytes
from tinynas.errors import DeployError

# REFERENCE.md s1: smallest arenas of the MLPerf Tiny models with this wheel (x86-64).
REFERENCE = {"kws": 24_272, "ad": 4_632}


@pytest.mark.parametrize("key", sorted(REFERENCE))
def test_mlperf_arena_matches_reference(key, mlperf_models):
    assert measure_arena_bytes(mlperf_models[key].read_bytes()) == REFERENCE[key]


def test_found_size_is_the_smallest_that_allocates_and_invokes(mlperf_models):
    data = mlperf_models["kws"].read_bytes()
    n = measure_arena_bytes(data)
    code = (
        "import sys, numpy as np\nfrom tflite_micro.python.tflite_micro import runtime\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "def ok(size):\n"
        "    try:\n"
        "        it = runtime.Interpreter.from_bytes(data, arena_size=size)\n"
        "        it.set_input(np.zeros((1, 49, 10, 1), np.int8), 0); it.invoke(); return True\n"
        "    except Exception:\n"
        "        return False\n"
        "print(ok(int(sys.argv[2])), ok(int(sys.argv[2]) - 1))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(mlperf_models["kws"]), str(n)],
                         capture_output=True, text=True, timeout=120).stdout.split()
    assert out == ["True", "False"]


def test_breakdown_adds_up(mlperf_models):
    b = arena_breakdown(mlperf_models["kws"].read_bytes())
    assert b["arena_size"] == REFERENCE["kws"]
    assert b["head"] + b["tail"] == b["total"] <= b["arena_size"]
    assert b["TfLiteEvalTensor data"] == 35 * 24 and b["NodeAndRegistration struct"] == 13 * 64


def test_ad_needs_more_than_its_recorded_total(mlperf_models):
    # The planner's temporary lists need room in the head: the smallest arena exceeds head + tail.
    b = arena_breakdown(mlperf_models["ad"].read_bytes())
    assert b["arena_size"] > b["total"]


def test_not_a_model_is_a_deploy_error():
    with pytest.raises(DeployError, match="TFL3"):
        measure_arena_bytes(b"0123456789abcdef")
    with pytest.raises(DeployError):
        measure_arena_bytes(b"")


@pytest.mark.slow
def test_search_survives_probes_that_crash_the_interpreter(tmp_path):
    """This small conv model has segfaulted TFLM at a 2,048-byte arena: the search must carry on
    in a fresh child and still find the exact minimum."""
    import numpy as np

    from tinynas.deploy.quantize import quantize_int8
    from tinynas.space.graph import GraphBuilder
    from tinynas.space.keras_builder import build_keras_model

    b = GraphBuilder(input_shape=(16, 16, 3))
    x = b.softmax(b.fully_connected(b.global_avg_pool(b.conv2d(b.input, filters=32)), units=10))
    rep = np.random.default_rng(0).normal(size=(8, 16, 16, 3)).astype("float32")
    data = quantize_int8(build_keras_model(b.build(outputs=[x]), seed=0), representative=rep, num_samples=8)
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    n = measure_arena_bytes(data)
    probe = (
        "import sys, numpy as np\nfrom tflite_micro.python.tflite_micro import runtime\n"
        "it = runtime.Interpreter.from_bytes(open(sys.argv[1], 'rb').read(), arena_size=int(sys.argv[2]))\n"
        "it.set_input(np.zeros((1, 16, 16, 3), np.int8), 0); it.invoke()\n"
    )

    def runs(size: int) -> bool:
        return subprocess.run([sys.executable, "-c", probe, str(path), str(size)],
                              capture_output=True, timeout=120).returncode == 0

    assert runs(n) and not runs(n - 1)
