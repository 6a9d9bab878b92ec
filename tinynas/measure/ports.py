"""Open the serial port a board sits on: by device path, by pyserial URL, or ``auto`` by USB ids.

The latency runner calls ``open_port``; every failure (no such port, busy,
permission, no board found) becomes a ``MeasureError`` that names the port and the fix.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from tinynas.errors import MeasureError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PortCandidate:
    """One serial port as ``serial.tools.list_ports`` describes it."""

    device: str
    vid: int | None
    pid: int | None
    description: str = ""

    def label(self) -> str:
        ids = f"{self.vid:04x}:{self.pid:04x}" if self.vid is not None and self.pid is not None else "no USB ids"
        return f"{self.device} ({ids}{', ' + self.description if self.description else ''})"


def list_candidates() -> list[PortCandidate]:
    """Serial ports on this machine, with USB vendor/product ids where the OS knows them."""
    from serial.tools import list_ports

    return [PortCandidate(device=p.device, vid=p.vid, pid=p.pid, description=p.description or "")
            for p in list_ports.comports()]


def find_port(usb_ids: Sequence[tuple[int, int]], *, candidates: Iterable[PortCandidate] | None = None) -> str:
    """The one port whose USB (vid, pid) is in ``usb_ids``; a ``MeasureError`` if none or several match."""
    ports = list(list_candidates() if candidates is None else candidates)
    if not usb_ids:
        raise MeasureError(
            "--port auto needs the board's USB ids, and this profile lists none (serial.usb_ids); "
            "pass --port with a path such as /dev/ttyACM0, or pick a --profile that lists them"
        )
    wanted = {(int(v), int(p)) for v, p in usb_ids}
    matches = [p for p in ports if p.vid is not None and (p.vid, p.pid) in wanted]
    ids = ", ".join(f"{v:04x}:{p:04x}" for v, p in sorted(wanted))
    seen = "; ".join(p.label() for p in ports) or "none"
    if not matches:
        raise MeasureError(
            f"--port auto: no serial port with USB ids {ids}; ports seen: {seen}. "
            "Plug the board in (a data cable, not charge-only), or pass --port PATH"
        )
    if len(matches) > 1:
        raise MeasureError(
            f"--port auto: several ports match USB ids {ids}: {', '.join(p.device for p in matches)}; "
            "pass --port with the one to use"
        )
    return matches[0].device


def open_port(spec: str, *, baud: int = 115200, usb_ids: Sequence[tuple[int, int]] = ()) -> tuple[Any, str]:
    """Open ``spec`` (a path, a pyserial URL such as ``socket://host:port``, or ``auto``).

    Returns ``(serial object, name for messages)``. Local ports are opened
    exclusively, so a port another program holds is reported as busy instead of
    two programs reading each other's bytes.
    """
    import serial

    if spec == "auto":
        spec = find_port(usb_ids)
        log.info("--port auto: using %s", spec)
    if "://" in spec:
        try:
            return serial.serial_for_url(spec, baudrate=baud, timeout=0.05, write_timeout=5.0), spec
        except (serial.SerialException, OSError, ValueError) as exc:
            raise MeasureError(f"cannot open {spec}: {exc}. Check the host and port (is the emulator running?)") from None
    if not os.path.exists(spec):
        raise MeasureError(
            f"no such port {spec!r}. Plug the board in, or pass --port auto, a path from "
            "`python -m serial.tools.list_ports`, or a URL like socket://localhost:5555"
        )
    try:
        return serial.Serial(spec, baudrate=baud, timeout=0.05, write_timeout=5.0, exclusive=True), spec
    except serial.SerialException as exc:
        text = str(exc)
        if "lock" in text.lower() or getattr(exc, "errno", None) in (errno.EBUSY, errno.EAGAIN):
            raise MeasureError(
                f"port {spec} is busy: another program (a serial monitor, an IDE, another tinynas measure) "
                "has it open; close that program and try again"
            ) from None
        if getattr(exc, "errno", None) in (errno.EACCES, errno.EPERM) or "ermission" in text:
            raise MeasureError(
                f"no permission to open {spec}: add your user to the 'dialout' (or 'uucp') group and log in again"
            ) from None
        raise MeasureError(f"cannot open port {spec}: {exc}") from None


def reset_board(port: Any, *, how: str, port_name: str) -> None:
    """Pulse DTR or RTS the way USB-serial boards wire their reset; a no-op for ``none``."""
    if how == "none":
        return
    if how not in ("dtr", "rts"):
        raise MeasureError(f"serial.reset must be 'none', 'dtr' or 'rts', got {how!r}")
    try:
        setattr(port, how, True)
        time.sleep(0.1)
        setattr(port, how, False)
    except (OSError, ValueError, AttributeError) as exc:
        # Pseudo-terminals and sockets have no modem lines: carry on without a reset.
        log.warning("%s: cannot pulse %s (%s); measuring without a reset", port_name, how.upper(), exc)
    except Exception as exc:  # serial.SerialException on ports without modem control
        log.warning("%s: cannot pulse %s (%s); measuring without a reset", port_name, how.upper(), exc)
