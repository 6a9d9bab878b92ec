"""The plain-C serial protocol (firmware_templates/common/tinynas_protocol.c), built with the
host compiler against a stub inference and spoken to over a pseudo-terminal with pyserial.

Also builds it with arm-none-eabi-gcc for the smallest and a mid-size Cortex-M, since every
firmware project compiles this same file unchanged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tty
import zlib
from pathlib import Path

import pytest
import serial

from tinynas.resources import data_dir

from _firmware_tools import require_tool

HERE = Path(__file__).resolve().parent
COMMON = data_dir("firmware_templates") / "common"
INPUT_BYTES = 40
OUTPUT_COUNT = 5
US_PER_INFERENCE = 1500  # STUB_US_PER_INFERENCE in host_stub_main.c
MODEL_ID = "3fa2c1d0e9b8"
EXTENSION = (f"m-tinynas-[arena_used_bytes=23940,model_id={MODEL_ID},"
             f"input_bytes={INPUT_BYTES},output_bytes={OUTPUT_COUNT}]")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX only")


def _stub_outputs(data: bytes) -> list[str]:
    """What the stub inference prints for ``data``: q_i = (sum + 31 i) mod 256 as int8, 1/256, zp -128."""
    total = sum(data)
    values = []
    for i in range(OUTPUT_COUNT):
        q = (total + 31 * i) & 0xFF
        q = q - 256 if q > 127 else q
        values.append(f"{(q + 128) / 256:.6f}")
    return values


@pytest.fixture(scope="module")
def stub_exe(tmp_path_factory) -> Path:
    cc = require_tool("gcc")
    out = tmp_path_factory.mktemp("protocol") / "host_stub"
    subprocess.run(
        [cc, "-std=c99", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Werror", "-pedantic",
         f"-I{COMMON}", str(COMMON / "tinynas_protocol.c"), str(HERE / "host_stub_main.c"), "-o", str(out)],
        check=True, capture_output=True, text=True,
    )
    return out


class Board:
    """A firmware process speaking on a pseudo-terminal: the process owns the master, pyserial the slave."""

    def __init__(self, argv: list[str]) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo or CR/LF mangling before pyserial opens the port
        # Open the port before the board boots: pyserial flushes pending input when it opens.
        self.port = serial.Serial(os.ttyname(self.slave), baudrate=115200, timeout=5)
        self.proc = subprocess.Popen(argv, stdin=self.master, stdout=self.master, close_fds=True)

    def read_answer(self) -> list[str]:
        """Lines up to and including ``m-ready``; fails on a timeout instead of hanging."""
        return read_answer(self.port)

    def ask(self, command: str) -> list[str]:
        self.port.write(command.encode("ascii"))
        return self.read_answer()

    def close(self) -> None:
        self.port.close()
        os.close(self.slave)
        try:
            self.proc.wait(timeout=5)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            os.close(self.master)


def read_answer(port: serial.Serial) -> list[str]:
    lines = []
    while True:
        raw = port.readline()
        assert raw.endswith(b"\r\n"), f"timed out or bad line ending after {lines}: {raw!r}"
        line = raw[:-2].decode("ascii")
        lines.append(line)
        if line == "m-ready":
            return lines


@pytest.fixture
def board(stub_exe):
    b = Board([str(stub_exe), str(INPUT_BYTES), str(OUTPUT_COUNT)])
    yield b
    b.close()


def _hex_chunks(data: bytes, size: int = 31) -> list[str]:
    return [f"db {data[i:i + size].hex()}%" for i in range(0, len(data), size)]


def test_boot_banner_then_name_and_profile(board):
    assert board.read_answer() == ["m-timestamp-mode-performance", EXTENSION, "m-init-done", "m-ready"]
    assert board.ask("name%") == ["m-name-dut-[tinynas]", "m-ready"]
    assert board.ask("profile%") == ["m-profile-[tinynas]", f"m-model-[{MODEL_ID}]", EXTENSION, "m-ready"]


def test_upload_in_31_byte_chunks_then_infer_and_results(board):
    board.read_answer()
    assert board.ask("results%") == ["m-ready"]  # no inference yet: no last results line
    assert board.ask("db crc%") == ["e-[db crc no data]", "m-ready"]
    data = bytes(range(7, 7 + INPUT_BYTES))
    assert board.ask(f"db load {INPUT_BYTES}%") == [f"m-[Expecting {INPUT_BYTES} bytes]", "m-ready"]
    chunks = _hex_chunks(data)
    assert len(chunks) == 2
    assert board.ask(chunks[0]) == ["m-ready"]  # nothing until the last byte arrives
    assert board.ask(chunks[1].upper().replace("DB", "db")) == ["m-load-done", "m-ready"]  # upper-case hex is hex
    assert board.ask("db crc%") == [f"m-crc-[{zlib.crc32(data):08x}]", "m-ready"]

    answer = board.ask("infer 10 3%")
    assert answer[:3] == ["m-warmup-start-3", "m-warmup-done", "m-infer-start-10"]
    t0 = int(answer[3].removeprefix("m-lap-us-"))
    t1 = int(answer[4].removeprefix("m-lap-us-"))
    assert answer[3].startswith("m-lap-us-") and answer[4].startswith("m-lap-us-")
    assert (t1 - t0) / 10 == US_PER_INFERENCE
    assert answer[5] == "m-infer-done"
    expected = "m-results-[" + ",".join(_stub_outputs(data)) + "]"
    assert answer[6:] == [expected, "m-ready"]
    assert board.ask("results%") == [expected, "m-ready"]

    # A second upload replaces the input; the results follow it.
    other = bytes([255] * INPUT_BYTES)
    board.ask(f"db load {INPUT_BYTES}%")
    for chunk in _hex_chunks(other)[:-1]:
        board.ask(chunk)
    assert board.ask(_hex_chunks(other)[-1]) == ["m-load-done", "m-ready"]
    answer = board.ask("infer 1 0%")
    assert answer[0] == "m-warmup-start-0"
    assert answer[-2] == "m-results-[" + ",".join(_stub_outputs(other)) + "]"


def test_partial_upload_of_fewer_bytes_than_the_buffer(board):
    board.read_answer()
    assert board.ask("db load 3%") == ["m-[Expecting 3 bytes]", "m-ready"]
    assert board.ask("db 0a0b0c%") == ["m-load-done", "m-ready"]


@pytest.mark.parametrize("size", ["0", str(INPUT_BYTES + 1), "12x", "", "-4", "99999999999999999999999"])
def test_db_load_size_errors(board, size):
    board.read_answer()
    assert board.ask(f"db load {size}%".replace("  ", " ")) == ["e-[db load size]", "m-ready"]


def test_bad_hex_discards_the_partial_upload(board):
    board.read_answer()
    board.ask("db load 4%")
    assert board.ask("db 0102%") == ["m-ready"]
    assert board.ask("db 0g%") == ["e-[bad hex]", "m-ready"]  # non-hex character
    # the upload was discarded: more data needs a new `db load`
    assert board.ask("db 0304%") == ["e-[db load first]", "m-ready"]
    board.ask("db load 4%")
    assert board.ask("db 123%") == ["e-[bad hex]", "m-ready"]  # odd length
    board.ask("db load 4%")
    assert board.ask("db 0102030405%") == ["e-[db too many bytes]", "m-ready"]
    board.ask("db load 2%")
    assert board.ask("db%") == ["e-[bad hex]", "m-ready"]


def test_too_long_and_unknown_commands(board):
    board.read_answer()
    assert board.ask("x" * 81 + "%") == ["e-[command too long]", "m-ready"]
    assert board.ask("db " + "00" * 60 + "%") == ["e-[command too long]", "m-ready"]
    # exactly 80 characters is still a command (an unknown one)
    assert board.ask("y" * 80 + "%") == [f"e-[unknown command: {'y' * 80}]", "m-ready"]
    assert board.ask("hello world%") == ["e-[unknown command: hello world]", "m-ready"]
    assert board.ask("NAME%") == ["e-[unknown command: NAME]", "m-ready"]
    # the protocol keeps working afterwards, and line endings between commands are ignored
    assert board.ask("\r\nname%") == ["m-name-dut-[tinynas]", "m-ready"]


@pytest.mark.parametrize("command", ["infer%", "infer 0 1%", "infer x 1%", "infer 1 -1%", "infer 1 2 3%",
                                     "infer 99999999999999999999999 1%"])
def test_infer_argument_errors(board, command):
    board.read_answer()
    assert board.ask(command) == ["e-[infer needs N >= 1 and W >= 0]", "m-ready"]
    assert board.ask("results%") == ["m-ready"]


def test_infer_warmups_default_to_ten_as_in_mlperf(board):
    board.read_answer()
    answer = board.ask("infer 4%")
    assert answer[:3] == ["m-warmup-start-10", "m-warmup-done", "m-infer-start-4"]
    t0, t1 = (int(line.removeprefix("m-lap-us-")) for line in answer[3:5])
    assert t1 - t0 == 4 * US_PER_INFERENCE
    assert answer[-2] == "m-results-[" + ",".join(_stub_outputs(bytes(INPUT_BYTES))) + "]"  # never loaded: zeros


def test_crc_covers_the_last_complete_upload_only(board):
    board.read_answer()
    first = bytes([1, 2, 3])
    board.ask("db load 3%")
    assert board.ask(f"db {first.hex()}%") == ["m-load-done", "m-ready"]
    board.ask("db load 4%")
    board.ask("db 0909%")  # half of a second upload ...
    assert board.ask("db crc%") == [f"m-crc-[{zlib.crc32(first):08x}]", "m-ready"]
    assert board.ask("db 0909%") == ["m-load-done", "m-ready"]  # ... completed
    assert board.ask("db crc%") == [f"m-crc-[{zlib.crc32(bytes([9, 9, 9, 9])):08x}]", "m-ready"]


def test_commands_split_across_writes_byte_by_byte(board):
    board.read_answer()
    for ch in "name":
        board.port.write(ch.encode())
        board.port.flush()
    board.port.write(b"%")
    assert board.read_answer() == ["m-name-dut-[tinynas]", "m-ready"]


@pytest.mark.parametrize("cpu", ["cortex-m0plus", "cortex-m4"])
def test_protocol_compiles_for_cortex_m(tmp_path, cpu):
    gcc = require_tool("arm-none-eabi-gcc")
    obj = tmp_path / f"protocol_{cpu}.o"
    subprocess.run([gcc, "-std=c99", f"-mcpu={cpu}", "-mthumb", "-Os", "-Wall", "-Wextra", "-Werror",
                    "-pedantic", "-ffreestanding", "-c", str(COMMON / "tinynas_protocol.c"), "-o", str(obj)],
                   check=True, capture_output=True, text=True)
    assert obj.stat().st_size > 0
    nm = require_tool("arm-none-eabi-nm")
    undefined = subprocess.run([nm, "-u", str(obj)], check=True, capture_output=True, text=True).stdout
    names = {line.split()[-1] for line in undefined.splitlines() if line.strip()}
    # nothing from libc beyond <string.h>: no printf family, no malloc (__aeabi_*: the compiler's runtime)
    assert {n for n in names if not n.startswith("__aeabi_")} <= {"strlen", "strcmp", "memcpy", "memset"}, names


def test_the_measure_host_client_drives_the_c_protocol(stub_exe):
    """tinynas.measure's host side against this firmware file: boot, identify, upload with CRC, infer."""
    from tinynas.measure.protocol import DeviceClient

    b = Board([str(stub_exe), str(INPUT_BYTES), str(OUTPUT_COUNT)])
    try:
        client = DeviceClient(b.port, port_name="host-stub", timeout_s=5.0)
        assert client.wait_boot(timeout_s=5.0)
        info = client.identify()
        assert info.model_id == MODEL_ID and info.input_bytes == INPUT_BYTES and info.arena_used_bytes == 23940
        data = bytes(range(100, 100 + INPUT_BYTES))
        client.upload(data)
        assert client.crc_supported is True
        result = client.infer(count=10, warmup=2, timeout_s=5.0)
        assert result.latency_us == US_PER_INFERENCE
        assert [f"{v:.6f}" for v in result.results] == _stub_outputs(data)
    finally:
        b.close()


# ---------------------------------------------------------------------------------------------
# The same protocol inside real firmware code: the shared TFLM runner, and the bare-metal template.

KWS_OUT_SCALE, KWS_OUT_ZERO_POINT = 0.00390625, -128


def kws_stub_session(port: serial.Serial, upload: bytes) -> list[str]:
    """Boot banner, ``name%``, an upload of ``upload`` and ``infer 20 2%`` against the stub KWS firmware;
    returns the infer answer after checking its shape and outputs (shared by the QEMU tests)."""
    assert read_answer(port) == [
        "m-timestamp-mode-performance",
        "m-tinynas-[arena_used_bytes=0,model_id=kws01,input_bytes=490,output_bytes=12]",
        "m-init-done", "m-ready"]
    port.write(b"name%")
    assert read_answer(port) == ["m-name-dut-[tinynas]", "m-ready"]
    port.write(b"db load 490%")
    assert read_answer(port) == ["m-[Expecting 490 bytes]", "m-ready"]
    for chunk in _hex_chunks(upload):
        port.write(chunk.encode())
        answer = read_answer(port)
    assert answer == ["m-load-done", "m-ready"]
    port.write(b"infer 20 2%")
    answer = read_answer(port)
    assert answer[:3] == ["m-warmup-start-2", "m-warmup-done", "m-infer-start-20"]
    assert answer[-2] == _kws_outputs(upload)
    return answer


def _kws_outputs(data: bytes, count: int = 12) -> str:
    total = sum(data)
    values = []
    for i in range(count):
        q = (total + 31 * i) & 0xFF
        q = q - 256 if q > 127 else q
        values.append(f"{(q - KWS_OUT_ZERO_POINT) * KWS_OUT_SCALE:.6f}")
    return "m-results-[" + ",".join(values) + "]"


def _build_kws_runner(src: Path, main: Path, exe: Path) -> Path:
    """tinynas_runner.cc and the protocol beside the KWS model sources in ``src``, linked with the host ``main``
    against fake_tflm's interpreter (KWS tensors: 490 input bytes, 12 outputs)."""
    gxx, gcc = require_tool("g++"), require_tool("gcc")
    for name in ("tinynas_protocol.h", "tinynas_protocol.c", "tinynas_runner.h", "tinynas_runner.cc"):
        shutil.copy(COMMON / name, src / name)
    proto_obj = exe.with_suffix(".protocol.o")
    subprocess.run([gcc, "-std=c99", "-Wall", "-Werror", "-c", str(src / "tinynas_protocol.c"), "-o", str(proto_obj)],
                   check=True)
    subprocess.run([gxx, "-std=c++17", "-Wall", "-Wextra", "-Werror", "-DFAKE_INPUT_BYTES=490",
                    "-DFAKE_OUTPUT_BYTES=12", "-I", str(src), "-I", str(HERE / "fake_tflm"),
                    str(src / "tinynas_runner.cc"), str(src / "model_data.cc"), str(main), str(proto_obj),
                    "-o", str(exe)], check=True, capture_output=True, text=True)
    return exe


@pytest.mark.parametrize("raw", [[0.25], [3.0, -1.5, 0.5], [40.0, -40.0]])
def test_the_runner_runs_the_model_on_an_applications_own_input(tmp_path, mlperf_models, raw):
    """Past measuring: an application fills tinynas_runner_input() with QuantizeRawInput, invokes, and reads
    the top class and its dequantized score; against fake_tflm's interpreter, whose outputs are known."""
    import numpy as np

    from tinynas.deploy.codegen import write_model_sources
    from tinynas.deploy.interpreter import read_model_io

    data = mlperf_models["kws"].read_bytes()
    labels = [f"word{i}" for i in range(12)]
    src = tmp_path / "src"
    write_model_sources(model_bytes=data, out_dir=src, class_names=labels, arena_bytes=24_272, model_id="kws01",
                        raw_scaling=(0.5, 1.0))
    exe = _build_kws_runner(src, HERE / "host_app_main.cc", tmp_path / "app")
    done = subprocess.run([str(exe), *map(str, raw)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done
    io = read_model_io(data).input
    values = np.resize(np.asarray(raw, dtype=np.float32) * np.float32(0.5) + np.float32(1.0), 490)
    q = np.clip(np.round(values.astype(np.float64) / io.scale) + io.zero_point, -128, 127).astype(np.int8)
    total = int(q.view(np.uint8).astype(np.int64).sum())  # the fake Invoke(): output i = (sum + 31 i) mod 256
    out = np.array([((total + 31 * i) & 0xFF) for i in range(12)], dtype=np.uint8).view(np.int8)
    scores = (out.astype(np.float32) - KWS_OUT_ZERO_POINT) * np.float32(KWS_OUT_SCALE)
    best = int(np.argmax(scores))
    assert done.stdout.split() == [str(best), labels[best], f"{scores[best]:.6f}"]


def test_tflm_runner_glue_over_a_pty(tmp_path, mlperf_models):
    """tinynas_runner.cc + generated model sources + protocol, against fake_tflm's interpreter."""
    from tinynas.deploy.codegen import write_model_sources
    from tinynas.space.tflite_reader import tflite_info

    data = mlperf_models["kws"].read_bytes()
    out = tflite_info(data).outputs[0]
    assert (out.scale, out.zero_point) == (KWS_OUT_SCALE, KWS_OUT_ZERO_POINT)
    src = tmp_path / "src"
    write_model_sources(model_bytes=data, out_dir=src, class_names=[], arena_bytes=24_272, model_id="kws01")
    exe = _build_kws_runner(src, HERE / "host_runner_main.cc", tmp_path / "runner")
    b = Board([str(exe)])
    try:
        boot = b.read_answer()
        assert boot == ["m-timestamp-mode-performance",
                        "m-tinynas-[arena_used_bytes=1502,model_id=kws01,input_bytes=490,output_bytes=12]",
                        "m-init-done", "m-ready"]
        upload = bytes((i * 7 + 3) & 0xFF for i in range(490))
        assert b.ask("db load 490%") == ["m-[Expecting 490 bytes]", "m-ready"]
        chunks = _hex_chunks(upload)
        for chunk in chunks[:-1]:
            assert b.ask(chunk) == ["m-ready"]
        assert b.ask(chunks[-1]) == ["m-load-done", "m-ready"]
        assert b.ask("db crc%") == [f"m-crc-[{zlib.crc32(upload):08x}]", "m-ready"]
        # The fake Invoke() overwrites its input like TFLM may: every inference must get the upload again.
        answer = b.ask("infer 3 2%")
        t0, t1 = (int(line.removeprefix("m-lap-us-")) for line in answer[3:5])
        assert t1 >= t0
        assert answer[-2] == _kws_outputs(upload)
        assert b.ask("results%") == [_kws_outputs(upload), "m-ready"]
    finally:
        b.close()


def _qemu_profile():
    """A profile for QEMU's lm3s6965evb: TI Stellaris LM3S6965, Cortex-M3, 256 KiB flash, 64 KiB SRAM."""
    import dataclasses

    from tinynas.hardware import load_profile

    base = load_profile("nucleo-l4r5zi")
    return dataclasses.replace(base, id="qemu-lm3s6965evb", name="QEMU lm3s6965evb", core="cortex-m3", fpu=False,
                               clock_hz=12_000_000, sram_bytes=65_536, flash_bytes=262_144,
                               ecosystem=dataclasses.replace(base.ecosystem, cmake_cpu="cortex-m3"))


@pytest.mark.slow
def test_cmake_cortexm_template_on_qemu(tmp_path, mlperf_models):
    """The bare-metal template's own start-up, linker script, UART and timer, built with CMake for
    the stub inference and run under qemu-system-arm; the host speaks to it over QEMU's pty."""
    import re
    import time

    from tinynas.deploy.firmware import generate_firmware

    for tool in ("qemu-system-arm", "cmake", "arm-none-eabi-gcc", "arm-none-eabi-g++"):
        require_tool(tool)
    data = mlperf_models["kws"].read_bytes()
    project = generate_firmware(template="cmake-cortexm", model_bytes=data, profile=_qemu_profile(),
                                out_dir=tmp_path / "fw", class_names=[], arena_bytes=24_272, model_id="kws01")
    build = tmp_path / "build"
    subprocess.run(["cmake", "-S", str(project), "-B", str(build), "-DCMAKE_TOOLCHAIN_FILE=cmake/arm-none-eabi.cmake",
                    "-DTINYNAS_PROTOCOL_ONLY=ON", "-DFLASH_ORIGIN=0x0", "-DTINYNAS_TIMER=systick"],
                   check=True, capture_output=True, text=True, cwd=project)
    subprocess.run(["cmake", "--build", str(build)], check=True, capture_output=True, text=True)
    elf = build / "tinynas_qemu_lm3s6965evb.elf"
    # -S: start paused, so nothing is sent before the port is open; "cont" on the monitor starts it.
    qemu = subprocess.Popen(["qemu-system-arm", "-M", "lm3s6965evb", "-icount", "shift=4", "-display", "none", "-S",
                             "-monitor", "stdio", "-serial", "pty", "-kernel", str(elf)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        pty_path = None
        deadline = time.monotonic() + 20
        while pty_path is None and time.monotonic() < deadline:
            line = qemu.stdout.readline()
            match = re.search(r"(/dev/pts/\d+)", line)
            pty_path = match.group(1) if match else None
        assert pty_path, "qemu did not report its serial pty"
        port = serial.Serial(pty_path, baudrate=115200, timeout=10)
        try:
            qemu.stdin.write("cont\n")
            qemu.stdin.flush()
            answer = kws_stub_session(port, bytes(range(256)) + bytes(234))
            t0, t1 = (int(line.removeprefix("m-lap-us-")) for line in answer[3:5])
            assert t1 >= t0  # SysTick under QEMU: increasing, not a real latency
            port.write(b"db 0g%")
            assert read_answer(port) == ["e-[db load first]", "m-ready"]
            port.write(b"bogus%")
            assert read_answer(port) == ["e-[unknown command: bogus]", "m-ready"]
        finally:
            port.close()
    finally:
        qemu.kill()
        qemu.wait(timeout=10)
