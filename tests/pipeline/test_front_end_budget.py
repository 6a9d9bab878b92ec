"""A run on an image or WAV folder searches under the arena budget that leaves room for the front end it
generates: the firmware's arena (with its margin) and the front end's buffers both fit the board's budget."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_run import run_cli_output
from PIL import Image

from tinynas.data import load_dataset
from tinynas.deploy.codegen import arena_size_with_margin
from tinynas.errors import SearchError
from tinynas.hardware import load_profile
from tinynas.pipeline.front_end_budget import front_end_ram, reserve_front_end
from tinynas.pipeline.rundir import loads_config
from tinynas.pipeline.settings import RunSettings, resolve


def _pictures(root, n=12, size=12):
    rng = np.random.default_rng(0)
    for label in ("left", "right"):
        (root / label).mkdir(parents=True)
        for i in range(n):
            picture = rng.integers(0, 90, size=(size, size)).astype(np.uint8)
            picture[:, : size // 2] += 150 if label == "left" else 0
            picture[:, size // 2:] += 150 if label == "right" else 0
            Image.fromarray(picture).save(root / label / f"{i}.png")
    return root


def _clips(root):
    from scipy.io import wavfile

    t = np.arange(16000) / 16000
    for label, hz in (("low", 300), ("high", 2000)):
        (root / label).mkdir(parents=True)
        for i in range(6):
            wavfile.write(root / label / f"{i}.wav", 16000, (8000 * np.sin(2 * np.pi * (hz + 10 * i) * t)).astype(np.int16))
    return root


def test_the_arena_budget_leaves_room_for_the_smallest_front_end_beside_the_arena_and_its_margin(tmp_path):
    board = load_profile("nucleo-l010rb")
    images = load_dataset(str(_pictures(tmp_path / "pics")))
    ram, what = front_end_ram(images)
    assert ram == 440 and "12x12" in what  # the image front end for frames of the model's own size
    reserved = reserve_front_end(board, images)
    budget, arena = board.sram_budget_bytes, reserved.sram_budget_bytes
    assert (budget, arena, reserved.front_end_reserve_bytes) == (14_336, 12_864, 1_472)
    # the largest arena whose firmware array and the front end fit the board's budget
    assert arena_size_with_margin(arena) + ram <= budget < arena_size_with_margin(arena + 1) + ram
    # the audio front end's fixed buffers
    clips = load_dataset(str(_clips(tmp_path / "wavs")))
    assert front_end_ram(clips)[0] == 4260
    assert reserve_front_end(board, clips).sram_budget_bytes == 14_336 - 4_260 - 1_024 - 12
    # nothing to set aside: a dataset without a front end, a board that is not a microcontroller
    assert reserve_front_end(board, load_dataset("digits")) is board
    assert reserve_front_end(load_profile("rpi4"), images).sram_budget_bytes == load_profile("rpi4").sram_budget_bytes


def test_a_space_that_takes_the_pictures_at_another_resolution_sets_aside_the_resize_too(tmp_path):
    """mcunet's resolution choice: the front end resizes the 12x12 pictures again, to 16x16 or 24x24, with
    two more picture rows, which deploy counts (``static_ram_bytes(model_size=...)``) and the run sets aside."""
    from tinynas.deploy.image_frontend import static_ram_bytes

    pics = str(_pictures(tmp_path / "pics"))
    images = load_dataset(pics)
    ram, what = front_end_ram(images, resized=True)
    assert ram == 440 + 2 * 12 * 1 == static_ram_bytes(height=12, width=12, channels=1, max_source=(12, 12),
                                                         model_size=(16, 16))
    assert "resize to the model's resolution" in what
    budget = 14_336
    mcunet = resolve(RunSettings(profile="nucleo-l010rb", dataset=pics, space="mcunet")).profile
    arena = mcunet.sram_budget_bytes
    assert arena_size_with_margin(arena) + ram <= budget < arena_size_with_margin(arena + 1) + ram
    assert arena < resolve(RunSettings(profile="nucleo-l010rb", dataset=pics, space="dscnn")).profile.sram_budget_bytes


def test_space_sample_and_fit_on_a_dataset_search_the_budget_run_searches(tmp_path):
    """`space sample/fit --dataset` take the shape from the data and, on a microcontroller, the budget `run`
    would search under: the board's less its front end's share."""
    from click.testing import CliRunner

    from tinynas.cli.main import cli
    from tinynas.cost import estimate
    from tinynas.space import Arch, get_space

    pics = str(_pictures(tmp_path / "pics"))
    run_budget = resolve(RunSettings(profile="nucleo-l010rb", dataset=pics, space="mcunet")).profile
    fit = CliRunner().invoke(cli, ["space", "fit", "--dataset", pics, "-p", "nucleo-l010rb", "--samples", "5"])
    assert fit.exit_code == 0, fit.output
    assert f"arena budget {run_budget.sram_budget_bytes:,} B: {run_budget.front_end_reserve_bytes:,} B" in fit.output

    rows = CliRunner().invoke(cli, ["space", "sample", "--space", "dscnn", "--dataset", pics, "-p", "nucleo-l010rb",
                                    "--n", "40", "--json"])
    assert rows.exit_code == 0, rows.output
    space = get_space("dscnn", input_shape=(12, 12, 1), num_classes=2)
    board = load_profile("nucleo-l010rb")
    reserved = reserve_front_end(board, load_dataset(pics))
    graphs = [space.graph(Arch.from_json(json.loads(line)["arch"])) for line in rows.output.splitlines()]
    fits = [json.loads(line)["cost"]["fits"] for line in rows.output.splitlines()]
    assert fits == [estimate(g, profile=reserved).fits for g in graphs]
    assert fits != [estimate(g, profile=board).fits for g in graphs], "the test needs an arch only the full board fits"


def test_a_board_the_front_end_leaves_no_arena_is_refused_with_the_fix(tmp_path):
    tiny = load_profile("nucleo-l010rb").with_budgets(arena_budget_bytes=5_000)
    clips = load_dataset(str(_clips(tmp_path / "wavs")))
    with pytest.raises(SearchError, match=r"nucleo-l010rb's arena budget of 5,000 B cannot hold the audio front end "
                                          r"\(1024-point FFT, 40 mel bins\), 4,260 B .* --arena-budget N"):
        reserve_front_end(tiny, clips)


def test_an_arena_budget_from_the_command_line_is_the_users_to_share_out(tmp_path):
    pics = str(_pictures(tmp_path / "pics"))
    given = resolve(RunSettings(profile="nucleo-l010rb", dataset=pics, space="dscnn", arena_budget_bytes=12_000))
    assert given.profile.sram_budget_bytes == 12_000 and given.profile.front_end_reserve_bytes == 0
    assert resolve(RunSettings(profile="nucleo-l010rb", dataset=pics, space="dscnn")).profile.sram_budget_bytes == 12_864


@pytest.mark.slow
def test_a_run_on_a_tight_board_reports_the_share_and_ships_a_front_end_that_fits(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    code, printed, err = run_cli_output(
        monkeypatch, capsys, "run", "--profile", "nucleo-l010rb", "--dataset", str(_pictures(tmp_path / "pics")),
        "--space", "dscnn", "--budget-candidates", "2", "--search-epochs", "1", "--final-epochs", "1",
        "--final-top-k", "1", "--no-progress", "--no-qat", "--out", str(out))
    assert code == 0, err[-3000:]
    assert ("budget     arena 12,864 B: 1,472 B of the board's 14,336 B set aside for the front end and the arena's "
            "margin beside it") in printed, printed
    profile = loads_config((out / "config.toml").read_text(), where="config.toml")["profile"]
    assert (profile["sram_budget_bytes"], profile["front_end_reserve_bytes"]) == (12_864, 1_472)
    metrics = json.loads((out / "model" / "metrics.json").read_text())
    record = metrics["front_end"]
    assert metrics["arena_bytes"] <= 12_864 and record["fits"] is True
    # the room deploy sizes the frames for is the board's whole budget less the firmware's arena
    assert record["room_bytes"] == 14_336 - arena_size_with_margin(metrics["arena_bytes"]) >= 440
    assert "(budget 12,864; 1,472 more set aside for the front end and the arena's margin)" in (
        out / "report.md").read_text()
    # estimate of the deployed model counts the front end beside its arena, as the run budgeted them
    from click.testing import CliRunner

    from tinynas.cli.main import cli

    est = CliRunner().invoke(cli, ["estimate", str(out / "model" / "model_int8.tflite"), "-p", "nucleo-l010rb",
                                   "--json"])
    assert est.exit_code == 0, est.output
    est = json.loads(est.output)
    assert est["arena_bytes"] == metrics["arena_bytes"] and est["front_end"]["file"] == "image_frontend.c"
    assert est["checks"][0]["need"] == metrics["arena_bytes"] + record["static_ram_bytes"]
