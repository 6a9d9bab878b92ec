"""`-o/--dataset-option KEY=VALUE` on run, sweep and deploy, as on train and `datasets inspect`: a user's own
CSV names its label column. The options bind a resume through config.toml, reach worker processes (which load
the dataset themselves) and appear in the reports; deploy says when it resized the test data instead."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest
from pipeline_helpers import run_cli, run_cli_output

from tinynas.pipeline.rundir import loads_config

# 2 candidates of 1 epoch and a 2-epoch final: the run is about the dataset, not the search
FLAGS = ["--budget-candidates", "2", "--search-epochs", "1", "--final-epochs", "2", "--final-top-k", "1",
         "--prefilter-candidates", "4", "--no-progress", "--no-qat"]


def _activity_csv(path, *, label: str = "activity") -> None:
    """Windows of 32 readings whose mean is the class (walk 0, run 1, sit 2), the class in column ``label``."""
    rng = np.random.default_rng(0)
    names = ("walk", "run", "sit")
    rows = [",".join(f"f{i}" for i in range(32)) + f",{label}"]
    rows += [",".join(f"{v:.3f}" for v in rng.normal(c % 3, 1.0, 32)) + f",{names[c % 3]}" for c in range(240)]
    path.write_text("\n".join(rows) + "\n")


@pytest.mark.slow
def test_a_run_on_a_csv_names_its_label_column_and_a_resume_is_bound_to_it(tmp_path, monkeypatch, capsys):
    data = tmp_path / "act.csv"
    _activity_csv(data)
    out = tmp_path / "run"

    def run(*options: str) -> tuple[int, str]:
        return run_cli(monkeypatch, capsys, "run", "--profile", "nano33ble", "--dataset", str(data), *options,
                       *FLAGS, "--out", str(out))

    code, err = run()
    assert code == 1 and "no label column 'label'" in err and "-o label_column=NAME" in err and not out.exists()
    code, err = run("-o", "label_colum=activity")  # a typo is refused with the loader's own options
    assert code == 1 and "has no option 'label_colum'; its options: label_column='label'" in err
    assert not out.exists() and "Traceback" not in err

    code, err = run("-o", "label_column=activity")
    assert code == 0, err[-3000:]
    assert 'options = {"label_column" = "activity"}' in (out / "config.toml").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset_options"] == {"label_column": "activity"} and summary["winner"]["fits"] is True
    assert "Dataset options: label_column=activity." in (out / "report.md").read_text()
    assert "Dataset options: label_column=activity." in (out / "report.html").read_text()
    # 168 training windows: each epoch passes over them 6 times (1,008 samples), and the report says so
    assert json.loads((out / "stages" / "final" / "done.json").read_text())["budget"]["epoch_passes"] == 6
    assert "passes over it several times (6 in the final training)" in (out / "report.md").read_text()

    code, err = run("--dataset-option", "label_column=activity")  # the same settings: it resumes
    assert code == 0, err[-3000:]
    code, err = run("-o", "label_column=activity", "-o", "normalize=false")
    assert code == 1 and "another configuration" in err and "dataset.options" in err

    # `search` deploys nothing: it prints the deploy command, with the dataset and split it used, and that runs
    found = tmp_path / "search"
    code, out, err = run_cli_output(monkeypatch, capsys, "search", "--profile", "nano33ble", "--dataset", str(data),
                                    "-o", "label_column=activity", "--seed", "1", *FLAGS[:-1], "--out", str(found))
    assert code == 0, err[-3000:]
    nxt = next(line for line in out.splitlines() if line.startswith("next "))
    words = shlex.split(nxt.removeprefix("next").strip())
    assert words[:3] == ["tinynas", "deploy", str(found / "model" / "model.keras")] and words[-2:] == ["--out", "DIR"]
    assert "-o label_column=activity --seed 1" in nxt
    code, err = run_cli(monkeypatch, capsys, *words[1:-1], str(tmp_path / "deployed"), "--no-qat")
    assert code == 0, err[-3000:]
    config = loads_config((found / "config.toml").read_text(), where="config.toml")
    deployed = json.loads((tmp_path / "deployed" / "metrics.json").read_text())
    assert deployed["dataset"]["fingerprint"] == config["dataset"]["fingerprint"]  # the same data


def test_worker_processes_load_the_dataset_with_its_options(tmp_path):
    """A local or Ray worker rebuilds the dataset from its WorkerSpec: the options must travel with it."""
    from tinynas.data import load_dataset
    from tinynas.pipeline.evaluate import WorkerSpec, _context

    data = tmp_path / "act.csv"
    _activity_csv(data)
    spec = WorkerSpec(dataset=str(data), dataset_seed=0, space="dscnn", input_shape=(32, 1), num_classes=3,
                      cache_dir=str(tmp_path / "cache"), dataset_options=(("label_column", "activity"),))
    loaded = _context(spec)["dataset"]
    assert loaded.fingerprint == load_dataset(data, seed=0, label_column="activity").fingerprint
    assert loaded.num_classes == 3


@pytest.mark.slow
def test_deploy_takes_the_options_the_model_was_trained_with_and_says_when_it_resized(tmp_path):
    import subprocess
    import sys

    def tinynas(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tinynas.cli.main", *args], capture_output=True, text=True,
                              timeout=600, cwd=tmp_path)

    arch = tmp_path / "arch.json"
    arch.write_text(tinynas("space", "sample", "--space", "nanonas", "--input-shape", "24,24,1", "--classes", "4",
                            "--n", "1", "--json").stdout)
    trained = tinynas("train", str(arch), "--dataset", "synthetic-image", "-o", "image_size=24", "--epochs", "3",
                      "--out", "m.keras")
    assert trained.returncode == 0, trained.stderr[-2000:]
    # without the option, the 16x16 default images are resized to the model's 24x24, and it says so
    plain = tinynas("deploy", "m.keras", "--profile", "nano33ble", "--dataset", "synthetic-image", "--no-qat",
                    "--out", "plain")
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert "synthetic-image gives (16, 16, 1), the model takes (24, 24, 1): resized" in plain.stdout
    same = tinynas("deploy", "m.keras", "--profile", "nano33ble", "--dataset", "synthetic-image",
                   "-o", "image_size=24", "--no-qat", "--out", "same", "--json")
    assert same.returncode == 0, same.stderr[-2000:]
    metrics = json.loads(same.stdout)
    assert metrics["dataset"]["input_shape"] == [24, 24, 1] and not metrics["dataset"]["adapted_to_model"]
    bad = tinynas("deploy", "m.keras", "--profile", "nano33ble", "--dataset", "synthetic-image", "-o", "size=24",
                  "--out", "bad")
    assert bad.returncode == 1 and "has no option 'size'" in bad.stderr and not (tmp_path / "bad").exists()
