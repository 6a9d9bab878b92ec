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
from pathlib import Path

import pytest
import serial

from tinynas.resources import data_dir

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
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no host C compiler (gcc/cc) on PATH")
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
    assert board.ask("results%") == ["e-[no results yet]", "m-ready"]
    data = bytes(range(7, 7 + INPUT_BYTES))
    assert board.ask(f"db load {INPUT_BYTES}%") == [f"m-[Expecting {INPUT_BYTES} bytes]", "m-ready"]
    chunks = _hex_chunks(data)
    assert len(chunks) == 2
    assert board.ask(chunks[0]) == ["m-ready"]  # nothing until the last byte arrives
    assert board.ask(chunks[1].upper().replace("DB", "db")) == ["m-load-done", "m-ready"]  # upper-case hex is hex

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


@pytest.mark.parametrize("command", ["infer 0 1%", "infer x 1%", "infer 1 -1%", "infer 1 2 3%"])
def test_infer_argument_errors(board, command):
    board.read_answer()
    assert board.ask(command) == ["e-[bad infer args]", "m-ready"]
    assert board.ask("results%") == ["e-[no results yet]", "m-ready"]


def test_commands_split_across_writes_byte_by_byte(board):
    board.read_answer()
    for ch in "name":
        board.port.write(ch.encode())
        board.port.flush()
    board.port.write(b"%")
    assert board.read_answer() == ["m-name-dut-[tinynas]", "m-ready"]


@pytest.mark.parametrize("cpu", ["cortex-m0plus", "cortex-m4"])
def test_protocol_compiles_for_cortex_m(tmp_path, cpu):
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        pytest.skip("arm-none-eabi-gcc missing: apt-get install gcc-arm-none-eabi")
    obj = tmp_path / f"protocol_{cpu}.o"
    subprocess.run([gcc, "-std=c99", f"-mcpu={cpu}", "-mthumb", "-Os", "-Wall", "-Wextra", "-Werror",
                    "-pedantic", "-ffreestanding", "-c", str(COMMON / "tinynas_protocol.c"), "-o", str(obj)],
                   check=True, capture_output=True, text=True)
    assert obj.stat().st_size > 0
    # no libc beyond string.h: no printf family, no malloc
    nm = shutil.which("arm-none-eabi-nm")
    if nm:
        undefined = subprocess.run([nm, "-u", str(obj)], check=True, capture_output=True, text=True).stdout
        names = {line.split()[-1] for line in undefined.splitlines() if line.strip()}
        assert not {n for n in names if "printf" in n or "alloc" in n}, names
