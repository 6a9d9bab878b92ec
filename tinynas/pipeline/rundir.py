"""``RunDir``: the folder a run reads and writes (config.toml, journal.jsonl, stages/, model/, reports).

Every pipeline entry point (search, run, sweep) opens one first. It writes the
resolved settings to ``config.toml``, refuses a folder holding a different
configuration (naming the keys that differ), and holds a lock file with the
owner's pid so two processes never write into one directory.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

from tinynas.errors import SearchError
from tinynas.pipeline.journal import JOURNAL_FILE, Journal

log = logging.getLogger(__name__)

CONFIG_FILE = "config.toml"
LOCK_FILE = ".lock"
#: config sections that may change between invocations of the same run (they do not change results).
MUTABLE_SECTIONS = ("execution",)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and ``os.replace``: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None when it does not exist; SearchError when it is damaged."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SearchError(f"{path}: cannot read it ({exc}); delete it to redo that step") from None


# -- config.toml ------------------------------------------------------------------------------
def _toml_value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v, where) for v in value) + "]"
    if isinstance(value, Mapping):  # an inline table with quoted keys (a dataset's loader options)
        items = (f"{json.dumps(str(k))} = {_toml_value(v, f'{where}.{k}')}" for k, v in value.items() if v is not None)
        return "{" + ", ".join(items) + "}"
    raise SearchError(f"config value {where} = {value!r} cannot be written to TOML")


def dumps_config(config: Mapping[str, Mapping[str, Any]]) -> str:
    """A two-level mapping as TOML tables; None values are left out (TOML has no null)."""
    out = ["# Resolved settings of this tinynas run. Running the same command again resumes it;",
           "# a different configuration needs another --out.", ""]
    for section, values in config.items():
        out.append(f"[{section}]")
        for key, value in values.items():
            if value is not None:
                out.append(f"{key} = {_toml_value(value, f'{section}.{key}')}")
        out.append("")
    return "\n".join(out)


def loads_config(text: str, *, where: str) -> dict[str, dict[str, Any]]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SearchError(f"{where}: not valid TOML ({exc}); fix it or choose another --out") from None


def config_of_run_model(model: Path) -> tuple[Path, dict[str, dict[str, Any]]] | None:
    """The run directory and config of a model a run trained (``RUN/model/model.keras``,
    ``RUN/stages/final/ID.keras``), or None for a model elsewhere (or a config that does not read): so
    ``deploy`` can split the dataset as the run did."""
    model = Path(model).resolve()
    for run_dir in (model.parent.parent, model.parent.parent.parent):
        if not (run_dir / CONFIG_FILE).is_file() or not (run_dir / JOURNAL_FILE).is_file():
            continue
        try:
            config = RunDir(run_dir).config
        except (OSError, UnicodeDecodeError, SearchError):
            return None
        if isinstance(config.get("seeds"), dict) and isinstance(config.get("dataset"), dict):
            return run_dir, config
    return None


def normalize_config(config: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """What ``config`` reads back as from TOML (tuples become lists, None disappears)."""
    return loads_config(dumps_config(config), where="config")


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``section.key: old -> new`` for every identity key that differs (mutable sections ignored)."""
    diffs = []
    for section in sorted(set(old) | set(new)):
        if section in MUTABLE_SECTIONS:
            continue
        a, b = dict(old.get(section) or {}), dict(new.get(section) or {})
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                diffs.append(f"{section}.{key}: {a.get(key)!r} -> {b.get(key)!r}")
    return diffs


# -- the lock -----------------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunDir:
    """An opened, locked run directory. Use as a context manager, or call ``close()``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.journal = Journal(self.path / JOURNAL_FILE)
        self._locked = False

    # -- opening ------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str], *, config: Mapping[str, Mapping[str, Any]]) -> "RunDir":
        """Create ``path`` for ``config`` or reopen it to resume; lock it for this process.

        Raises SearchError when the folder holds another configuration (listing
        the keys that differ), holds files that are not a tinynas run, or is
        locked by a live process.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise SearchError(f"--out {path} exists and is not a folder; choose another --out")
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        run._lock()
        try:
            run._check_or_write_config(config)
        except BaseException:
            run.close()
            raise
        return run

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> "RunDir":
        """An existing run directory opened read-only (no lock), e.g. to rebuild its report."""
        path = Path(path)
        if not (path / CONFIG_FILE).is_file():
            raise SearchError(f"{path} is not a tinynas run directory (no {CONFIG_FILE}); pass the --out of a run")
        return cls(path)

    def _check_or_write_config(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        file = self.path / CONFIG_FILE
        new = normalize_config(config)
        if file.is_file():
            old = loads_config(file.read_text(), where=str(file))
            diffs = config_differences(old, new)
            if diffs and all(d.startswith("dataset.fingerprint:") for d in diffs):
                raise SearchError(
                    f"{self.path} holds a run of the same command, but dataset {new['dataset'].get('name')!r} now "
                    f"reads as other data ({diffs[0]}): its files changed since the run began, or its features are "
                    "computed (a WAV folder's MFCCs, say) on a machine whose float rounding differs; resuming would "
                    "mix results from both: restore the files or resume on the first machine, or choose another "
                    "--out for a new run"
                )
            if diffs:
                raise SearchError(
                    f"{self.path} holds a run with another configuration ({'; '.join(diffs)}); "
                    "resuming it with these settings would mix results: run the same command as before to resume, "
                    "or choose another --out for the new settings"
                )
            log.info("resuming the run in %s", self.path)
        else:
            others = sorted(p.name for p in self.path.iterdir() if p.name != LOCK_FILE)
            if others:
                shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
                raise SearchError(
                    f"--out {self.path} is not empty ({shown}) and is not a tinynas run (no {CONFIG_FILE}); "
                    "choose another --out"
                )
        atomic_write_text(file, dumps_config(config))

    def _lock(self) -> None:
        lock = self.path / LOCK_FILE
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    pid = int(lock.read_text().strip() or "0")
                except (OSError, ValueError):
                    pid = 0
                if pid > 0 and _pid_alive(pid):
                    raise SearchError(
                        f"{self.path} is in use by another tinynas process (pid {pid}, lock file {lock}); "
                        "wait for it to finish, or choose another --out"
                    ) from None
                log.warning("%s: removing the stale lock of pid %s (that process is gone)", self.path, pid or "?")
                try:
                    lock.unlink()
                except FileNotFoundError:
                    pass
                continue
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
                    raise SearchError(f"cannot write into {self.path} ({exc.strerror}); choose another --out") from None
                raise
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{os.getpid()}\n")
            self._locked = True
            return
        raise SearchError(f"{self.path}: could not take the lock {lock}; another process keeps taking it")

    def close(self) -> None:
        """Release the lock (idempotent)."""
        if self._locked:
            lock = self.path / LOCK_FILE
            try:
                if lock.read_text().strip() == str(os.getpid()):
                    lock.unlink()
            except OSError:
                pass
            self._locked = False

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- layout -------------------------------------------------------------------------------
    @property
    def config(self) -> dict[str, dict[str, Any]]:
        file = self.path / CONFIG_FILE
        return loads_config(file.read_text(), where=str(file))

    def stage_dir(self, stage: str) -> Path:
        path = self.path / "stages" / stage
        path.mkdir(parents=True, exist_ok=True)
        return path

    def stage_done(self, stage: str) -> dict[str, Any] | None:
        """The result a finished stage left in ``stages/<stage>/done.json``, or None if it has not finished."""
        return read_json(self.path / "stages" / stage / "done.json")

    def mark_done(self, stage: str, result: Mapping[str, Any]) -> None:
        atomic_write_json(self.stage_dir(stage) / "done.json", dict(result))
        self.journal.append({"type": "stage", "stage": stage, "event": "done"})
