"""tinynas.deploy.validate: int8 accuracy in TFLM, the exact arena, budgets and the does-not-fit message."""

from __future__ import annotations

import pytest

from _deploy_support import digits, digits_int8, make_profile
from tinynas.deploy.arena import measure_arena_bytes
from tinynas.deploy.validate import ValidationReport, does_not_fit_message, raise_if_not_fits, validate_int8
from tinynas.errors import DoesNotFitError, ModelFileError


@pytest.fixture(scope="module")
def arena_bytes() -> int:
    return measure_arena_bytes(digits_int8())

pytestmark = pytest.mark.usefixtures("deploy_digits_model")


def test_report_on_a_roomy_board(arena_bytes):
    data = digits_int8()
    report = validate_int8(data, dataset=digits(), profile=make_profile(), float_accuracy=0.97)
    assert report.arena_bytes == arena_bytes  # the interpreter's own figure, not an estimate
    assert report.flash_bytes == len(data)
    assert report.num_test_samples == len(digits().y_test)
    assert 0.85 < report.int8_accuracy <= 1.0
    assert report.accuracy_drop == pytest.approx(0.97 - report.int8_accuracy)
    assert report.fits
    assert report.check("sram").budget == 240 * 1024 and report.check("flash").budget == 928 * 1024
    assert ValidationReport.from_json(report.to_json()) == report
    raise_if_not_fits(report, profile=make_profile())  # no error


def test_does_not_fit_lists_each_budget_need_and_difference(arena_bytes):
    data = digits_int8()
    # SRAM budget 1 KiB below the arena; flash budget 100 bytes above the model.
    tiny = make_profile(id="tiny-board", sram_bytes=arena_bytes + 1024 - 1024, reserved_sram_bytes=1024,
                        flash_bytes=len(data) + 100 + 4096, runtime_flash_bytes=4096)
    report = validate_int8(data, dataset=digits(), profile=tiny, float_accuracy=None, max_samples=20,
                           arena_bytes=arena_bytes)
    assert report.num_test_samples == 20
    assert not report.check("sram").fits and report.check("flash").fits and not report.fits
    with pytest.raises(DoesNotFitError) as info:
        raise_if_not_fits(report, profile=tiny, where="/tmp/somewhere")
    msg = str(info.value)
    assert "tiny-board" in msg
    assert f"need {arena_bytes:,} B" in msg
    assert f"budget {arena_bytes - 1024:,} B" in msg
    assert "over by 1,024 B (1.0 KiB)" in msg
    assert f"need {len(data):,} B" in msg and "fits with 100 B (0.1 KiB) to spare" in msg
    assert "reserved for the firmware" in msg and "for the runtime code" in msg
    assert "/tmp/somewhere" in msg
    assert msg == does_not_fit_message(report, profile=tiny, where="/tmp/somewhere")


def test_float_model_is_refused():
    from _deploy_support import float_only_tflite

    with pytest.raises(ModelFileError, match="int8"):
        validate_int8(float_only_tflite(), dataset=digits(), profile=make_profile(), float_accuracy=None)
