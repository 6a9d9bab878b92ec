"""The run journal: an append-only JSONL file of every evaluated candidate and stage event.

Every stage of a run (tinynas.pipeline.stages) appends here before it tells a
strategy anything, so a killed run is rebuilt from this file on resume. Lines are
flushed and fsynced one by one; a torn last line (the process died mid-write) is ignored.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Iterator

from tinynas.errors import SearchError

log = logging.getLogger(__name__)

JOURNAL_FILE = "journal.jsonl"


class Journal:
    """``journal.jsonl`` of one run directory: ``append`` writes one durable line, ``entries`` reads them back."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def append(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Write ``entry`` (plus a ``time`` stamp) as one line and fsync it; returns what was written."""
        line = dict(entry)
        line.setdefault("time", round(time.time(), 3))
        text = json.dumps(line, sort_keys=True, default=str)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: each write lands at the end even if the file was extended meanwhile.
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            # A torn last line (killed mid-write) must not swallow this one: start a fresh line.
            lead = "\n" if size and os.pread(fd, 1, size - 1) != b"\n" else ""
            os.write(fd, (lead + text + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return line

    def entries(self) -> list[dict[str, Any]]:
        """Every readable line, oldest first. A torn last line is dropped silently; a damaged
        line elsewhere is skipped with a warning (the rest of the run is still usable)."""
        return list(self._iter())

    def _iter(self) -> Iterator[dict[str, Any]]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise SearchError(f"{self.path}: cannot read the run journal ({exc})") from None
        lines = raw.split(b"\n")
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict):
                    raise ValueError("not an object")
            except ValueError:
                if i < len(lines) - 1 and any(rest.strip() for rest in lines[i + 1:]):
                    log.warning("%s: skipping damaged line %d", self.path, i + 1)
                else:
                    log.info("%s: ignoring a torn last line (the run was killed while writing it)", self.path)
                continue
            yield entry

    def candidates(self, *, stage: str | None = None) -> list[dict[str, Any]]:
        """The ``candidate`` entries (of one stage when given), oldest first."""
        return [e for e in self._iter() if e.get("type") == "candidate" and (stage is None or e.get("stage") == stage)]

    def events(self, *, stage: str | None = None) -> list[dict[str, Any]]:
        """The ``stage`` events (start, done, interrupted, failed), oldest first."""
        return [e for e in self._iter() if e.get("type") == "stage" and (stage is None or e.get("stage") == stage)]
