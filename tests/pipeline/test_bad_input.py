"""Bad input to `tinynas search/run/sweep/report`: each a clear error (exit 1), and nothing written."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from click.testing import CliRunner
from pipeline_helpers import TINY, tiny_settings

from tinynas.cli.main import cli
from tinynas.errors import SearchError


def _fails(args, out, *patterns):
    """Run the CLI as a user would (main() maps TinyNASError to exit 1) and check the message."""
    proc = subprocess.run([sys.executable, "-c", "from tinynas.cli.main import main; main()", *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for pattern in patterns:
        assert pattern in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists(), "a failed start must not create the run directory"
    return proc.stderr


def test_bad_names_and_budgets_in_one_process(tmp_path):
    out = tmp_path / "run"
    # zero budgets
    with pytest.raises(SearchError, match="candidate budget must be at least 1, got 0"):
        tiny_settings(budget_candidates=0)
    with pytest.raises(SearchError, match="more than 0 minutes"):
        tiny_settings(budget_minutes=0)
    runner = CliRunner()
    result = runner.invoke(cli, ["search", "--profile", "nano33ble", "--dataset", "digits", "--budget-candidates",
                                 "0", "--out", str(out)])
    assert isinstance(result.exception, SearchError) and "--budget-candidates N with N >= 1" in str(result.exception)
    # unknown strategy / space list the known ones
    from tinynas.pipeline.settings import resolve

    with pytest.raises(SearchError, match="unknown search strategy 'evolutoin'; known: .*evolution.*staged"):
        resolve(tiny_settings(strategy="evolutoin"))
    with pytest.raises(SearchError, match="unknown search space 'mcunett'; known: dscnn, .*mcunet"):
        resolve(tiny_settings(space="mcunett"))
    assert not out.exists()


def test_unknown_strategy_via_the_cli(tmp_path):
    out = tmp_path / "run"
    _fails(["search", "--profile", "nano33ble", "--dataset", "digits", "--strategy", "bogus", "--out", str(out)],
           out, "unknown search strategy 'bogus'", "random", "staged")


def test_zero_search_samples_is_refused_before_the_run_directory_exists(tmp_path):
    out = tmp_path / "run"  # it used to create the run and fail in the search ("bad training budget")
    _fails(["run", "--profile", "nano33ble", "--dataset", "digits", "--search-samples", "0", "--out", str(out)],
           out, "search_samples (--search-samples) must be at least 1, got 0")


def test_a_firmware_template_that_cannot_build_is_refused_before_the_search(tmp_path, repo_root):
    """Both were found by deploy after the whole search and final training (2.5 min on digits)."""
    out = tmp_path / "run"
    _fails(["run", "--profile", "nano33ble", "--dataset", "digits", "--template", "esp-idf", "--out", str(out)],
           out, "unknown firmware template 'esp-idf': did you mean 'espidf'?")
    typo = tmp_path / "myboard.toml"  # a misspelt core: valid, `profiles validate` only notes it
    typo.write_text((repo_root / "hardware_profiles" / "nano33ble.toml").read_text()
                    .replace('id = "nano33ble"', 'id = "myboard"')
                    .replace('core = "cortex-m4f"', 'core = "cortex-m4x"'))
    _fails(["run", "--profile", str(typo), "--dataset", "digits", "--out", str(out)], out,
           "firmware template 'arduino' cannot build for profile 'myboard' (core cortex-m4x)")


def test_a_space_whose_every_arch_needs_an_op_the_templates_library_lacks_is_refused_before_the_search(tmp_path):
    """nano33ble's arduino template pins Arduino_TensorFlowLite, which has no BATCH_MATMUL kernel: every
    tinyformer winner's project failed to compile there, after the search and the final training."""
    out = tmp_path / "run"
    _fails(["run", "--profile", "nano33ble", "--dataset", "digits", "--space", "tinyformer", "--out", str(out)],
           out, "every arch of space 'tinyformer' uses BATCH_MATMUL, which the TFLite Micro library of firmware "
           "template 'arduino'", "pass --template cmake-cortexm or zephyr")
    _fails(["run", "--profile", "nucleo-l432kc", "--dataset", "digits", "--space", "tinyformer", "--template",
            "platformio", "--out", str(out)], out, "template 'platformio'", "pass --template cmake-cortexm or zephyr")


def test_profile_nothing_fits_names_the_smallest_cost(tmp_path, no_room_profile):
    out = tmp_path / "run"
    err = _fails(["run", "--profile", str(no_room_profile), "--dataset", "digits", "--space", "mcunet", *TINY,
                  "--out", str(out)], out, "no architecture of space 'mcunet' fits board 'no-room'")
    assert re.search(r"needs sram [\d,]+ bytes vs budget 1,024 bytes \(over\)", err)
    assert "pick a board with more room" in err and err.rstrip().endswith("or a smaller input")
    assert "given on the command line" not in err  # the profile's own budget: no flag to raise


def test_camera_size_pictures_nothing_fits_name_the_image_size_option(tmp_path):
    """Pictures as a camera takes them fit no microcontroller: the error names the folder's option."""
    import numpy as np
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp_path / "photos" / label).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(np.full((240, 320, 3), 20 * i, dtype=np.uint8)).save(tmp_path / "photos" / label / f"{i}.png")
    out = tmp_path / "run"
    _fails(["run", "--profile", "nano33ble", "--dataset", str(tmp_path / "photos"), *TINY, "--out", str(out)],
           out, "or a smaller input: -o image_size=32 resizes the 240x320 pictures")
    _fails(["run", "--profile", "nucleo-l010rb", "--dataset", str(tmp_path / "photos"), "-o", "image_size=96",
            *TINY, "--out", str(out)], out, "or a smaller -o image_size than the 96x96 given")


def test_a_command_line_budget_nothing_fits_names_its_flag(tmp_path):
    out = tmp_path / "run"
    err = _fails(["run", "--profile", "nano33ble", "--dataset", "digits", "--arena-budget", "1K", "--latency-ms",
                  "0.001", *TINY, "--out", str(out)], out, "no architecture of space 'dscnn' fits board 'nano33ble'")
    assert re.search(r"latency 0\.\d+ ms vs budget 0\.001 ms \(over\)", err)  # not a budget of "0.0 ms"
    assert "raise --arena-budget and --latency-ms (given on the command line), or pick a board" in err


def test_dataset_the_space_cannot_take(tmp_path):
    out = tmp_path / "run"
    _fails(["search", "--profile", "nano33ble", "--dataset", "mnist1d", "--space", "nasbench201", *TINY,
            "--out", str(out)], out, "space 'nasbench201' cannot take dataset 'mnist1d' (input shape (40, 1))",
           "these take it: dscnn")


def test_report_of_a_folder_that_is_no_run(tmp_path):
    result = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert isinstance(result.exception, SearchError) and "neither a tinynas run" in str(result.exception)


def test_sweep_needs_boards(tmp_path):
    result = CliRunner().invoke(cli, ["sweep", "--dataset", "digits", "--out", str(tmp_path / "s")])
    assert isinstance(result.exception, SearchError) and "--profiles a,b,c or --kind" in str(result.exception)


def test_a_search_only_sweep_refuses_a_qat_choice(tmp_path):
    out = tmp_path / "s"
    result = CliRunner().invoke(cli, ["sweep", "--profiles", "pico", "--dataset", "digits", "--search-only", "--no-qat",
                                      "--out", str(out)])
    assert result.exit_code == 2 and "--no-qat is for deploying" in result.output and not out.exists()


def test_sweep_boards_by_name_or_kind():
    from tinynas.errors import TinyNASError
    from tinynas.pipeline.sweep import sweep_profiles

    assert sweep_profiles(profiles=["pico", " nano33ble"]) == ["pico", "nano33ble"]
    mcus = sweep_profiles(kind="mcu")
    assert "nano33ble" in mcus and "rtx-4090" not in mcus
    with pytest.raises(SearchError, match="names a board twice"):
        sweep_profiles(profiles=["pico", "pico"])
    with pytest.raises(TinyNASError, match="toaster"):
        sweep_profiles(kind="toaster")
