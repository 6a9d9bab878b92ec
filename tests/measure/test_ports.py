"""Opening ports and recognising devices: no such port, busy, auto by USB ids, a device that
speaks something else, MLPerf Tiny firmware without the tinynas extension."""

from __future__ import annotations

import os
import threading
import tty

import pytest
import serial

from tinynas.errors import MeasureError
from tinynas.measure.ports import PortCandidate, find_port, open_port
from tinynas.measure.runner import measure_latency


def test_no_such_port():
    with pytest.raises(MeasureError, match=r"no such port '/dev/ttyDOESNOTEXIST'.*--port auto"):
        open_port("/dev/ttyDOESNOTEXIST")


def test_busy_port(emulator, fast):
    emu = emulator()
    holder = serial.Serial(emu.port, exclusive=True)
    try:
        with pytest.raises(MeasureError, match=rf"port {emu.port} is busy"):
            measure_latency(port=emu.port, **fast)
    finally:
        holder.close()


def test_unreachable_url():
    with pytest.raises(MeasureError, match=r"cannot open socket://127\.0\.0\.1:1\b"):
        open_port("socket://127.0.0.1:1")


def test_auto_finds_the_board_by_usb_ids():
    ports = [PortCandidate("/dev/ttyS0", None, None), PortCandidate("/dev/ttyACM0", 0x2341, 0x805A, "Nano 33 BLE"),
             PortCandidate("/dev/ttyUSB0", 0x10C4, 0xEA60, "CP2102")]
    assert find_port([(0x2341, 0x805A)], candidates=ports) == "/dev/ttyACM0"
    with pytest.raises(MeasureError, match=r"no serial port with USB ids 303a:1001; ports seen: .*ttyACM0 \(2341:805a"):
        find_port([(0x303A, 0x1001)], candidates=ports)
    with pytest.raises(MeasureError, match="several ports match"):
        find_port([(0x2341, 0x805A), (0x10C4, 0xEA60)], candidates=ports)
    with pytest.raises(MeasureError, match="lists none"):
        find_port([], candidates=ports)


def test_auto_on_this_machine_says_what_it_saw(profile, fast):
    # No board with the test profile's USB ids is plugged into a CI machine.
    with pytest.raises(MeasureError, match=r"--port auto: no serial port with USB ids 2341:805a; ports seen"):
        measure_latency(port="auto", profile=profile, **fast)


class ForeignDevice:
    """A pseudo-terminal whose 'device' answers every line with a modem's OK (not this protocol)."""

    def __init__(self, answer: bytes | None) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        tty.setraw(self.master)
        self.port = os.ttyname(self.slave)
        self.answer = answer
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        import select

        while not self.stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if ready:
                data = os.read(self.master, 1024)
                if self.answer and b"%" in data:
                    os.write(self.master, self.answer)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        os.close(self.master)
        os.close(self.slave)


@pytest.mark.timeout(30)
def test_device_that_speaks_something_else(fast):
    dev = ForeignDevice(b"OK\r\nAT READY\r\nm-ready\r\n")
    try:
        with pytest.raises(MeasureError, match=rf"{dev.port}: the device answered 'name%' with \['OK', 'AT READY'\]"):
            measure_latency(port=dev.port, **fast)
    finally:
        dev.close()


@pytest.mark.timeout(30)
def test_chatty_device_that_never_says_ready(fast):
    dev = ForeignDevice(b"temperature=21.5\r\n" * 300)
    try:
        with pytest.raises(MeasureError, match=r"200 lines in answer to 'name%' and no 'm-ready' \(first: 'temperature"):
            measure_latency(port=dev.port, **fast)
    finally:
        dev.close()


@pytest.mark.timeout(30)
def test_silent_device(fast):
    dev = ForeignDevice(None)
    try:
        with pytest.raises(MeasureError, match=rf"{dev.port}: no 'm-ready' answer to 'name%'.*baud rate"):
            measure_latency(port=dev.port, **fast)
    finally:
        dev.close()


def test_mlperf_firmware_without_the_extension(emulator, kws_path, fast):
    emu = emulator(mlperf_only=True)
    with pytest.raises(MeasureError, match="does not say its input size.*--model"):
        measure_latency(port=emu.port, **fast)
    report = measure_latency(port=emu.port, model=kws_path, **fast)
    assert report.complete and report.arena_used_bytes is None
    assert not report.upload_checked_by_crc  # e-[unknown command: db crc]: byte count only
    assert report.output_max_diff_int8 == 0


def test_reset_then_boot_banner(emulator, profile_env, caplog, fast):
    # Over TCP the emulator boots on every connection; sockets have no DTR line, so the reset is a
    # no-op there and the runner reads the banner that a real reset would bring.
    from tinynas.hardware import load_profile

    profile_env["write"]("resetboard", 'reset = "none"', 'reset = "dtr"')
    prof = load_profile("resetboard")
    assert prof.serial.reset == "dtr"
    emu = emulator(tcp_port=0, boot_delay_s=0.2)
    with caplog.at_level("INFO", logger="tinynas.measure"):
        report = measure_latency(port=emu.port, profile=prof, **fast)
    assert "cannot pulse DTR" not in caplog.text  # pyserial's socket:// ignores modem lines quietly
    assert "no boot banner" not in caplog.text
    assert report.complete and report.arena_used_bytes == emu.arena_used_bytes
