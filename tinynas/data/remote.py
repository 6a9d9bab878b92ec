"""Datasets named by a URL or packed in an archive: fetched once, unpacked once, then read by the path
kind that matches what they hold.

A URL (``https://``, ``http://``) is downloaded once into ``$TINYNAS_HOME/downloads/<hash of the URL>/``;
later loads, resumes and sweep boards read that copy offline, so a run whose config.toml names a URL
resumes without the network. ``#sha256=HEX`` at the end of the URL pins the bytes: a download that does
not match is refused and not kept. A ``.zip``, ``.tar``, ``.tar.gz`` or ``.tgz``, downloaded or local,
is unpacked once into ``$TINYNAS_HOME/unpacked/`` and the dataset is what it holds: the folder (inside
its one top folder, as most archives are made), or its one ``.npz``/``.csv`` file or ``*_TRAIN.ts``.

Why here and not in each loader: every path kind (image and WAV folders, .npz, .csv, .ts) gets URLs and
archives at once, and the loaders keep reading plain local paths.

Unpacking refuses members that would land outside the folder (absolute paths, ``..``), links and device
files, and archives larger than the free disk; macOS's ``__MACOSX/`` and ``._*`` side files are left out.
A download has one deadline for the whole transfer, not one per read. Nothing half-written is ever left
where a later load would take it for whole: both write beside the target and rename.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from tinynas.data.cache import tinynas_home
from tinynas.data.cache_entries import SOURCE_FILE, writer_tag
from tinynas.errors import DatasetError
from tinynas.pipeline.rundir import atomic_write_json
from tinynas.registry import Registry

log = logging.getLogger(__name__)

DOWNLOAD_DEADLINE_S = 3600.0  # the whole transfer; tests lower it
STALL_TIMEOUT_S = 60.0  # no byte for this long: the server is given up
CHUNK_BYTES = 1 << 20
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
DATA_FILE_SUFFIXES = (".npz", ".csv", ".ts")

URL_SCHEMES: Registry[Callable[[str], Path]] = Registry("dataset URL scheme", error=DatasetError)


def register_scheme(*schemes: str) -> Callable[[Callable[[str], Path]], Callable[[str], Path]]:
    """Decorator: ``fetch(url) -> local path`` for URLs of these schemes (cached, so the second call is offline)."""

    def deco(fn: Callable[[str], Path]) -> Callable[[str], Path]:
        for scheme in schemes:
            URL_SCHEMES.add(scheme, fn)
        return fn

    return deco


def url_scheme(text: str) -> str | None:
    """The registered scheme ``text`` is a URL of, or None (a name or a path)."""
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", text)
    return match.group(1).lower() if match and match.group(1).lower() in URL_SCHEMES.names() else None


def local_path(text: str) -> Path:
    """The local path ``--dataset text`` stands for: a URL fetched, an archive unpacked, a path as it is."""
    scheme = url_scheme(text)
    path = URL_SCHEMES.get(scheme)(text) if scheme else Path(text).expanduser()
    return dataset_in(unpack(path)) if archive_suffix(path) and path.is_file() else path


def remote_kinds() -> list[dict[str, Any]]:
    """What ``tinynas datasets list`` shows for URLs and archives (they have no loader of their own)."""
    return [
        {"name": "URL", "kind": "url", "options": {},
         "description": f"{', '.join(s + '://' for s in URL_SCHEMES.names())} URL of any path kind below or of an "
                        "archive of one, downloaded once into $TINYNAS_HOME/downloads (end it with #sha256=HEX to "
                        "pin the bytes); the options are those of the kind it holds"},
        {"name": "archive", "kind": "path", "options": {},
         "description": f"a {', '.join(ARCHIVE_SUFFIXES)} of any path kind below, unpacked once into "
                        "$TINYNAS_HOME/unpacked; the dataset is its one top folder, or its one .npz/.csv or "
                        "*_TRAIN.ts; the options are those of the kind it holds"},
    ]


# -- downloads ------------------------------------------------------------------------------------
def _file_name(url: str) -> str:
    """The URL's last path segment as a safe file name (its suffix tells the path kind)."""
    name = urllib.parse.unquote(PurePosixPath(urllib.parse.urlsplit(url).path).name)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return name or "download"


def _pinned_sha256(url: str) -> tuple[str, str | None]:
    """``url`` without its fragment, and the SHA-256 its ``#sha256=HEX`` pins (None without one)."""
    base, _, fragment = url.partition("#")
    if not fragment:
        return base, None
    match = re.fullmatch(r"sha256=([0-9A-Fa-f]{64})", fragment)
    if match is None:
        raise DatasetError(f"{url}: the part after '#' must be sha256= and 64 hex digits (the file's SHA-256), "
                           f"got {fragment!r}; drop it or give the file's hash")
    return base, match.group(1).lower()


def _known_suffix(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES + DATA_FILE_SUFFIXES)


@register_scheme("https", "http")
def fetch_http(url: str) -> Path:
    """The cached copy of ``url``, downloaded now if there is none (or none with the pinned hash)."""
    base, pinned = _pinned_sha256(url)
    folder = tinynas_home() / "downloads" / hashlib.sha1(base.encode()).hexdigest()[:16]
    record = folder / SOURCE_FILE
    kept = json.loads(record.read_text()) if record.is_file() else {}
    if kept.get("file") and (folder / kept["file"]).is_file():
        if pinned is None or kept.get("sha256") == pinned:
            return _readable(url, folder / kept["file"])
        log.warning("%s: the cached copy's SHA-256 is %s, not the pinned %s: downloading it again", base,
                    kept.get("sha256"), pinned)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        target, digest, size = _download(base, folder, pinned=pinned)
    except BaseException:
        if not any(folder.iterdir()):  # a first download that failed leaves no trace
            folder.rmdir()
        raise
    atomic_write_json(record, {"url": base, "file": target.name, "sha256": digest, "bytes": size,
                               "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    if kept.get("file") and kept["file"] != target.name:  # the copy this one replaces
        (folder / kept["file"]).unlink(missing_ok=True)
    return _readable(url, target)


def _readable(url: str, target: Path) -> Path:
    if not _known_suffix(target.name):
        raise DatasetError(f"{url}: the file it gave is named {target.name!r}, which says nothing of what it holds; "
                           "tinynas reads .npz, .csv and .ts files and .zip, .tar and .tar.gz archives: use a URL "
                           "that ends in the file's name, or download it and pass its path")
    return target


def _download(url: str, folder: Path, *, pinned: str | None) -> tuple[Path, str, int]:
    """Stream ``url`` into ``folder`` within ``DOWNLOAD_DEADLINE_S`` in all; return the file, its SHA-256 and
    size. The file is named after the URL, or, when that names no file tinynas reads, after the server's
    Content-Disposition (``.../download?id=7`` that sends ``data.zip``)."""
    start = time.monotonic()
    deadline = DOWNLOAD_DEADLINE_S

    def left() -> float:
        return deadline - (time.monotonic() - start)

    from tinynas import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"tinynas/{__version__}"})
    try:
        response = urllib.request.urlopen(request, timeout=max(0.05, min(STALL_TIMEOUT_S, left())))
    except urllib.error.HTTPError as exc:
        raise DatasetError(f"{url}: the server answered {exc.code} {exc.reason}; check the URL") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DatasetError(f"{url}: cannot download it ({reason}); check the connection, or download the "
                           "file yourself and pass its path to --dataset") from None
    with response:
        name = _file_name(url)
        sent = response.headers.get_filename()
        if not _known_suffix(name) and sent:
            name = _file_name("/" + urllib.parse.quote(sent))
        target = folder / name
        total = response.headers.get("Content-Length")
        log.info("downloading %s (%s) into %s", url, f"{int(total):,} bytes" if total else "size unknown", folder)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.{writer_tag()}.", suffix=".part")
        digest, size = hashlib.sha256(), 0
        from tqdm import tqdm

        # a bar on a terminal only (disable=None), so that logs and pipes stay clean
        bar = tqdm(total=int(total) if total else None, unit="B", unit_scale=True, desc=f"download {name}",
                   disable=None, leave=False)
        try:
            with bar, os.fdopen(fd, "wb") as out:
                while True:
                    if left() <= 0:
                        raise DatasetError(f"{url}: the download took longer than {deadline:.0f} s in all "
                                           f"({size:,} bytes so far); try again on a faster connection, or "
                                           "download the file yourself and pass its path to --dataset")
                    _read_timeout(response, max(0.05, min(STALL_TIMEOUT_S, left())))
                    try:
                        block = response.read1(CHUNK_BYTES)  # what has arrived, not a full chunk
                    except (TimeoutError, OSError) as exc:
                        if left() <= 0:
                            continue  # the deadline message above
                        raise DatasetError(f"{url}: the download broke off after {size:,} bytes ({exc}); try "
                                           "again") from None
                    if not block:
                        break
                    out.write(block)
                    digest.update(block)
                    size += len(block)
                    bar.update(len(block))
            if total is not None and size != int(total):
                raise DatasetError(f"{url}: the server sent {size:,} of the {int(total):,} bytes it announced; "
                                   "try again")
            got = digest.hexdigest()
            if pinned is not None and got != pinned:
                raise DatasetError(f"{url}: the download's SHA-256 is {got}, not the pinned {pinned}; the file on "
                                   "the server changed or the pin is wrong: nothing was kept")
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    log.info("downloaded %s: %s bytes, sha256 %s", url, f"{size:,}", got)
    return target, got, size


def _read_timeout(response: Any, seconds: float) -> None:
    """Let the next read of ``response`` block ``seconds`` at most, so one slow read cannot outlast the
    deadline (http.client keeps the socket in its file object; without one, the urlopen timeout holds)."""
    sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
    if sock is not None:
        try:
            sock.settimeout(seconds)
        except OSError:  # closed: the body has ended
            pass


# -- archives -------------------------------------------------------------------------------------
def archive_suffix(path: Path) -> str | None:
    """The archive suffix of ``path`` (``.tar.gz`` before ``.tar``), or None."""
    name = path.name.lower()
    return next((s for s in ARCHIVE_SUFFIXES if name.endswith(s)), None)


def _macos_side_file(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return bool(parts) and (parts[0] == "__MACOSX" or parts[-1].startswith("._") or parts[-1] == ".DS_Store")


def _entries(archive: Path) -> list[tuple[str, str, int]]:
    """Every member of ``archive`` as (name, "file", "dir" or "other", size)."""
    if archive_suffix(archive) == ".zip":
        try:
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise DatasetError(f"{archive}: not a readable .zip ({exc}); download or pack it again") from None
        def kind(info: zipfile.ZipInfo) -> str:
            mode = stat.S_IFMT(info.external_attr >> 16)  # 0: made where file modes are not kept
            if mode in (0, stat.S_IFREG, stat.S_IFDIR):
                return "dir" if info.is_dir() else "file"
            return "other"

        return [(i.filename, kind(i), i.file_size) for i in infos]
    try:
        with tarfile.open(archive, "r:*") as tf:
            members = tf.getmembers()
    except (tarfile.TarError, OSError) as exc:
        raise DatasetError(f"{archive}: not a readable tar archive ({exc}); download or pack it again") from None
    return [(m.name, "file" if m.isfile() else "dir" if m.isdir() else "other", m.size) for m in members]


def _members(archive: Path) -> list[tuple[str, int]]:
    """The files of ``archive`` to unpack (name, size); DatasetError for a member that would land outside
    the folder it is unpacked into, a link or a special file. macOS's side files are left out."""
    files = []
    for name, kind, size in _entries(archive):
        if _macos_side_file(name):
            continue
        pure = PurePosixPath(name.replace("\\", "/"))
        if pure.is_absolute() or ".." in pure.parts or (pure.parts and ":" in pure.parts[0]):
            raise DatasetError(f"{archive}: member {name!r} would be written outside the folder it is unpacked "
                               "into; tinynas does not unpack such an archive: repack it with relative paths")
        if kind == "other":
            raise DatasetError(f"{archive}: member {name!r} is a link or a special file; tinynas unpacks only "
                               "files and folders: repack it without links")
        if kind == "file":
            files.append((name, size))
    return files


def _extract(archive: Path, dest: Path, names: list[str]) -> None:
    if archive_suffix(archive) == ".zip":
        with zipfile.ZipFile(archive) as zf:
            for name in names:
                zf.extract(name, dest)
        return
    wanted = set(names)
    with tarfile.open(archive, "r:*") as tf:
        members = [m for m in tf.getmembers() if m.name in wanted]
        if hasattr(tarfile, "data_filter"):
            tf.extractall(dest, members=members, filter="data")
        else:  # Python without extraction filters: _members checked every name
            tf.extractall(dest, members=members)


def unpack(archive: Path) -> Path:
    """The folder ``archive`` is unpacked in, unpacking it the first time (again when the file changed)."""
    archive = archive.resolve()
    st = archive.stat()
    key = hashlib.sha1(f"{archive}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:16]
    dest = tinynas_home() / "unpacked" / key
    if dest.is_dir():
        return dest
    files = _members(archive)
    if not files:
        raise DatasetError(f"{archive}: the archive holds no files")
    dest.parent.mkdir(parents=True, exist_ok=True)
    need = sum(size for _, size in files)
    free = shutil.disk_usage(dest.parent).free
    if need > free:
        raise DatasetError(f"{archive}: unpacked it needs {need:,} bytes and {dest.parent} has {free:,} free; free "
                           "some space or set TINYNAS_HOME to a larger disk")
    log.info("unpacking %s (%d files, %s bytes) into %s", archive, len(files), f"{need:,}", dest)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{key}-{writer_tag()}-"))
    try:
        _extract(archive, tmp, [name for name, _ in files])
        # which archive this is, for `tinynas datasets cache` (hidden: loaders skip dot files)
        (tmp / f".{SOURCE_FILE}").write_text(json.dumps({"archive": str(archive)}))
        try:
            os.replace(tmp, dest)
        except OSError:  # another process unpacked it meanwhile
            if not dest.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest


def dataset_in(folder: Path) -> Path:
    """The dataset an unpacked archive holds: inside its one top folder (when it holds no data file beside
    it), its one ``*_TRAIN.ts`` or its one ``.npz``/``.csv`` file, else the folder itself."""
    entries = [e for e in sorted(folder.iterdir()) if not e.name.startswith(".")]
    dirs = [e for e in entries if e.is_dir()]
    data = [e for e in entries if e.is_file() and e.suffix.lower() in DATA_FILE_SUFFIXES]
    if len(dirs) == 1 and not data:
        return dataset_in(dirs[0])
    if not dirs:
        trains = [e for e in data if e.name.upper().endswith("_TRAIN.TS")]
        if len(trains) == 1:
            return trains[0]
        if len(data) == 1:
            return data[0]
    return folder
