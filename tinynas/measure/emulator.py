"""A board emulator: a pseudo-terminal (or TCP port) that behaves like a board flashed with tinynas firmware.

It speaks docs/protocol.md, runs inference in the real TFLite Micro interpreter,
and reports latency either from the cost model's prediction for a hardware
profile (deterministic) or from host time. Faults (garbled or dropped bytes, a
slow link, a hang, a disconnect, a reboot) let the measurement code be tested
without a board; ``tinynas emulate`` serves one from the command line.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import select
import socket
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from tinynas.errors import MeasureError

log = logging.getLogger(__name__)

LATENCY_MODES = ("predicted", "host")

#: Fault kinds: (default value, what the value means). Every value is a count (a positive
#: integer) except ``slow``'s, a finite rate of at least 1 byte per second.
FAULTS: dict[str, tuple[float, str]] = {
    "garble": (3, "corrupt this many uploads, one chunk each (alternately a wrong hex digit and a non-hex character)"),
    "drop": (3, "drop characters from this many uploads, one chunk each (one digit, two digits, the '%')"),
    "slow": (2000, "limit what the board sends to this many bytes per second"),
    "hang": (3, "stop answering in the middle of this infer command (1 = the probe, 2 = the first window)"),
    "disconnect": (3, "close the port in the middle of this infer command"),
    "reboot": (3, "reboot (print the boot banner, forget the input) in the middle of this infer command"),
    "stall-timer": (1, "the board's timer stops advancing from this infer command on (a locked DWT CYCCNT)"),
    "step-back-timer": (1, "the second lap of this infer command reads 737 us before the first (a SysTick clock "
                           "that missed a tick)"),
}
RATE_FAULTS = ("slow",)

_BOOT_EPOCH_US = 1_000_000  # the emulated timer's reading at boot, in microseconds


@dataclass(frozen=True)
class Fault:
    """One fault to inject: ``kind`` from ``FAULTS`` and its value."""

    kind: str
    value: float

    @classmethod
    def parse(cls, text: str) -> "Fault":
        """``"garble"``, ``"garble:5"``, ``"slow:500"``, ``"hang:3"``; ``MeasureError`` on anything else.

        A count must be a whole number of at least 1 (``hang:0.5`` would never fire), a
        rate a finite number of at least 1 (``slow:nan`` and ``slow:inf`` mean nothing).
        """
        kind, _, value = text.strip().partition(":")
        if kind not in FAULTS:
            known = ", ".join(f"{k}[:N] ({doc})" for k, (_, doc) in FAULTS.items())
            raise MeasureError(f"unknown emulator fault {text!r}; known: {known}")
        if not value:
            return cls(kind=kind, value=float(FAULTS[kind][0]))
        if kind in RATE_FAULTS:
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not math.isfinite(number) or number < 1:
                raise MeasureError(f"emulator fault {text!r}: {kind}:N needs a finite rate N >= 1 "
                                   f"(bytes per second), e.g. {kind}:500")
            return cls(kind=kind, value=number)
        if not value.strip().isdigit() or int(value) < 1:
            raise MeasureError(f"emulator fault {text!r}: {kind}:N needs a whole number N >= 1 "
                               f"({FAULTS[kind][1]}), e.g. {kind}:2")
        return cls(kind=kind, value=float(int(value)))


def predicted_latency_us(model_bytes: bytes, *, profile: Any, source: str = "model") -> float:
    """The cost model's latency of this model on ``profile``, in microseconds per inference."""
    from tinynas.cost import estimate
    from tinynas.space.tflite_reader import read_tflite

    try:
        graph = read_tflite(model_bytes)
    except MeasureError:
        raise
    except Exception as exc:
        raise MeasureError(f"{source}: the cost model cannot read this model ({exc})") from None
    cost = estimate(graph, profile=profile)
    if cost.latency_ms is None:
        raise MeasureError(f"the cost model gives no latency for profile {getattr(profile, 'id', profile)!r}")
    return float(cost.latency_ms) * 1000.0


class _Link:
    """The board's side of the wire: a pty master or one accepted TCP connection."""

    def __init__(self, *, tcp_port: int | None, host: str) -> None:
        self.closed = False
        self._conn: socket.socket | None = None
        self._server: socket.socket | None = None
        self._master = self._slave = -1
        if tcp_port is None:
            import tty

            self._master, self._slave = os.openpty()
            tty.setraw(self._slave)  # no echo, no CR/LF translation: a UART is a byte pipe
            tty.setraw(self._master)
            os.set_blocking(self._master, False)
            self.name = os.ttyname(self._slave)
        else:
            self._server = socket.create_server((host, tcp_port))
            self._server.settimeout(0.1)
            self.name = f"socket://{host}:{self._server.getsockname()[1]}"

    @property
    def connected(self) -> bool:
        return self._master >= 0 or self._conn is not None

    def accept(self) -> bool:
        """TCP: wait briefly for a host; True once one is connected (a pty is always connected)."""
        if self._master >= 0 or self._conn is not None:
            return True
        assert self._server is not None
        try:
            conn, _ = self._server.accept()
        except (TimeoutError, socket.timeout, OSError):
            return False
        conn.settimeout(2.0)
        self._conn = conn
        return True

    def read(self, timeout: float) -> bytes | None:
        """Bytes from the host, b"" if none arrived, None when the host went away (TCP)."""
        fd = self._master if self._master >= 0 else (self._conn.fileno() if self._conn else -1)
        if fd < 0:
            return None
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return b""
        try:
            data = os.read(fd, 4096) if self._master >= 0 else self._conn.recv(4096)  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            return None if self._conn is not None else b""
        if not data and self._conn is not None:
            return None
        return data

    def write(self, data: bytes) -> None:
        """Send to the host; output nobody reads is dropped after 2 s, as a UART would lose it."""
        if self._conn is not None:
            try:
                self._conn.sendall(data)
            except OSError:
                self.drop_connection()
            return
        if self._master < 0:
            return
        end = time.monotonic() + 2.0
        view = memoryview(data)
        while view and time.monotonic() < end:
            try:
                n = os.write(self._master, view)
                view = view[n:]
            except BlockingIOError:
                select.select([], [self._master], [], 0.05)
            except OSError:
                return

    def drop_connection(self) -> None:
        """TCP: forget the current host (another may connect); pty: nothing to do."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def close(self) -> None:
        self.closed = True
        self.drop_connection()
        for fd in (self._master, self._slave):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = -1
        if self._server is not None:
            self._server.close()
            self._server = None


class BoardEmulator:
    """Serves docs/protocol.md for one int8 model on a pty or TCP port, in a background thread.

    ``latency="predicted"`` reports the cost model's latency for ``profile``
    (same figures every run); ``"host"`` runs every inference and reports host
    time. ``realtime`` makes an ``infer`` take as long as it reports, like a
    board does. ``arena_used_bytes`` None: measured with the real interpreter.
    ``mlperf_only`` behaves like MLPerf Tiny reference firmware: no extension
    line, no ``db crc%``. ``boot_delay_s``: how long booting takes before the
    banner (a real board needs a second or two after a reset). ``model_id``: the id it
    announces, as firmware from ``tinynas deploy`` does (default: the model's SHA-1 prefix).
    """

    def __init__(
        self,
        model_bytes: bytes,
        *,
        profile: Any = None,
        latency: str = "predicted",
        faults: Sequence[Fault | str] = (),
        tcp_port: int | None = None,
        host: str = "127.0.0.1",
        realtime: bool = True,
        arena_used_bytes: int | None = None,
        name: str = "tinynas",
        mlperf_only: bool = False,
        boot_delay_s: float = 0.0,
        source: str = "model",
        seed: int = 0,
        model_id: str | None = None,
    ) -> None:
        from tinynas.deploy.interpreter import MicroInterpreter, require_int8

        if latency not in LATENCY_MODES:
            raise MeasureError(f"--latency must be one of {', '.join(LATENCY_MODES)}, got {latency!r}")
        if latency == "predicted" and profile is None:
            raise MeasureError("the emulator's predicted latency needs a hardware profile (--profile ID)")
        self.model_bytes = bytes(model_bytes)
        require_int8(self.model_bytes, source=source)  # a truncated or float model is named, not half-served
        self.latency_mode = latency
        self.faults = {f.kind: f for f in (x if isinstance(x, Fault) else Fault.parse(x) for x in faults)}
        self.realtime = realtime
        self.name = name
        self.mlperf_only = mlperf_only
        self.boot_delay_s = float(boot_delay_s)
        # What the firmware announces: deploy's id (an Arch id), else the first 12 hex digits of the SHA-1.
        self.model_id = model_id or hashlib.sha1(self.model_bytes).hexdigest()[:12]
        if arena_used_bytes is None:
            from tinynas.deploy.arena import measure_arena_bytes

            arena_used_bytes = measure_arena_bytes(self.model_bytes, source=source)
        self.arena_used_bytes = int(arena_used_bytes)
        # A margin above the smallest arena, as firmware sizes it (REFERENCE.md section 1).
        self._interp = MicroInterpreter(self.model_bytes, arena_bytes=self.arena_used_bytes + 4096, source=source)
        self.input_bytes = int(np.prod(self._interp.io.input.shape))
        self.output_bytes = int(np.prod(self._interp.io.output.shape))
        self.latency_us = (predicted_latency_us(self.model_bytes, profile=profile, source=source)
                           if latency == "predicted" else None)
        self._rng = np.random.default_rng(seed)
        self._link = _Link(tcp_port=tcp_port, host=host)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._boot_state()
        self._chunks_seen = 0
        self._infers_seen = 0
        self._fault_events: dict[str, int] = {"garble": 0, "drop": 0}
        self._hung = False
        self._fault_armed = False

    # -- lifecycle ---------------------------------------------------------------
    @property
    def port(self) -> str:
        """What to pass to ``tinynas measure --port``: a pty path or a ``socket://`` URL."""
        return self._link.name

    def start(self) -> str:
        """Boot and serve in a background thread; returns ``port``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.serve_forever, name=f"emulator {self.port}", daemon=True)
            self._thread.start()
        return self.port

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        self._link.close()

    def __enter__(self) -> "BoardEmulator":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Serve until ``stop()`` (or a disconnect fault closes the pty)."""
        booted_for_conn = False
        pending = ""
        while not self._stop.is_set() and not self._link.closed:
            if not self._link.accept():
                continue
            if not booted_for_conn:
                # A board prints its banner at power-on; over TCP each connection is a fresh boot.
                self._boot()
                booted_for_conn = True
            data = self._link.read(0.05)
            if data is None:  # the TCP host went away; wait for the next one
                self._link.drop_connection()
                booted_for_conn = False
                pending = ""
                continue
            if not data or self._hung:
                continue
            pending += data.decode("ascii", errors="replace")
            while "%" in pending and not self._hung and not self._link.closed:
                text, _, pending = pending.partition("%")
                text, keep = self._rx_faults(text)
                if keep:  # a dropped '%': the command runs on into the next one
                    pending = text + pending
                    break
                self._handle(text.strip())

    # -- output ----------------------------------------------------------------
    def _send(self, line: str) -> None:
        data = (line + "\r\n").encode("ascii")
        slow = self.faults.get("slow")
        if slow is None:
            self._link.write(data)
            return
        step = max(1, int(slow.value // 100))  # about 10 ms per piece
        for i in range(0, len(data), step):
            if self._stop.is_set():  # a slow banner must not outlive stop() by minutes
                return
            self._link.write(data[i : i + step])
            self._stop.wait(step / slow.value)

    def _boot_state(self) -> None:
        self._input = np.zeros(0, dtype=np.int8)
        self._input_crc: int | None = None
        self._load_expected = 0
        self._load = bytearray()
        self._results: str | None = None
        self._clock_us = _BOOT_EPOCH_US

    def _extension_line(self) -> str:
        # ``emulator``: its latencies are the host's or the cost model's, which calibrate must not fit a board to
        return (f"m-tinynas-[arena_used_bytes={self.arena_used_bytes},model_id={self.model_id},"
                f"input_bytes={self.input_bytes},output_bytes={self.output_bytes},emulator={self.latency_mode}]")

    def _boot(self) -> None:
        self._boot_state()
        if self.boot_delay_s:
            self._stop.wait(self.boot_delay_s)
        stall = self.faults.get("stall-timer")
        if stall is not None and stall.value == 1 and not self.mlperf_only:
            # tinynas firmware checks its timer at boot (firmware_templates/*/main): so does this board
            self._send("e-[timer did not advance: rebuild with -DTINYNAS_TIMER=systick]")
        for line in ("m-timestamp-mode-performance", self._extension_line(), "m-init-done", "m-ready"):
            if line.startswith("m-tinynas") and self.mlperf_only:
                continue
            self._send(line)

    # -- faults on the way in ----------------------------------------------------
    def _rx_faults(self, text: str) -> tuple[str, bool]:
        """Apply garble/drop to upload chunks; returns (text, keep-waiting-for-'%')."""
        body = text.strip()
        if body.startswith("db load"):
            self._fault_armed = True  # at most one fault per upload attempt, so retries are predictable
        if not body.startswith("db ") or body.startswith(("db load", "db crc")):
            return text, False
        self._chunks_seen += 1
        if self._chunks_seen % 2 or not self._fault_armed:  # hit every second chunk so faults spread over the upload
            return text, False
        hexpart = body[3:]
        if not hexpart:
            return text, False
        pos = int(self._rng.integers(0, len(hexpart)))
        garble = self.faults.get("garble")
        if garble is not None and self._fault_events["garble"] < garble.value:
            self._fault_events["garble"] += 1
            self._fault_armed = False
            if self._fault_events["garble"] % 2:
                new = format((int(hexpart[pos], 16) + 1) % 16, "x")  # still hex: only a checksum sees it
            else:
                new = "x"  # not hex: the device sees it
            log.info("emulator: garbling upload chunk %d at %d", self._chunks_seen, pos)
            return "db " + hexpart[:pos] + new + hexpart[pos + 1 :], False
        drop = self.faults.get("drop")
        if drop is not None and self._fault_events["drop"] < drop.value:
            self._fault_events["drop"] += 1
            self._fault_armed = False
            event = self._fault_events["drop"] % 3
            log.info("emulator: dropping from upload chunk %d (kind %d)", self._chunks_seen, event)
            if event == 1:
                return "db " + hexpart[:pos] + hexpart[pos + 1 :], False
            if event == 2:
                pos = min(pos, len(hexpart) - 2)
                return "db " + hexpart[:pos] + hexpart[pos + 2 :], False
            return text, True
        return text, False

    # -- commands ----------------------------------------------------------------
    def _handle(self, text: str) -> None:
        if len(text) > 80:
            self._send("e-[command too long]")
        elif text == "name":
            self._send(f"m-name-dut-[{self.name}]")
        elif text == "profile":
            self._send("m-profile-[tinynas]")
            self._send(f"m-model-[{self.model_id}]")
            if not self.mlperf_only:
                self._send(self._extension_line())
        elif text == "results":
            if self._results is not None:
                self._send(self._results)
        elif text == "db crc" and not self.mlperf_only:
            if self._input_crc is None:
                self._send("e-[db crc no data]")
            else:
                self._send(f"m-crc-[{self._input_crc:08x}]")
        elif text.startswith("db load"):
            self._db_load(text[len("db load"):].strip())
        elif text.startswith("db "):
            self._db_hex(text[3:].strip())
        elif text.startswith("infer"):
            if not self._infer(text[len("infer"):].split()):
                return  # hung, disconnected or rebooted: no m-ready
        else:
            self._send(f"e-[unknown command: {text}]")
        self._send("m-ready")

    def _db_load(self, arg: str) -> None:
        try:
            n = int(arg)
        except ValueError:
            n = 0
        if not 1 <= n <= self.input_bytes:
            self._send("e-[db load size]")
            self._load_expected = 0
            return
        self._load_expected, self._load = n, bytearray()
        self._send(f"m-[Expecting {n} bytes]")

    def _db_hex(self, digits: str) -> None:
        if not self._load_expected:
            self._send("e-[db load first]")
            return
        try:
            if len(digits) % 2:
                raise ValueError
            chunk = bytes.fromhex(digits)
            if chunk.hex() != digits.lower():
                raise ValueError  # fromhex skips spaces; the firmware does not
        except ValueError:
            self._send("e-[bad hex]")
            self._load_expected, self._load = 0, bytearray()
            return
        if len(self._load) + len(chunk) > self._load_expected:
            self._send("e-[db too many bytes]")
            self._load_expected, self._load = 0, bytearray()
            return
        self._load.extend(chunk)
        if len(self._load) >= self._load_expected:
            data = bytes(self._load)
            self._input = np.frombuffer(data, dtype=np.int8).copy()
            self._input_crc = zlib.crc32(data) & 0xFFFFFFFF
            self._load_expected, self._load = 0, bytearray()
            self._send("m-load-done")

    def _run_model(self, times: int) -> np.ndarray:
        q = np.zeros(self.input_bytes, dtype=np.int8)
        q[: len(self._input)] = self._input[: self.input_bytes]
        out = np.zeros(0, dtype=np.int8)
        for _ in range(max(1, times)):
            out = self._interp.invoke_int8(q)
        return out

    def _elapse(self, count: int) -> tuple[int, np.ndarray]:
        """Run ``count`` inferences' worth; returns (microseconds they took on the 'board', last output)."""
        if self.latency_mode == "host":
            start = time.perf_counter_ns()
            out = self._run_model(count)
            return (time.perf_counter_ns() - start) // 1000, out
        out = self._run_model(1)  # int8 inference is deterministic: one run gives the output of all
        assert self.latency_us is not None
        elapsed = int(round(self.latency_us * count))
        if self.realtime:
            self._stop.wait(elapsed / 1e6)
        return elapsed, out

    def _infer(self, args: list[str]) -> bool:
        try:
            count, warmup = int(args[0]), int(args[1]) if len(args) > 1 else 10
            if count < 1 or warmup < 0:
                raise ValueError
        except (ValueError, IndexError):
            self._send("e-[infer needs N >= 1 and W >= 0]")
            return True
        self._infers_seen += 1
        self._send(f"m-warmup-start-{warmup}")
        if warmup:
            self._clock_us += self._elapse(warmup)[0]
        self._send("m-warmup-done")
        self._send(f"m-infer-start-{count}")
        first = self._clock_us
        self._send(f"m-lap-us-{first % (1 << 32)}")
        if self._mid_window_fault():
            return False
        elapsed, out = self._elapse(count)
        stall = self.faults.get("stall-timer")
        if stall is None or self._infers_seen < int(stall.value):
            self._clock_us += elapsed
        back = self.faults.get("step-back-timer")
        lap = first - 737 if back is not None and self._infers_seen == int(back.value) else self._clock_us
        self._send(f"m-lap-us-{lap % (1 << 32)}")
        self._send("m-infer-done")
        values = self._interp.dequantize_output(out).reshape(-1)
        self._results = "m-results-[" + ",".join(f"{v:.6f}" for v in values) + "]"
        self._send(self._results)
        return True

    def _mid_window_fault(self) -> bool:
        for kind in ("hang", "disconnect", "reboot"):
            fault = self.faults.get(kind)
            if fault is None or self._infers_seen != int(fault.value):
                continue
            log.info("emulator: %s in infer command %d", kind, self._infers_seen)
            if kind == "hang":
                self._hung = True
            elif kind == "disconnect":
                # Mid-window, not mid-line: let the host read what was sent (closing a pty discards it).
                self._stop.wait(0.3)
                self._link.close()
            else:
                self._stop.wait(0.05)
                self._boot()
            return True
        return False
