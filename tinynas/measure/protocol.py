"""Host side of the serial benchmarking protocol (docs/protocol.md, MLPerf Tiny runner subset).

``DeviceClient`` talks to one board (or the emulator) over an open pyserial
port: commands and their ``m-``/``e-`` answers, input upload, ``infer``. The
latency runner (``measure/runner.py``) drives it; every read has a deadline.
"""

from __future__ import annotations

import collections
import logging
import re
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from tinynas.errors import MeasureError

log = logging.getLogger(__name__)

#: Lines a board prints only while booting: seeing one mid-command means it rebooted.
BOOT_LINES = ("m-timestamp-mode-performance", "m-init-done")
CHUNK_BYTES = 31  # bytes per `db <hex>%` command, as the MLPerf Tiny runner sends them
MAX_COMMAND_CHARS = 80
MAX_ANSWER_LINES = 200  # an answer is a handful of lines; a device that never says m-ready is not this protocol
TIMER_WRAP_US = 1 << 32  # 32-bit microsecond timers (micros(), DWT-derived) wrap after ~71 minutes
MAX_LINE_BYTES = 4096  # the longest protocol line is m-results for a few hundred classes
QUOTE_CHARS = 160  # how much of one device line an error message quotes


def cut(text: str, limit: int = QUOTE_CHARS) -> str:
    """``text`` for an error message: at most ``limit`` characters, saying how much was left out."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"

_EXT_RE = re.compile(r"^m-tinynas-\[(.*)\]$")
_LAP_RE = re.compile(r"^m-lap-us-(\d+)$")
_RESULTS_RE = re.compile(r"^m-results-\[(.*)\]$")
_CRC_RE = re.compile(r"^m-crc-\[([0-9a-fA-F]{1,8})\]$")
_BRACKET_RE = re.compile(r"^m-([a-z-]+?)-\[(.*)\]$")


class DeviceRebootedError(MeasureError):
    """The board printed its boot banner in the middle of a command (reset, brown-out, watchdog, crash)."""


class DeviceTimeoutError(MeasureError):
    """The board stopped answering within the command's deadline."""


class DeviceDisconnectedError(MeasureError):
    """The port went away (USB unplugged, emulator closed) while talking to the board."""


class ProtocolMismatchError(MeasureError):
    """What came back is not the MLPerf Tiny / tinynas protocol."""


def parse_extension(line: str) -> dict[str, str] | None:
    """``m-tinynas-[arena_used_bytes=23940,model_id=...]`` -> ``{"arena_used_bytes": "23940", ...}``."""
    match = _EXT_RE.match(line)
    if match is None:
        return None
    out: dict[str, str] = {}
    for item in match.group(1).split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


def parse_results(line: str) -> tuple[float, ...] | None:
    """``m-results-[0.000000,0.996094]`` -> the floats; None if the line is not a results line."""
    match = _RESULTS_RE.match(line)
    if match is None:
        return None
    body = match.group(1).strip()
    if not body:
        return ()
    try:
        return tuple(float(v) for v in body.split(","))
    except ValueError:
        return None


@dataclass(frozen=True)
class DeviceInfo:
    """What a board says about itself: ``name%``, ``profile%`` and the tinynas extension line (if any)."""

    port: str
    name: str
    profile: str
    model: str
    extension: dict[str, str] = field(default_factory=dict)

    def _int(self, key: str) -> int | None:
        try:
            return int(self.extension[key])
        except (KeyError, ValueError):
            return None

    @property
    def arena_used_bytes(self) -> int | None:
        return self._int("arena_used_bytes")

    @property
    def input_bytes(self) -> int | None:
        return self._int("input_bytes")

    @property
    def output_bytes(self) -> int | None:
        return self._int("output_bytes")

    @property
    def model_id(self) -> str | None:
        return self.extension.get("model_id")

    def to_json(self) -> dict[str, Any]:
        return {"port": self.port, "name": self.name, "profile": self.profile, "model": self.model,
                "extension": dict(self.extension)}


@dataclass(frozen=True)
class InferResult:
    """One ``infer N W%``: the two timer readings and the outputs of the last inference."""

    count: int
    warmup: int
    t0_us: int
    t1_us: int
    results: tuple[float, ...]

    @property
    def elapsed_us(self) -> int:
        """t1 - t0, allowing for one wrap of a 32-bit microsecond timer."""
        delta = self.t1_us - self.t0_us
        return delta + TIMER_WRAP_US if delta < 0 else delta

    @property
    def stepped_back_us(self) -> int:
        """How far t1 lies before t0 where that is no wrap (under half the 32-bit range), else 0: a
        clock that is not monotonic, which ``elapsed_us`` would read as a 71.6-minute window."""
        back = self.t0_us - self.t1_us
        return back if 0 < back < TIMER_WRAP_US // 2 else 0

    @property
    def latency_us(self) -> float:
        """Microseconds per inference: (t1 - t0) / N, as the MLPerf Tiny runner computes it."""
        return self.elapsed_us / self.count


class DeviceClient:
    """Command/answer over a pyserial port object (``serial.Serial`` or ``serial_for_url``).

    ``port_name`` is only for messages. ``timeout_s`` bounds how long any one
    answer may take; longer commands (``infer``) get their own. ``set_deadline``
    adds an overall deadline that no read passes, however chatty the device is.
    Lines are at most ``MAX_LINE_BYTES`` long, and errors quote at most ``QUOTE_CHARS``
    of each. The last lines the device sent are kept so every error can say what it did last.
    """

    def __init__(self, port: Any, *, port_name: str, timeout_s: float = 5.0) -> None:
        self.port = port
        self.port_name = port_name
        self.timeout_s = float(timeout_s)
        self._buf = bytearray()
        self.recent: collections.deque[str] = collections.deque(maxlen=12)
        self.crc_supported: bool | None = None  # None: not asked yet
        self.boot_extension: dict[str, str] = {}
        self.boot_errors: list[str] = []  # e- lines of the boot banner (a firmware self-check that failed)
        self._deadline: float | None = None
        self._deadline_why = ""
        try:
            self.port.timeout = 0.05
        except Exception:  # pragma: no cover - some URL handlers have a fixed timeout
            pass

    # -- low level ------------------------------------------------------------
    def set_deadline(self, at: float, *, why: str) -> None:
        """No read goes past ``at`` (time.monotonic); ``why`` says in errors where the figure came from."""
        self._deadline, self._deadline_why = at, why

    @property
    def last_line(self) -> str:
        return self.recent[-1] if self.recent else "(nothing)"

    def describe_last(self) -> str:
        """The device's last few lines, for error messages."""
        if not self.recent:
            return "the device sent nothing"
        return "last lines from the device: " + " | ".join(repr(cut(x, 120)) for x in list(self.recent)[-4:])

    def _read_some(self) -> bytes:
        from serial import SerialException

        try:
            waiting = getattr(self.port, "in_waiting", 0) or 1
            return self.port.read(min(max(waiting, 1), 4096))
        except (SerialException, OSError) as exc:
            raise DeviceDisconnectedError(
                f"{self.port_name}: the port went away ({exc}); {self.describe_last()}. "
                "Check the cable and that no other program opened the port."
            ) from None

    def write(self, text: str) -> None:
        from serial import SerialException

        log.debug("%s <- %r", self.port_name, text)
        try:
            self.port.write(text.encode("ascii"))
            self.port.flush()
        except (SerialException, OSError) as exc:
            raise DeviceDisconnectedError(
                f"{self.port_name}: writing {text[:20]!r} failed ({exc}); {self.describe_last()}"
            ) from None

    def read_line(self, *, deadline: float, waiting_for: str) -> str:
        """The next non-empty line; ``DeviceTimeoutError`` once ``deadline`` (time.monotonic) or the
        overall deadline passes, ``ProtocolMismatchError`` for a line over ``MAX_LINE_BYTES``."""
        overall = self._deadline is not None and self._deadline < deadline
        if overall:
            deadline = self._deadline  # type: ignore[assignment]
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                raw = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                line = raw.decode("ascii", errors="replace").strip()
                if len(raw) > MAX_LINE_BYTES:
                    self._line_too_long(line, waiting_for)
                if line:
                    self.recent.append(line)
                    log.debug("%s -> %r", self.port_name, line)
                    return line
                continue
            if len(self._buf) > MAX_LINE_BYTES:
                self._line_too_long(bytes(self._buf).decode("ascii", errors="replace"), waiting_for)
            if time.monotonic() > deadline:
                partial = bytes(self._buf).decode("ascii", errors="replace").strip()
                extra = f" (and an unfinished line {cut(partial)!r})" if partial else ""
                if overall:
                    raise DeviceTimeoutError(
                        f"{self.port_name}: the overall deadline ({self._deadline_why}) passed while waiting "
                        f"for {waiting_for}; {self.describe_last()}{extra}. The device answers, but not as "
                        "the protocol says: check the firmware, the port and --baud."
                    )
                raise DeviceTimeoutError(
                    f"{self.port_name}: no answer to {waiting_for} in time; {self.describe_last()}{extra}. "
                    "The board may have hung or crashed; reset it and try again."
                )
            self._buf.extend(self._read_some())

    def _line_too_long(self, text: str, waiting_for: str) -> None:
        self._buf.clear()
        raise ProtocolMismatchError(
            f"{self.port_name}: a line of more than {MAX_LINE_BYTES} bytes in answer to {waiting_for} "
            f"({cut(text)!r}); the device does not speak the MLPerf Tiny / tinynas protocol, or the baud "
            "rate is wrong (--baud)"
        )

    def drain(self, *, quiet_s: float = 0.2, max_s: float = 3.0) -> list[str]:
        """Discard input until the line has been quiet for ``quiet_s`` (after a failed command), for at
        most ``max_s`` and never past the overall deadline; returns the lines it discarded."""
        lines: list[str] = []
        end = time.monotonic() + max_s
        if self._deadline is not None:
            end = min(end, self._deadline)
        last_data = time.monotonic()
        while time.monotonic() < end and time.monotonic() - last_data < quiet_s:
            chunk = self._read_some()
            if chunk:
                last_data = time.monotonic()
                self._buf.extend(chunk)
        for raw in bytes(self._buf).split(b"\n"):
            line = raw.decode("ascii", errors="replace").strip()
            if line:
                lines.append(line)
                self.recent.append(line)
        self._buf.clear()
        return lines

    def command(self, text: str, *, timeout_s: float | None = None, allow_boot: bool = False) -> list[str]:
        """Send ``text%`` and return the lines before ``m-ready`` (``e-`` lines included).

        Raises ``DeviceRebootedError`` if a boot line shows up, ``DeviceTimeoutError``
        if ``m-ready`` does not come within ``timeout_s`` of silence.
        """
        if len(text) > MAX_COMMAND_CHARS:
            raise MeasureError(f"internal: command {text[:20]!r}... is longer than {MAX_COMMAND_CHARS} characters")
        self.write(text + "%")
        return self.collect(waiting_for=repr(text + "%"), timeout_s=timeout_s, allow_boot=allow_boot)

    def collect(self, *, waiting_for: str, timeout_s: float | None = None, allow_boot: bool = False) -> list[str]:
        """Lines up to ``m-ready``, all within ``timeout_s``: a device that keeps talking without
        ever finishing its answer does not extend it."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            line = self.read_line(deadline=deadline, waiting_for=waiting_for)
            if line == "m-ready":
                return lines
            if not allow_boot and line in BOOT_LINES:
                raise DeviceRebootedError(
                    f"{self.port_name}: the board rebooted while answering {waiting_for} (it printed {line!r}); "
                    f"{self.describe_last()}. Look for a watchdog, a brown-out or a crash (stack or arena too small)."
                )
            lines.append(line)
            if len(lines) >= MAX_ANSWER_LINES:
                raise ProtocolMismatchError(
                    f"{self.port_name}: {len(lines)} lines in answer to {waiting_for} and no 'm-ready' "
                    f"(first: {cut(lines[0])!r}); it does not speak the MLPerf Tiny / tinynas protocol, or prints "
                    "debug output: flash the generated firmware or pick another port"
                )

    # -- protocol -------------------------------------------------------------
    def wait_boot(self, *, timeout_s: float) -> bool:
        """Read the boot banner after a reset; True if ``m-init-done`` came within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self.read_line(deadline=deadline, waiting_for="the boot banner")
            except DeviceTimeoutError:
                return False
            ext = parse_extension(line)
            if ext is not None:
                self.boot_extension = ext
            if line.startswith("e-"):
                self.boot_errors.append(line)
            if line == "m-init-done":
                # The banner's trailing m-ready (if any) must not be taken for the next answer.
                self.drain(quiet_s=0.1, max_s=0.5)
                return True

    def identify(self) -> DeviceInfo:
        """``name%`` and ``profile%``; ``ProtocolMismatchError`` if the answers are not this protocol."""
        try:
            lines = self.command("name")
        except DeviceTimeoutError:
            seen = self.describe_last()
            raise ProtocolMismatchError(
                f"{self.port_name}: no 'm-ready' answer to 'name%' within {self.timeout_s:g} s ({seen}). "
                "Is the board flashed with tinynas or MLPerf Tiny firmware, and is the baud rate right (--baud)?"
            ) from None
        name = next((m.group(2) for m in map(_BRACKET_RE.match, lines) if m and m.group(1) == "name-dut"), None)
        if name is None:
            raise ProtocolMismatchError(
                f"{self.port_name}: the device answered 'name%' with {cut(repr(lines))}, not 'm-name-dut-[...]': "
                "it does not speak the MLPerf Tiny / tinynas protocol. Flash the generated firmware or pick another port."
            )
        lines = self.command("profile")
        profile = model = ""
        extension = dict(self.boot_extension)
        for line in lines:
            ext = parse_extension(line)
            if ext is not None:
                extension.update(ext)
                continue
            match = _BRACKET_RE.match(line)
            if match and match.group(1) == "profile":
                profile = match.group(2)
            elif match and match.group(1) == "model":
                model = match.group(2)
        return DeviceInfo(port=self.port_name, name=name, profile=profile, model=model, extension=extension)

    def _recover(self) -> None:
        """After a lost or garbled chunk: terminate whatever the device holds, then wait for quiet."""
        self.write("%")
        self.drain(quiet_s=0.15, max_s=max(1.0, self.timeout_s))

    def _upload_once(self, data: bytes, *, chunk_bytes: int) -> str | None:
        """One attempt; None on success, else why it failed (the caller retries)."""
        lines = self.command(f"db load {len(data)}")
        if any(line.startswith("e-") for line in lines):
            raise MeasureError(
                f"{self.port_name}: the device refused an input of {len(data)} bytes ({cut(' '.join(lines))}); "
                "the model on the board has a different input size than the one given"
            )
        if not any(f"Expecting {len(data)} bytes" in line for line in lines):
            return f"'db load {len(data)}%' answered {cut(repr(lines))}"
        for start in range(0, len(data), chunk_bytes):
            chunk = data[start : start + chunk_bytes]
            last = start + chunk_bytes >= len(data)
            try:
                lines = self.command("db " + chunk.hex(), timeout_s=min(self.timeout_s, 2.0))
            except DeviceTimeoutError:
                self._recover()
                return f"no m-ready after the chunk at byte {start}"
            if any(line.startswith("e-") for line in lines):
                self.drain(quiet_s=0.05, max_s=0.5)
                return f"chunk at byte {start}: {cut(' '.join(lines))}"
            done = "m-load-done" in lines
            if done != last:
                return f"m-load-done {'early' if done else 'missing'} after the chunk at byte {start}"
        return self._verify(data)

    def _verify(self, data: bytes) -> str | None:
        """Optional ``db crc%`` extension (docs/protocol.md): catches garbles that are still valid hex."""
        if self.crc_supported is False:
            return None
        lines = self.command("db crc")
        for line in lines:
            match = _CRC_RE.match(line)
            if match:
                self.crc_supported = True
                got, want = int(match.group(1), 16), zlib.crc32(data) & 0xFFFFFFFF
                return None if got == want else f"CRC-32 {got:08x} on the device, {want:08x} sent"
        if any(line.startswith("e-") and "no data" in line for line in lines):
            return f"'db crc%' answered {cut(repr(lines))} right after m-load-done"
        if any(line.startswith("e-") for line in lines):
            # MLPerf Tiny firmware: no read-back; a valid-hex garble shows up as output disagreement instead.
            self.crc_supported = False
            log.info("%s: no 'db crc%%' support; uploads are checked by byte count only", self.port_name)
            return None
        return f"'db crc%' answered {cut(repr(lines))}"

    def upload(self, data: bytes, *, retries: int = 8, chunk_bytes: int = CHUNK_BYTES) -> int:
        """Load ``data`` into the device's input buffer; returns how many retries it took.

        Each failed attempt (``e-[bad hex]``, missing/early ``m-load-done``, CRC
        mismatch, a chunk without answer) restarts from ``db load``.
        """
        if not data:
            raise MeasureError("internal: empty input to upload")
        failures: list[str] = []
        for attempt in range(retries + 1):
            why = self._upload_once(data, chunk_bytes=chunk_bytes)
            if why is None:
                if attempt:
                    log.info("%s: upload needed %d retries (%s)", self.port_name, attempt, "; ".join(failures))
                return attempt
            log.info("%s: upload attempt %d failed: %s", self.port_name, attempt + 1, why)
            failures.append(why)
        raise MeasureError(
            f"{self.port_name}: uploading {len(data)} input bytes failed {retries + 1} times; last: {failures[-1]}. "
            "The link is garbling data: try a lower --baud, another cable or USB port."
        )

    def infer(self, *, count: int, warmup: int, timeout_s: float) -> InferResult:
        """``infer N W%``: the timer readings and the outputs of the last inference."""
        lines = self.command(f"infer {count} {warmup}", timeout_s=timeout_s)
        errors = [line for line in lines if line.startswith("e-")]
        if errors:
            raise MeasureError(f"{self.port_name}: 'infer {count} {warmup}%' failed: {cut(' '.join(errors))}")
        laps = [int(m.group(1)) for m in map(_LAP_RE.match, lines) if m]
        results = next((r for r in map(parse_results, lines) if r is not None), None)
        if len(laps) < 2 or "m-infer-done" not in lines:
            raise ProtocolMismatchError(
                f"{self.port_name}: 'infer {count} {warmup}%' answered {cut(repr(lines))}; expected two m-lap-us lines "
                "and m-infer-done"
            )
        return InferResult(count=count, warmup=warmup, t0_us=laps[-2], t1_us=laps[-1], results=results or ())
