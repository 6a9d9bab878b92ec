"""What the dataset cache holds (``tinynas datasets cache``) and clearing it.

Downloads and unpacked archives (``tinynas.data.remote``) can be gigabytes; generated sets (mnist1d,
glyphs) and image folders' pixels are smaller and rebuilt in seconds. Every entry here is one tinynas
wrote, recognised by its name: clearing removes those and nothing else that may share
``$TINYNAS_HOME`` (a user's own profiles and overlays live there when it is set).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinynas.data.cache import tinynas_home

log = logging.getLogger(__name__)

KINDS = ("downloads", "unpacked", "generated", "image-folders")
_KEY = r"[0-9a-f]{16}"
_PATTERNS = {
    "downloads": re.compile(rf"{_KEY}"),
    "unpacked": re.compile(rf"\.?{_KEY}(-.+)?"),  # an unpacked archive, or one whose unpacking was cut off
    "generated": re.compile(r"(mnist1d|glyphs)_.+\.npz"),
    "image-folders": re.compile(r".+-[0-9a-f]{20}\.npz"),
}
_FOLDERS = {"downloads": "downloads", "unpacked": "unpacked", "generated": "datasets",
            "image-folders": "image-folders"}
SOURCE_FILE = "source.json"  # in a download's folder (remote.py) and, hidden, in an unpacked archive's
#: a download's .part file and an unpacking's temporary folder carry the writer's process id, so that clearing
#: the cache from another process leaves what a live process is still writing (see ``busy_writer``)
_WRITER = re.compile(r"(?:\.|-)pid(\d+)[.-]")


def writer_tag() -> str:
    """The tag remote.py puts in its temporary names: ``pid<this process's id>``."""
    return f"pid{os.getpid()}"


@dataclass(frozen=True)
class CacheEntry:
    kind: str
    path: Path
    bytes: int
    what: str  # the URL, the archive, or the file's own name

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.path), "bytes": self.bytes, "what": self.what}


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def busy_writer(path: Path) -> int | None:
    """The id of a live process still writing ``path`` (an unpacking's temporary folder, or a download
    folder whose first file is still a .part), else None: a writer that died left it cut off."""
    names = [path.name]
    if path.is_dir() and not path.name.startswith("."):  # a download folder: its .part
        names += [p.name for p in path.iterdir()]
    for name in names:
        found = _WRITER.search(name) if name.startswith(".") else None
        if found and _alive(int(found.group(1))):
            return int(found.group(1))
    return None


def _what(kind: str, path: Path) -> str:
    record = path / (SOURCE_FILE if kind == "downloads" else f".{SOURCE_FILE}")
    if kind in ("downloads", "unpacked") and record.is_file():
        try:
            data = json.loads(record.read_text())
        except (OSError, ValueError):
            return path.name
        return str(data.get("url") or data.get("archive") or path.name)
    if kind == "unpacked" and path.name.startswith("."):
        return "an unpacking that was cut off"
    return path.name


def cache_entries(*, kinds: tuple[str, ...] = KINDS) -> list[CacheEntry]:
    """Every entry tinynas wrote under the cache root, of ``kinds``, largest first within each kind."""
    root = tinynas_home()
    entries = []
    for kind in kinds:
        folder = root / _FOLDERS[kind]
        if not folder.is_dir():
            continue
        folders = kind in ("downloads", "unpacked")  # the others are single .npz files
        found = [CacheEntry(kind=kind, path=p, bytes=_size(p), what=_what(kind, p))
                 for p in folder.iterdir() if _PATTERNS[kind].fullmatch(p.name) and not p.is_symlink()
                 and (p.is_dir() if folders else p.is_file())]
        entries += sorted(found, key=lambda e: -e.bytes)
    return entries


def clear_cache(*, kinds: tuple[str, ...] = KINDS) -> list[CacheEntry]:
    """Remove the entries of ``kinds`` (only what ``cache_entries`` lists) and return them; a download or an
    unpacking that another live process is writing is kept, with a warning."""
    removed = []
    for entry in cache_entries(kinds=kinds):
        writer = busy_writer(entry.path) if entry.kind in ("downloads", "unpacked") else None
        if writer is not None:
            log.warning("kept %s: process %d is still writing it", entry.path, writer)
            continue
        removed.append(entry)
        if entry.path.is_dir():
            shutil.rmtree(entry.path)
        else:
            entry.path.unlink(missing_ok=True)
    return removed
