"""``tinynas deploy`` on the command line: .keras and .tflite, --json, and errors as exit code 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from _deploy_support import digits_int8, float_only_tflite, trained_digits_keras
from tinynas.cli.main import cli
from tinynas.deploy.flatbuffer import strip_tensor_names


def _tinynas(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "tinynas.cli.main", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)

pytestmark = pytest.mark.usefixtures("deploy_digits_model")


def test_cli_deploy_keras_json(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["deploy", str(trained_digits_keras()), "--profile", "nucleo-l4r5zi",
                                      "--dataset", "digits", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    assert m == json.loads((out / "metrics.json").read_text())
    assert m["profile_id"] == "nucleo-l4r5zi" and m["fits"] is True
    assert abs(m["float_accuracy"] - m["int8_accuracy"]) <= 0.01
    for name in ("model_int8.tflite", "model_data.h", "model_data.cc", "op_resolver.h"):
        assert (out / name).is_file()
    assert (out / "firmware" / m["template"]).is_dir()


def test_cli_deploy_tflite_human_output(tmp_path):
    src = tmp_path / "model.tflite"
    src.write_bytes(digits_int8())
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["deploy", str(src), "--profile", "nucleo-l4r5zi", "--dataset", "digits",
                                      "--out", str(out), "--template", "cmake-cortexm"])
    assert result.exit_code == 0, result.output
    assert "int8 in TFLite Micro" in result.output and "float n/a" in result.output
    assert (out / "firmware" / "cmake-cortexm").is_dir()
    again = CliRunner().invoke(cli, ["deploy", str(src), "--profile", "nucleo-l4r5zi", "--dataset", "digits",
                                     "--out", str(tmp_path / "o2"), "--qat"])
    assert again.exit_code != 0 and "--qat needs the float .keras model" in str(again.exception)
    assert not (tmp_path / "o2").exists()


def test_cli_errors_exit_1_with_a_message(tmp_path):
    """Through the real entry point: one line naming the file and the fix, exit code 1, nothing written."""
    src = tmp_path / "float.tflite"
    src.write_bytes(float_only_tflite())
    proc = _tinynas("deploy", str(src), "--profile", "nucleo-l4r5zi", "--dataset", "digits", "--out", "out",
                    cwd=tmp_path)
    assert proc.returncode == 1
    assert "error:" in proc.stderr and "float.tflite" in proc.stderr and "int8" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("profile,template,message", [
    ("nucleo-l4r5zi", "esp-idf", "unknown firmware template 'esp-idf': did you mean 'espidf'?"),
    ("nucleo-l4r5zi", "pico", "firmware template 'pico' cannot build for profile 'nucleo-l4r5zi' (core cortex-m4f)"),
    ("rpi4", "arduino", "--template arduino: rpi4 is a mobile board, which gets its runtime's models and runners, "
                        "not a firmware project; drop --template"),  # it used to be ignored
])
def test_a_template_the_board_cannot_take_is_refused_before_anything_is_written(profile, template, message, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["deploy", str(trained_digits_keras()), "--profile", profile, "--dataset",
                                      "digits", "--template", template, "--out", str(out)])
    assert result.exit_code != 0 and message in str(result.exception), result.output
    assert not out.exists()


@pytest.mark.slow
def test_cli_does_not_fit_on_a_tiny_board(tmp_path):
    """A model whose weights (64 KiB) exceed the L010RB's 48 KiB flash budget: files written, exit 1, budgets listed."""
    import keras

    from tinynas.deploy.quantize import quantize_int8
    from _deploy_support import digits

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inp)
    x = keras.layers.Dense(1024, activation="relu")(x)
    out_layer = keras.layers.Dense(10, activation="softmax")(x)
    big = quantize_int8(keras.Model(inp, out_layer), representative=digits().x_train[:100])
    src = tmp_path / "big.tflite"
    src.write_bytes(big)
    proc = _tinynas("deploy", str(src), "--profile", "nucleo-l010rb", "--dataset", "digits", "--out", "out",
                    "--json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    m = json.loads(proc.stdout)
    flash = len(strip_tensor_names(big)[0])  # the board holds the model without its tensor names
    assert m["fits"] is False and m["flash_bytes"] == flash and m["flash_budget_bytes"] == 49_152
    assert "does not fit nucleo-l010rb" in proc.stderr
    assert f"need {flash:,} B" in proc.stderr and "budget 49,152 B (48.0 KiB)" in proc.stderr
    assert f"over by {flash - 49_152:,} B" in proc.stderr
    assert str((tmp_path / "out").resolve()) in proc.stderr
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["fits"] is False


def _fake_run(tmp_path: Path, *, seed: int, fingerprint: str | None = None) -> Path:
    """A run folder as ``tinynas run`` leaves it, as far as deploy reads it: config.toml, the journal and
    model/model.keras (the shared digits model, whichever split it really came from)."""
    import shutil

    from tinynas.data import load_dataset
    from tinynas.pipeline.rundir import dumps_config

    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    shutil.copyfile(trained_digits_keras(), run / "model" / "model.keras")
    fingerprint = fingerprint or load_dataset("digits", seed=seed).fingerprint
    (run / "config.toml").write_text(dumps_config({"dataset": {"name": "digits", "fingerprint": fingerprint},
                                                   "seeds": {"seed": seed}}))
    (run / "journal.jsonl").write_text("")
    return run / "model" / "model.keras"


def test_a_run_model_deploys_on_the_run_split_and_another_seed_is_refused(tmp_path, caplog):
    """A run with seed 3 carved other test digits than seed 0: deploy takes the run's seed from its config.toml,
    and refuses a --seed that would measure the model on samples it trained on, before writing anything."""
    from tinynas.data import load_dataset

    model = _fake_run(tmp_path, seed=3)
    out = tmp_path / "out"
    args = ["deploy", str(model), "--profile", "nucleo-l4r5zi", "--dataset", "digits", "--template", "cmake-cortexm"]
    result = CliRunner().invoke(cli, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    used = json.loads((out / "metrics.json").read_text())["dataset"]["fingerprint"]
    assert used == load_dataset("digits", seed=3).fingerprint != load_dataset("digits", seed=0).fingerprint
    # without --dataset: the run's own dataset (and options), on its split
    implied = CliRunner().invoke(cli, ["deploy", str(model), "--profile", "nucleo-l4r5zi", "--template",
                                       "cmake-cortexm", "--out", str(tmp_path / "o1")])
    assert implied.exit_code == 0, implied.output
    assert f"dataset: digits (what the run in {model.parent.parent} trained it on)" in implied.output
    assert json.loads((tmp_path / "o1" / "metrics.json").read_text())["dataset"]["fingerprint"] == used
    alone = tmp_path / "alone.keras"  # a model from elsewhere: nothing says what it was trained on
    alone.write_bytes(model.read_bytes())
    unknown = CliRunner().invoke(cli, ["deploy", str(alone), "--profile", "nucleo-l4r5zi", "--out",
                                       str(tmp_path / "o4")])
    assert unknown.exit_code == 2 and "give --dataset: nothing beside" in unknown.output
    refused = CliRunner().invoke(cli, [*args, "--seed", "0", "--out", str(tmp_path / "o2")])
    assert refused.exit_code == 1 and not (tmp_path / "o2").exists()
    assert "trained it with split seed 3; --seed 0 splits the dataset otherwise" in str(refused.exception)
    # the same seed but other data than the run's (its fingerprint differs): deployed, with a warning
    other = _fake_run(tmp_path / "b", seed=0, fingerprint="0" * 40)
    with caplog.at_level("WARNING"):
        warned = CliRunner().invoke(cli, ["deploy", str(other), *args[2:], "--out", str(tmp_path / "o3")])
    assert warned.exit_code == 0, warned.output
    assert "gives other data or splits" in caplog.text and "000000000000" in caplog.text
