"""The emulator's faults against the measurement code: retries for a garbling link, clear
errors (and kept partial windows) for a hang, a disconnect or a reboot; nothing blocks forever."""

from __future__ import annotations

import json

import pytest

from tinynas.errors import MeasureError
from tinynas.measure.emulator import Fault
from tinynas.measure.runner import MeasurementFailed, measure_latency, report_path


@pytest.mark.parametrize("fault", ["garble", "drop", "garble:1"])
@pytest.mark.timeout(60)
def test_garbled_or_dropped_uploads_are_retried(emulator, kws_path, fault, fast):
    emu = emulator(faults=[fault])
    report = measure_latency(port=emu.port, model=kws_path, **{**fast, "timeout_s": 0.5})
    assert report.complete
    assert report.upload_retries == int(Fault.parse(fault).value)
    # The retried upload is the input the device ran: its outputs match the host interpreter's.
    assert report.output_max_diff_int8 == 0


@pytest.mark.timeout(60)
def test_valid_hex_garble_is_caught_by_the_crc(emulator, kws_path, fast):
    # garble:1 changes one hex digit into another one: only `db crc%` can see it.
    emu = emulator(faults=["garble:1"])
    report = measure_latency(port=emu.port, model=kws_path, **fast)
    assert report.upload_retries == 1 and report.upload_checked_by_crc


@pytest.mark.timeout(60)
def test_slow_link_still_measures(emulator, kws_path, fast):
    emu = emulator(faults=["slow:4000"])
    report = measure_latency(port=emu.port, model=kws_path, **{**fast, "windows": 2})
    assert report.complete and len(report.windows) == 2


@pytest.mark.parametrize("fault, seen", [
    ("hang", r"no answer to 'infer \d+ 1%'.*m-lap-us-\d+"),
    ("disconnect", r"port went away.*m-lap-us-\d+"),
    ("reboot", r"rebooted while answering 'infer \d+ 1%'.*m-timestamp-mode-performance"),
])
@pytest.mark.timeout(30)
def test_mid_window_failure_keeps_partial_windows(emulator, kws_path, tmp_path, fault, seen, fast):
    emu = emulator(faults=[fault])  # in the third infer command: the probe and one window finish
    with pytest.raises(MeasurementFailed, match=seen) as info:
        measure_latency(port=emu.port, model=kws_path, run_dir=tmp_path, **fast)
    assert emu.port in str(info.value)
    partial = info.value.report
    assert not partial.complete and len(partial.windows) == 1 and partial.latency_ms > 0
    written = json.loads(report_path(tmp_path).read_text())
    assert written["complete"] is False and len(written["windows"]) == 1
    assert written["error"] == partial.error


def test_unknown_fault_is_refused():
    with pytest.raises(MeasureError, match="unknown emulator fault 'melt'.*garble"):
        Fault.parse("melt")
    with pytest.raises(MeasureError, match="needs a whole number N >= 1"):
        Fault.parse("hang:soon")


@pytest.mark.parametrize("spec, why", [
    ("slow:nan", "finite rate"), ("slow:inf", "finite rate"), ("slow:-inf", "finite rate"), ("slow:0.5", "finite rate"),
    ("slow:fast", "finite rate"), ("hang:0.5", "whole number"), ("hang:0", "whole number"), ("garble:nan", "whole number"),
    ("drop:-1", "whole number"), ("reboot:1e3", "whole number"), ("disconnect:inf", "whole number"),
    ("stall-timer:0", "whole number"),
])
def test_fault_values_that_could_never_fire_are_refused(spec, why):
    """Issue 11, defect 9: slow:nan printed a traceback and hang:0.5 was taken and never fired."""
    with pytest.raises(MeasureError, match=why):
        Fault.parse(spec)


def test_fault_values_that_fire_are_taken():
    assert Fault.parse("hang:2") == Fault(kind="hang", value=2.0)
    assert Fault.parse("slow:1.5") == Fault(kind="slow", value=1.5)
    assert Fault.parse("stall-timer") == Fault(kind="stall-timer", value=1.0)


def test_emulate_help_names_every_fault():
    from click.testing import CliRunner

    from tinynas.cli.main import cli
    from tinynas.measure.emulator import FAULTS

    text = " ".join(CliRunner().invoke(cli, ["emulate", "--help"]).output.split())
    for kind in FAULTS:
        assert kind in text, kind
