"""Commands run as a user runs them: in a new interpreter, on their defaults.

The registries (spaces, strategies, datasets, proxies) fill when their modules are first imported. In the
test process some earlier test has always imported them, so a command that reads a registry without loading
it passes every in-process test and fails for a user: `tinynas space fit --profile nucleo-l010rb` (no
--input-shape) said "unknown search space 'mcunet'; known: (none)". These calls start a fresh process each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CALLS = [
    ["space", "fit", "--profile", "nucleo-l010rb", "--samples", "3", "--json"],
    ["space", "fit", "--space", "dscnn", "--profile", "nucleo-l010rb", "--samples", "3"],
    ["space", "list", "--json"],
    ["space", "sample", "--space", "mcunet", "--input-shape", "32,32,3", "--classes", "10", "--n", "2", "--json"],
    ["profiles", "list"],
    ["datasets", "list"],
    ["proxies", "list"],
    ["firmware", "list"],
]


def _tinynas(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``tinynas ARGS`` in a new interpreter; its exit code must be 0."""
    done = subprocess.run([sys.executable, "-m", "tinynas.cli.main", *args], capture_output=True, text=True,
                          timeout=300, check=False, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.mark.parametrize("args", CALLS, ids=[" ".join(c[:4]) for c in CALLS])
def test_a_command_on_its_defaults_works_in_a_new_process(args):
    done = _tinynas(args)
    assert "Traceback" not in done.stderr and done.stdout.strip()
    if args[:2] == ["space", "fit"] and "--json" in args:
        fit = json.loads(done.stdout)
        assert fit["space"] == "mcunet" and fit["best"]["feasible"] > 0  # the default space at its own 32,32,3
    elif args[:2] == ["space", "fit"]:  # a space without width or resolution decisions is one slice
        assert "dscnn has no width or resolution decisions to slice by" in done.stdout, done.stdout


TF_CALLS = [
    ["proxies", "score", "--space", "dscnn", "--input-shape", "8,8,1", "--n", "1", "--proxies", "synflow,naswot",
     "--dataset", "digits"],
    ["space", "build", "{arch}", "--input-shape", "8,8,1", "--classes", "10", "--out", "{tmp}/m.keras"],
    # LiteRT's C++ logger prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on fd 2 the first
    # time a process applies XNNPACK (a phone's deploy and sweep showed it between their own lines)
    ["measure", "--on", "host", "--model", "{repo}/benchmarks/mlperf_tiny/kws_ref_model.tflite", "--profile", "rpi4",
     "--runs", "3", "--warmup", "1", "--run", "{tmp}"],
]


@pytest.mark.parametrize("args", TF_CALLS, ids=[" ".join(c[:2]) for c in TF_CALLS])
def test_a_command_that_starts_a_runtime_keeps_its_start_up_chatter_off_stderr(args, tmp_path):
    """TensorFlow writes oneDNN, CUDA-probe and absl lines to fd 2 as it starts (`proxies score` showed them,
    before its proxies went through ``tinynas.tf_runtime.quiet_import``), and LiteRT an INFO line as it first
    applies XNNPACK (``tinynas.deploy.litert.open_interpreter``); the user's own environment has no
    TF_CPP_MIN_LOG_LEVEL, so neither does this one."""
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"space": "dscnn", "decisions": {"blocks": 2, "channels": 8, "stem_kernel": "3x3",
                                                                "stem_stride": "1x1"}}))
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = _tinynas([a.format(arch=arch, tmp=tmp_path, repo=REPO) for a in args], env=env)
    assert done.stderr.strip() == "", done.stderr[-2000:]
