"""`tinynas space list | sample | build` through click's CliRunner."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tinynas.cli.main import cli
from tinynas.errors import SpaceError


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def cost_model():
    """``tinynas.cost.estimate`` (written by the cost-model engineer; skip until it lands)."""
    import tinynas.cost

    if not hasattr(tinynas.cost, "estimate"):
        pytest.skip("tinynas.cost.estimate has not landed yet")
    return tinynas.cost.estimate


def test_list_json(runner):
    result = runner.invoke(cli, ["space", "list", "--json"])
    assert result.exit_code == 0, result.output
    spaces = {s["name"]: s for s in json.loads(result.output)}
    assert {"mcunet", "nanonas", "dscnn"} <= set(spaces)
    assert spaces["dscnn"]["input_shape"] == [49, 10, 1]
    assert spaces["nanonas"]["size"] == 32 * 40  # 32 k x (cell counts + pooling/kernel/stride variants)
    decisions = {d["name"]: d["options"] for d in spaces["mcunet"]["decisions"]}
    assert decisions["s1_b1_kernel"] == [3, 5, 7] and decisions["width"][0] == 0.25


def test_list_for_an_input_shape_and_as_text(runner):
    result = runner.invoke(cli, ["space", "list", "--input-shape", "8,8,1", "--json"])
    assert result.exit_code == 0, result.output
    nanonas = [s for s in json.loads(result.output) if s["name"] == "nanonas"][0]
    assert nanonas["size"] == 32 * 24 and nanonas["input_shape"] == [8, 8, 1]
    text = runner.invoke(cli, ["space", "list"])
    assert text.exit_code == 0
    assert "mcunet" in text.output and "stem_kernel" in text.output and "architectures" in text.output
    # numeric options smallest first, though mcunet appended 0.1-0.2 after 1.0 to keep earlier arch ids
    assert "    width                  0.1, 0.15, 0.2, 0.25, 0.35, 0.5, 0.75, 1.0, 1.25, 1.5\n" in text.output
    assert "s*_depth (x5)          0, 1, 2, 3, 4\n" in text.output


def test_sample_json_lines(runner, cost_model):
    args = ["space", "sample", "--space", "mcunet", "--input-shape", "32,32,3", "--classes", "10",
            "--n", "4", "--seed", "7", "--json"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 4
    from tinynas.space import Arch, get_space

    space = get_space("mcunet", input_shape=(32, 32, 3), num_classes=10)
    for row in lines:
        arch = Arch.from_json(row["arch"])
        assert row["id"] == arch.id and space.contains(arch)
        cost = cost_model(space.graph(arch))
        assert row["cost"]["macs"] == cost.macs > 0
        assert row["cost"]["params"] == cost.params
        assert row["cost"]["flash_bytes"] == cost.flash_bytes and row["cost"]["arena_bytes"] == cost.arena_bytes
        assert row["cost"]["fits"] is None and "latency_ms" not in row["cost"]
    again = runner.invoke(cli, args)
    assert again.output == result.output, "same seed, same archs"


def test_sample_table_for_1d(runner, cost_model):
    result = runner.invoke(cli, ["space", "sample", "--space", "dscnn", "--input-shape", "40,1",
                                 "--classes", "10", "--n", "3"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split()[:3] == ["id", "MMACs", "params"] and len(lines) == 4
    assert "blocks" in lines[1]


def test_sample_table_says_how_to_read_a_terse_notation(runner, cost_model):
    from tinynas.space import get_space

    result = runner.invoke(cli, ["space", "sample", "--space", "mcunet", "--input-shape", "28,28,1",
                                 "--classes", "10", "--n", "2"])
    assert result.exit_code == 0, result.output
    legend = get_space("mcunet", input_shape=(28, 28, 1), num_classes=10).summary_legend
    assert legend.startswith("w: width multiplier") and result.output.rstrip().endswith(f"arch: {legend}")


def test_sample_with_profile(runner, cost_model):
    from tinynas.hardware import list_profiles

    profiles = [p for p in list_profiles() if p.kind == "mcu"]
    if not profiles:
        pytest.skip("no built-in MCU hardware profile has landed yet")
    profile = profiles[0]
    result = runner.invoke(cli, ["space", "sample", "--space", "nanonas", "--input-shape", "8,8,1",
                                 "--classes", "10", "--n", "2", "--profile", profile.id, "--json"])
    assert result.exit_code == 0, result.output
    for line in result.output.splitlines():
        cost = json.loads(line)["cost"]
        assert cost["latency_ms"] > 0 and isinstance(cost["fits"], bool)


def test_sample_unknown_space_lists_known(runner):
    result = runner.invoke(cli, ["space", "sample", "--space", "resnet", "--input-shape", "32,32,3",
                                 "--classes", "10"])
    assert isinstance(result.exception, SpaceError)
    assert "resnet" in str(result.exception) and "mcunet" in str(result.exception)


def test_sample_bad_input_shape(runner):
    result = runner.invoke(cli, ["space", "sample", "--space", "mcunet", "--input-shape", "32,a,3",
                                 "--classes", "10"])
    assert result.exit_code == 2 and "32,32,3" in result.output


def test_build_bad_arch_file_names_it(runner, tmp_path):
    bad = tmp_path / "arch.json"
    bad.write_text("{not json")
    result = runner.invoke(cli, ["space", "build", str(bad), "--input-shape", "8,8,1", "--classes", "10",
                                 "--out", str(tmp_path / "m.keras")])
    assert isinstance(result.exception, SpaceError) and str(bad) in str(result.exception)
    bad.write_text(json.dumps({"id": "x", "arch": {"decisions": {}}}))
    result = runner.invoke(cli, ["space", "build", str(bad), "--input-shape", "8,8,1", "--classes", "10",
                                 "--out", str(tmp_path / "m.keras")])
    assert isinstance(result.exception, SpaceError) and "'space'" in str(result.exception)
    missing = tmp_path / "missing.json"
    result = runner.invoke(cli, ["space", "build", str(missing), "--input-shape", "8,8,1", "--classes", "10",
                                 "--out", str(tmp_path / "m.keras")])
    assert isinstance(result.exception, SpaceError) and "missing.json" in str(result.exception)


@pytest.mark.slow
def test_build_writes_a_loadable_keras_model(runner, tmp_path):
    import keras
    import numpy as np

    from tinynas.space import get_space

    space = get_space("dscnn", input_shape=(49, 10, 1), num_classes=12)
    arch = space.sample(np.random.default_rng(0))
    wrapped = tmp_path / "sampled.json"
    wrapped.write_text(json.dumps({"id": arch.id, "arch": arch.to_json(), "cost": {}}))
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(arch.to_json()))
    outs = []
    for i, path in enumerate((wrapped, bare)):
        out = tmp_path / "models" / f"m{i}.keras"
        result = runner.invoke(cli, ["space", "build", str(path), "--input-shape", "49,10,1", "--classes", "12",
                                     "--out", str(out), "--seed", "3", "--json"])
        assert result.exit_code == 0, result.output
        info = json.loads(result.output)
        assert info["id"] == arch.id and info["output_shape"] == [12] and out.is_file()
        outs.append(out)
    models = [keras.saving.load_model(out, compile=False) for out in outs]
    x = np.random.default_rng(1).random((2, 49, 10, 1), dtype=np.float32)
    y0, y1 = (np.asarray(m(x)) for m in models)
    assert y0.shape == (2, 12)
    np.testing.assert_allclose(y0, y1, rtol=1e-6)  # same seed, same weights


def test_list_says_which_spaces_cannot_take_an_input(runner):
    result = runner.invoke(cli, ["space", "list", "--input-shape", "2,40,1", "--json"])
    assert result.exit_code == 0, result.output
    spaces = {s["name"]: s for s in json.loads(result.output)}
    assert "smaller than the smallest stem kernel" in spaces["dscnn"]["error"]
    assert "error" not in spaces["mcunet"] and spaces["mcunet"]["size"] > 0
    text = runner.invoke(cli, ["space", "list", "--input-shape", "2,40,1"])
    assert "dscnn  (not available for input 2,40,1" in text.output
    assert "s*_b*_kernel (x20)" in text.output


def test_sample_takes_the_shape_and_classes_from_a_dataset_or_says_what_is_missing(runner):
    by_shape = runner.invoke(cli, ["space", "sample", "--space", "dscnn", "--input-shape", "8,8,1", "--classes", "10",
                                   "--n", "3", "--json"])
    by_dataset = runner.invoke(cli, ["space", "sample", "--space", "dscnn", "--dataset", "digits", "--n", "3",
                                     "--json"])
    assert by_dataset.exit_code == 0 and by_dataset.output == by_shape.output
    listed = runner.invoke(cli, ["space", "list", "--dataset", "digits", "--json"])
    assert listed.exit_code == 0 and listed.output == runner.invoke(cli, ["space", "list", "--input-shape", "8,8,1",
                                                                         "--json"]).output
    for args, says in ((["--space", "dscnn"], "give --dataset, or --input-shape and --classes"),
                       (["--space", "dscnn", "--dataset", "digits", "--classes", "3"], "not both"),
                       (["--space", "dscnn", "--input-shape", "8,8,1", "--classes", "3", "-o", "x=1"],
                        "-o/--dataset-option is an option of --dataset")):
        result = runner.invoke(cli, ["space", "sample", *args])
        assert result.exit_code == 2 and says in result.output, result.output
