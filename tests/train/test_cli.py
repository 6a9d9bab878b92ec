import json

import numpy as np
import pytest
from click.testing import CliRunner

from tinynas.cli.main import cli
from tinynas.errors import TrainError
from tinynas.space.base import get_space
from tinynas.train.arch_file import read_arch_file


@pytest.mark.slow
def test_train_command_saves_the_model_and_prints_json(tmp_path):
    space = get_space("mcunet", input_shape=(8, 8, 1), num_classes=10)
    arch = space.decode([0] * len(space.decisions()))
    arch_file = tmp_path / "arch.json"
    arch_file.write_text(json.dumps([{"id": arch.id, "arch": arch.to_json(), "cost": {}}]))  # `space sample --json`
    out = tmp_path / "model.keras"
    res = CliRunner().invoke(cli, ["train", str(arch_file), "--dataset", "digits", "--epochs", "1",
                                   "--max-train-samples", "300", "--seed", "2", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["arch_id"] == arch.id and data["model"] == str(out) and out.is_file()
    assert data["result"]["epochs_run"] == 1 and 0.0 <= data["result"]["val_accuracy"] <= 1.0
    assert data["dataset"]["input_scaling"]["scale"] == 1 / 16
    assert data["input_adaptation"] in ("same", "resize") and len(data["model_input_shape"]) == 3
    # beside it, the split seed: deploy measures on seed 2's test split, and refuses another seed's
    from tinynas.data import load_dataset

    assert data["record"] == str(tmp_path / "model.keras.json")
    assert json.loads((tmp_path / "model.keras.json").read_text())["seed"] == 2
    deploy = ["deploy", str(out), "--profile", "nucleo-l4r5zi", "--dataset", "digits", "--no-qat"]
    deployed = CliRunner().invoke(cli, [*deploy, "--out", str(tmp_path / "d")])
    assert deployed.exit_code == 0, deployed.output
    used = json.loads((tmp_path / "d" / "metrics.json").read_text())["dataset"]["fingerprint"]
    assert used == load_dataset("digits", seed=2).fingerprint
    implied = CliRunner().invoke(cli, ["deploy", str(out), "--profile", "nucleo-l4r5zi", "--no-qat", "--out",
                                       str(tmp_path / "d1")])  # the record names the dataset too
    assert implied.exit_code == 0 and "dataset: digits (what tinynas train (model.keras.json)" in implied.output
    assert json.loads((tmp_path / "d1" / "metrics.json").read_text())["dataset"]["fingerprint"] == used
    refused = CliRunner().invoke(cli, [*deploy, "--seed", "0", "--out", str(tmp_path / "d0")])
    assert refused.exit_code == 1 and "tinynas train (model.keras.json) trained it with split seed 2" in str(
        refused.exception) and not (tmp_path / "d0").exists()


def test_a_file_of_the_record_name_that_train_did_not_write_is_left_alone(tmp_path, caplog):
    from tinynas.train.provenance import provenance_of, write_train_record

    mine = tmp_path / "model.keras.json"
    mine.write_text('{"notes": "my own"}')
    with caplog.at_level("WARNING"):
        assert write_train_record(tmp_path / "model.keras", seed=3, dataset={"name": "digits"}, arch={}) is None
    assert mine.read_text() == '{"notes": "my own"}' and "give it --seed 3" in caplog.text
    assert provenance_of(tmp_path / "model.keras") is None
    mine.unlink()
    assert write_train_record(tmp_path / "model.keras", seed=3, dataset={"name": "digits"}, arch={}) == mine
    assert provenance_of(tmp_path / "model.keras").seed == 3



@pytest.mark.slow
def test_a_small_training_set_is_passed_over_several_times_per_epoch(tmp_path):
    """UCR GunPoint keeps 42 training series beside its validation ones: at 64 per batch, 20 epochs of one
    pass were 20 optimizer steps, and this arch scored 0.63-0.72 on the test split (seeds 0-2); with an
    epoch of 24 passes (1,008 samples) it scores 0.98-0.99."""
    arch_file = tmp_path / "arch.json"
    arch_file.write_text(json.dumps({"space": "dscnn", "decisions": {
        "blocks": 1, "channels": 12, "stem_kernel": "1x9", "stem_stride": "1x4"}}))
    res = CliRunner().invoke(cli, ["train", str(arch_file), "--dataset", "gunpoint", "--epochs", "20",
                                   "--out", str(tmp_path / "model.keras")])
    assert res.exit_code == 0, res.output
    assert "epochs    20  on 42 samples (each 24 passes over them)" in res.output
    test_acc = float(res.output.split("test acc")[1].split()[0])
    assert test_acc >= 0.95


def test_arch_file_formats(tmp_path):
    space = get_space("mcunet", input_shape=(8, 8, 1), num_classes=10)
    arch = space.decode([0] * len(space.decisions()))
    for name, payload in (("bare", arch.to_json()), ("row", {"id": arch.id, "arch": arch.to_json()}),
                          ("list", [{"arch": arch.to_json()}])):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(payload))
        assert read_arch_file(path) == arch
    two = tmp_path / "two.json"
    two.write_text(json.dumps([arch.to_json(), arch.to_json()]))
    with pytest.raises(TrainError, match="holds 2 archs"):
        read_arch_file(two)
    # what `tinynas space sample --json` writes: one object per line (five by default)
    sample = ["space", "sample", "--space", "dscnn", "--input-shape", "8,8,1", "--classes", "10", "--json"]
    lines = tmp_path / "lines.json"
    lines.write_text(CliRunner().invoke(cli, sample + ["--n", "3"]).output)
    ids = [json.loads(line)["id"] for line in lines.read_text().splitlines()]
    with pytest.raises(TrainError, match=rf"^{lines}: holds 3 archs \({', '.join(ids)}\); keep the one you mean"):
        read_arch_file(lines)
    one = tmp_path / "one.json"
    one.write_text(CliRunner().invoke(cli, sample + ["--n", "1"]).output)
    assert read_arch_file(one).id == json.loads(one.read_text())["id"]


def test_train_command_bad_inputs(tmp_path):
    res = CliRunner().invoke(cli, ["train", str(tmp_path / "none.json"), "--dataset", "digits",
                                   "--out", str(tmp_path / "m.keras")])
    assert isinstance(res.exception, TrainError) and "no such arch file" in str(res.exception)
    bad = tmp_path / "bad.json"
    bad.write_text('{"decisions": {}}')
    res = CliRunner().invoke(cli, ["train", str(bad), "--dataset", "digits", "--out", str(tmp_path / "m.keras")])
    assert isinstance(res.exception, TrainError) and "'space' and 'decisions'" in str(res.exception)
    res = CliRunner().invoke(cli, ["train", str(bad), "--dataset", "digits", "--out", str(tmp_path / "m.h5")])
    assert isinstance(res.exception, TrainError) and ".keras" in str(res.exception)


def test_an_arch_sampled_for_another_dataset_says_so_and_how_to_sample_one(tmp_path):
    """An 8x8 digits arch on mnist1d's (40, 1) sequences: the space's own complaint, and what to run instead."""
    space = get_space("mcunet", input_shape=(8, 8, 1), num_classes=10)
    arch_file = tmp_path / "arch.json"
    arch_file.write_text(json.dumps(space.sample(np.random.default_rng(0)).to_json()))
    out = tmp_path / "m.keras"
    res = CliRunner().invoke(cli, ["train", str(arch_file), "--dataset", "mnist1d", "--epochs", "1", "--out", str(out)])
    assert isinstance(res.exception, TrainError), res.output
    message = str(res.exception)
    assert message.startswith(f"{arch_file}: arch ") and "for input (40, 1) and 10 classes" in message
    assert "decision 'resolution'" in message
    assert message.endswith("tinynas space sample --space mcunet --dataset mnist1d --n 1 --json > arch.json")
    built = CliRunner().invoke(cli, ["space", "build", str(arch_file), "--input-shape", "40,1", "--classes", "10",
                                     "--out", str(tmp_path / "b.keras")])  # the same for space build
    assert str(built.exception).endswith(
        "tinynas space sample --space mcunet --n 1 --json --input-shape 40,1 --classes 10 > arch.json")
    assert not out.exists()
