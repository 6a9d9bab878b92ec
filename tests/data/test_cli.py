import json

import numpy as np
from click.testing import CliRunner

from tinynas.cli.main import cli
from tinynas.errors import DatasetError


def test_list_json():
    res = CliRunner().invoke(cli, ["datasets", "list", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    names = {r["name"]: r for r in rows}
    assert names["digits"]["kind"] == "built-in" and names["image-folder"]["kind"] == "path"
    assert names["wav-folder"]["options"]["sample_rate_hz"] == 16000


def test_list_text():
    res = CliRunner().invoke(cli, ["datasets", "list"])
    assert res.exit_code == 0 and "mnist1d" in res.output and "csv" in res.output


def test_inspect_name_and_path(tmp_path):
    res = CliRunner().invoke(cli, ["datasets", "inspect", "synthetic-image", "-o", "image_size=8", "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["input_shape"] == [8, 8, 1] and len(info["fingerprint"]) == 40
    path = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.normal(size=(40, 6, 2)).astype(np.float32), y=np.arange(40) % 2)
    res = CliRunner().invoke(cli, ["datasets", "inspect", str(path)])
    assert res.exit_code == 0, res.output
    assert "(6, 2)" in res.output and "fingerprint" in res.output
    assert "splits       test 15 % and validation 15 % of each class carved from the data at random (seed 0)" in res.output
    np.savez(path, x=rng.normal(size=(40, 6, 2)).astype(np.float32), y=np.arange(40) % 2,
             x_test=rng.normal(size=(6, 6, 2)).astype(np.float32), y_test=np.arange(6) % 2, groups=np.arange(40) // 4)
    info = json.loads(CliRunner().invoke(cli, ["datasets", "inspect", str(path), "--json"]).output)
    assert info["splits"] == ("test as the source gives it; validation carved from the training data as whole groups "
                              "(10 groups: 2 validation, 8 train), each class in each as far as the groups allow "
                              "(seed 0)")


def test_inspect_bad_option_is_a_dataset_error():
    res = CliRunner().invoke(cli, ["datasets", "inspect", "digits", "-o", "foo=1"])
    assert isinstance(res.exception, DatasetError) and "no option 'foo'" in str(res.exception)
    res = CliRunner().invoke(cli, ["datasets", "inspect", "synthetic-image", "-o", "image_size=big"])
    assert isinstance(res.exception, DatasetError) and "must be of type int" in str(res.exception)


def test_console_entry_point_turns_a_bad_folder_into_exit_code_1(tmp_path):
    import subprocess
    import sys

    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "a.wav").write_bytes(b"RIFF")
    proc = subprocess.run([sys.executable, "-m", "tinynas.cli.main", "datasets", "inspect", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "error:" in proc.stderr and "only one class folder ('only')" in proc.stderr
