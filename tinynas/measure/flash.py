"""Flash a generated firmware project with its ecosystem's own tool, or say exactly what to run.

Sits between firmware generation (``tinynas.deploy.firmware`` writes the project
and its build/flash commands into ``.tinynas_firmware.json``) and ``tinynas
measure``. The tools (arduino-cli, pio, west, idf.py, picotool) are never
bundled: when one is missing the caller gets the command line to run.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinynas.errors import MeasureError

log = logging.getLogger(__name__)

STAMP = ".tinynas_firmware.json"  # written by tinynas.deploy.firmware.generate_firmware

#: How each tool takes the serial port, when the user names one (None: the tool finds the probe itself).
PORT_OPTIONS: dict[str, tuple[str, ...] | None] = {
    "arduino-cli": ("-p", "{port}"),
    "pio": ("--upload-port", "{port}"),
    "platformio": ("--upload-port", "{port}"),
    "idf.py": ("-p", "{port}"),
    "west": None,  # west flash uses the board's runner (J-Link, pyOCD, OpenOCD) over the debug probe
    "picotool": None,  # USB BOOTSEL mode, no serial port
    "pyocd": None,  # CMSIS-DAP / ST-Link debug probe
}

#: Projects without a stamp: guess the ecosystem from a marker file.
_MARKERS: tuple[tuple[str, str, str], ...] = (
    ("platformio.ini", "pio run", "pio run -t upload"),
    ("main/idf_component.yml", "idf.py build", "idf.py flash"),
    ("prj.conf", "west build", "west flash"),
    ("pico_sdk_import.cmake", "cmake -S . -B build && cmake --build build", "picotool load -x build/*.uf2"),
)


@dataclass(frozen=True)
class FlashResult:
    """What ``flash_project`` did: the commands, whether the tool was found and ran, and how it ended."""

    project: str
    template: str
    tool: str
    commands: tuple[str, ...]  # shell-ready lines, run in ``project``
    tool_found: bool
    ran: bool
    returncode: int | None = None
    output_tail: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: why the commands did not run ("dry run", the tools not installed, the variables unset); "" when they ran
    not_run_because: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"project": self.project, "template": self.template, "tool": self.tool,
                "commands": list(self.commands), "tool_found": self.tool_found, "ran": self.ran,
                "returncode": self.returncode, "output_tail": self.output_tail, "notes": list(self.notes),
                "not_run_because": self.not_run_because}


def _split_lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace("&&", "\n").splitlines() if line.strip()]


def plan_commands(project: Path) -> tuple[str, list[str], list[str]]:
    """(template, build lines, flash lines) for a project: from its stamp, else from its marker files."""
    stamp = project / STAMP
    if stamp.is_file():
        try:
            data = json.loads(stamp.read_text(encoding="utf-8"))
            return str(data.get("template", "")), _split_lines(str(data.get("build", ""))), \
                _split_lines(str(data["flash"]))
        except (ValueError, KeyError, OSError) as exc:
            raise MeasureError(f"{stamp}: unreadable firmware stamp ({exc}); regenerate the project "
                               "with `tinynas firmware generate`") from None
    for marker, build, flash in _MARKERS:
        if (project / marker).exists():
            return marker, _split_lines(build), _split_lines(flash)
    if any(project.glob("*.ino")):
        raise MeasureError(
            f"{project}: an Arduino sketch without a tinynas stamp: the board's FQBN is unknown; run "
            "`arduino-cli compile --upload -b <FQBN> -p <PORT>` there, or regenerate it with `tinynas firmware generate`"
        )
    raise MeasureError(
        f"{project}: not a firmware project tinynas knows (no {STAMP}, platformio.ini, prj.conf, "
        "main/idf_component.yml or pico_sdk_import.cmake); pass the folder `tinynas firmware generate` wrote"
    )


def _is_project(folder: Path) -> bool:
    return (folder / STAMP).is_file() or any((folder / m).exists() for m, _, _ in _MARKERS) \
        or any(folder.glob("*.ino"))


def find_project(folder: Path) -> tuple[Path, str | None]:
    """The firmware project to flash for ``folder``, and a note when it is not ``folder`` itself.

    A user passes what `tinynas run` printed: the run directory or its ``firmware/``,
    not the template's sub-folder. When ``folder`` is no project but exactly one
    project lies where tinynas writes them below it, that one is meant;
    several are refused with their paths, since flashing the wrong board's image is
    worse than asking.
    """
    if _is_project(folder):
        return folder, None
    # a firmware/ folder, a run's --out, a sweep's --out (never a stage's working copy under stages/)
    places = ("*/", "firmware/*/", "*/firmware/*/")
    below = sorted({stamp.parent for where in places for stamp in folder.glob(where + STAMP)})
    if len(below) == 1:
        return below[0], f"{below[0]} is the one firmware project under {folder}; using it"
    if below:
        listed = ", ".join(str(p) for p in below[:8]) + (f" and {len(below) - 8} more" if len(below) > 8 else "")
        raise MeasureError(f"{folder} holds {len(below)} firmware projects ({listed}); pass the one to flash")
    return folder, None


_ENV_RE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
_GLOB_CHARS = re.compile(r"[*?\[]")


def _words(line: str, folder: Path) -> list[str]:
    """A command line as an argument list, split like a POSIX shell would but run by none.

    Only two shell features are kept, both applied word by word so that no value can
    become a new command: ``$VAR``/``${VAR}`` from the environment and ``*`` globs
    relative to the project (``build/*.uf2``). A ``;``, ``|`` or backquote stays a
    literal character of its word.
    """
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise MeasureError(f"{folder}: cannot split the command '{line}' ({exc}); regenerate the project "
                           "with `tinynas firmware generate`") from None
    argv: list[str] = []
    for word in words:
        word = _ENV_RE.sub(lambda m: os.environ.get(m.group(1), ""), word)
        matches = sorted(glob.glob(word, root_dir=folder)) if _GLOB_CHARS.search(word) else []
        argv.extend(matches or [word])
    return argv


def _with_port(line: str, port: str | None, notes: list[str]) -> str:
    """Put the port into a flash line: ``$PORT`` where the template has it, else the tool's own option."""
    if "$PORT" in line or "${PORT}" in line:
        if port is None:
            notes.append("pass --port (or replace $PORT with the board's serial port)")
            return line
        return line.replace("${PORT}", shlex.quote(port)).replace("$PORT", shlex.quote(port))
    try:
        words = shlex.split(line)
    except ValueError:
        return line  # _words reports the broken quoting
    if not words or port is None:
        return line
    tool = Path(words[0]).name
    option = PORT_OPTIONS.get(tool)
    flashing = any(w in ("upload", "flash", "load", "-t", "--upload") for w in words[1:])
    if option is None:
        if flashing:
            notes.append(f"{tool} flashes over the debug probe or USB boot mode; --port {port} is for measuring only")
        return line
    if not flashing or option[0] in words:
        return line
    return line + " " + " ".join(shlex.quote(o.format(port=port)) for o in option)


def _auto_port(folder: Path) -> str:
    """``--port auto``: the board of the project's profile, found by its USB ids."""
    from tinynas.measure.ports import find_port

    try:
        profile_id = json.loads((folder / STAMP).read_text(encoding="utf-8"))["profile"]
    except (OSError, ValueError, KeyError):
        raise MeasureError(f"{folder}: --port auto needs the project's profile (from {STAMP}); pass --port PATH") from None
    from tinynas.hardware import load_profile

    return find_port(load_profile(profile_id).serial.usb_ids)


def flash_project(*, project: str | Path, port: str | None = None, build: bool = True, run: bool = True,
                  timeout_s: float = 1800.0) -> FlashResult:
    """Build and flash ``project`` with its ecosystem tool when that tool is installed.

    Returns a ``FlashResult`` with ``ran=False`` and the exact commands when a
    tool is not on PATH, an environment variable the commands use is unset
    (``$TFLM_DIR``, ``$PORT`` without ``port``), or ``run`` is False. Raises
    ``MeasureError`` when the folder is not a firmware project or a tool fails
    (with the end of its output).
    """
    folder = Path(project)
    if not folder.is_dir():
        raise MeasureError(f"no such firmware project folder {str(folder)!r}; generate one with `tinynas firmware generate`")
    folder, found = find_project(folder)
    template, build_lines, flash_lines = plan_commands(folder)
    if port == "auto":
        port = _auto_port(folder)
    notes: list[str] = [found] if found else []
    lines = (build_lines if build else []) + [_with_port(x, port, notes) for x in flash_lines]
    if not lines:
        raise MeasureError(f"{folder}: the project names no flash command")
    tools = [w[0] for w in (_words(x, folder) for x in lines) if w]
    missing = sorted({t for t in tools if shutil.which(t) is None})
    unset = sorted({v for x in lines for v in _ENV_RE.findall(x) if not os.environ.get(v)})
    for var in unset:
        if var != "PORT":
            notes.append(f"set the environment variable {var} first (see the project's README.md)")
    flash_words = _words(flash_lines[-1], folder) if flash_lines else []
    tool = Path(flash_words[0]).name if flash_words else tools[0]
    result = dict(project=str(folder), template=template, tool=tool, commands=tuple(lines), notes=tuple(notes))
    if missing or unset or not run:
        reasons = []
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            reasons.append(f"{', '.join(missing)} {verb} not installed (or not on PATH)")
        variables = [v for v in unset if v != "PORT"]
        if variables:
            reasons.append(f"the environment variable{'s' if len(variables) > 1 else ''} {', '.join(variables)} "
                           f"{'are' if len(variables) > 1 else 'is'} not set")
        if "PORT" in unset:
            reasons.append("no --port was given")
        why = "dry run" if not run else "; ".join(reasons)
        if run:
            log.info("%s: not flashing: %s", folder, why)
        return FlashResult(**result, tool_found=not missing, ran=False, not_run_because=why)
    output = ""
    for line in lines:
        argv = _words(line, folder)
        log.info("%s: running %s", folder, shlex.join(argv))
        try:
            # An argument list, never a shell: a board id in the stamp cannot start a second command.
            proc = subprocess.run(argv, cwd=folder, capture_output=True, text=True, timeout=timeout_s,
                                  shell=False)
        except subprocess.TimeoutExpired:
            raise MeasureError(f"{folder}: '{line}' did not finish within {timeout_s:g} s") from None
        except OSError as exc:
            raise MeasureError(f"{folder}: cannot run '{argv[0]}' ({exc.strerror or exc}); install it or "
                               "run the commands above by hand") from None
        output = (output + proc.stdout + proc.stderr)[-4000:]
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise MeasureError(f"{folder}: '{line}' failed with exit code {proc.returncode}:\n{tail}")
    return FlashResult(**result, tool_found=True, ran=True, returncode=0, output_tail=output[-2000:])
