"""--dataset as a URL or an archive: downloaded from a real HTTP server on localhost, unpacked from real
.zip and .tar.gz files, read by the path kind they hold; bad servers and bad archives get clear errors and
leave nothing half-written behind."""

from __future__ import annotations

import hashlib
import json
import http.server
import io
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tinynas.cli.main import cli
from tinynas.data import load_dataset, remote
from tinynas.errors import DatasetError


def _pictures(root, n=8):
    rng = np.random.default_rng(0)
    for c, label in enumerate(("left", "right")):
        (root / label).mkdir(parents=True)
        for i in range(n):
            pixels = (rng.integers(0, 90, size=(8, 8)) + 150 * c).astype(np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i}.png")
    return root


def _npz(path):
    rng = np.random.default_rng(1)
    np.savez(path, x=rng.normal(size=(60, 16, 1)).astype(np.float32), y=np.arange(60) % 3)
    return path


def _zip_folder(folder, archive, *, top, extra=()):
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, f"{top}/{f.relative_to(folder)}")
        for name, data in extra:
            zf.writestr(name, data)
    return archive


@pytest.fixture
def server(tmp_path):
    """An HTTP server on localhost serving ``tmp_path/www``; ``/stall`` paths send a few bytes and hang,
    ``/short`` paths announce more bytes than they send, ``/download?file=NAME`` sends www/NAME under the
    name its Content-Disposition gives (and ``/download?file=NAME&anonymous=1`` under none)."""
    root = tmp_path / "www"
    root.mkdir()
    release = threading.Event()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path.startswith("/stall"):
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                self.wfile.write(b"x" * 100)
                self.wfile.flush()
                release.wait(30)
                return
            if self.path.startswith("/short"):
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b"y" * 10)
                return
            if self.path.startswith("/download?"):
                query = dict(pair.split("=") for pair in self.path.split("?", 1)[1].split("&"))
                body = (root / query["file"]).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                if "anonymous" not in query:
                    self.send_header("Content-Disposition", f'attachment; filename="{query["file"]}"')
                self.end_headers()
                self.wfile.write(body)
                return
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.root = root
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    release.set()
    httpd.shutdown()
    httpd.server_close()


def _downloads(home):
    folder = home / "downloads"
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_a_url_is_downloaded_once_and_then_read_offline(server, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("TINYNAS_HOME", str(home))
    data = _npz(server.root / "readings.npz")
    url = f"{server.url}/readings.npz"
    ds = load_dataset(url)
    assert ds.fingerprint == load_dataset(data).fingerprint and ds.input_shape == (16, 1)
    assert _downloads(home) == ["readings.npz", "source.json"]
    data.unlink()  # the server no longer has it: the cached copy serves
    assert load_dataset(url).fingerprint == ds.fingerprint
    server.shutdown()  # nor is there a server
    assert load_dataset(url).fingerprint == ds.fingerprint


def test_a_url_that_names_no_file_takes_the_name_the_server_sends(server, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYNAS_HOME", str(tmp_path / "home"))
    data = _npz(server.root / "readings.npz")
    assert load_dataset(f"{server.url}/download?file=readings.npz").fingerprint == load_dataset(data).fingerprint
    for _ in range(2):  # downloaded, then from the cache: the same answer
        with pytest.raises(DatasetError, match=r"anonymous=1: the file it gave is named 'download', which says "
                                               r"nothing of what it holds"):
            load_dataset(f"{server.url}/download?file=readings.npz&anonymous=1")


def test_a_zip_of_an_image_folder_from_a_url_or_a_path_is_the_folder_it_holds(server, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYNAS_HOME", str(tmp_path / "home"))
    folder = _pictures(tmp_path / "pics")
    # made on a Mac: one top folder, __MACOSX side files and a .DS_Store, which must not become classes
    archive = _zip_folder(folder, server.root / "pics.zip", top="pics",
                          extra=[("__MACOSX/pics/._left", b"\0"), ("pics/.DS_Store", b"\0"),
                                 ("pics/left/._0.png", b"\0")])
    expected = load_dataset(folder).fingerprint
    packed = load_dataset(archive)
    assert packed.fingerprint == expected and packed.name == "pics.zip" and packed.source.endswith(f", from {archive}")
    resized = load_dataset(folder, image_size=8).fingerprint
    assert load_dataset(f"{server.url}/pics.zip", image_size=8).fingerprint == resized

    # the command line, with a loader option of the kind the archive holds
    result = CliRunner().invoke(cli, ["datasets", "inspect", f"{server.url}/pics.zip", "-o", "image_size=8"])
    assert result.exit_code == 0, result.output
    assert "left" in result.output and "right" in result.output and "MACOSX" not in result.output


def test_a_tar_gz_of_one_file_and_a_zip_of_a_ucr_pair_are_the_file_they_hold(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYNAS_HOME", str(tmp_path / "home"))
    data = _npz(tmp_path / "readings.npz")
    packed = tmp_path / "readings.tar.gz"
    with tarfile.open(packed, "w:gz") as tf:
        tf.add(data, "readings.npz")
    assert load_dataset(packed).fingerprint == load_dataset(data).fingerprint

    header = "@problemName T\n@univariate true\n@classLabel true a b\n@data\n"
    ucr = tmp_path / "T.zip"
    with zipfile.ZipFile(ucr, "w") as zf:
        zf.writestr("T/T_TRAIN.ts", header + "1,2,3,4:a\n4,3,2,1:b\n" * 6)
        zf.writestr("T/T_TEST.ts", header + "1,2,3,4:a\n4,3,2,1:b\n" * 3)
        zf.writestr("T/T_TRAIN.txt", "the same in another format")
    ds = load_dataset(ucr)
    assert ds.input_shape == (4, 1) and len(ds.y_test) == 6


def test_an_archive_that_writes_outside_its_folder_or_holds_links_is_refused(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("TINYNAS_HOME", str(home))
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("pics/left/0.png", b"x")
        zf.writestr("../escaped.txt", b"gotcha")
    with pytest.raises(DatasetError, match=r"evil.zip: member '../escaped.txt' would be written outside"):
        load_dataset(evil)
    linked = tmp_path / "linked.tar"
    with tarfile.open(linked, "w") as tf:
        info = tarfile.TarInfo("pics/left/0.png")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(DatasetError, match=r"linked.tar: member 'pics/left/0.png' is a link or a special file"):
        load_dataset(linked)
    empty = tmp_path / "flowers.zip"
    empty.write_bytes(b"PK\x05\x06" + bytes(18))
    with pytest.raises(DatasetError, match=r"flowers.zip: the archive holds no files"):
        load_dataset(empty)
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not gzip")
    with pytest.raises(DatasetError, match=r"broken.tar.gz: not a readable tar archive"):
        load_dataset(broken)
    assert not (tmp_path / "escaped.txt").exists() and not (home / "escaped.txt").exists()
    unpacked = home / "unpacked"
    assert not unpacked.exists() or not any(unpacked.iterdir())  # nothing half-unpacked left


def test_bad_downloads_say_what_failed_and_keep_nothing(server, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("TINYNAS_HOME", str(home))
    with pytest.raises(DatasetError, match=r"/missing.npz: the server answered 404"):
        load_dataset(f"{server.url}/missing.npz")
    with pytest.raises(DatasetError, match=r"/short.npz: the server sent 10 of the 1,000 bytes it announced"):
        load_dataset(f"{server.url}/short.npz")

    data = _npz(server.root / "readings.npz")
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    with pytest.raises(DatasetError, match=r"the download's SHA-256 is [0-9a-f]{64}, not the pinned 0{64}"):
        load_dataset(f"{server.url}/readings.npz#sha256={'0' * 64}")
    with pytest.raises(DatasetError, match=r"the part after '#' must be sha256= and 64 hex digits"):
        load_dataset(f"{server.url}/readings.npz#md5=abc")
    assert _downloads(home) == [] and not any((home / "downloads").iterdir())  # nothing half-written or unverified
    assert load_dataset(f"{server.url}/readings.npz#sha256={digest}").input_shape == (16, 1)

    # the deadline is for the whole download: a server that stops sending is given up at it
    monkeypatch.setattr(remote, "DOWNLOAD_DEADLINE_S", 1.0)
    start = time.monotonic()
    with pytest.raises(DatasetError, match=r"/stall.npz: the download took longer than 1 s in all \(100 bytes"):
        load_dataset(f"{server.url}/stall.npz")
    assert time.monotonic() - start < 10
    assert not [name for name in _downloads(home) if "stall" in name]

    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    result = CliRunner().invoke(cli, ["datasets", "inspect", f"http://127.0.0.1:{port}/gone.npz"])
    assert result.exit_code == 1 and isinstance(result.exception, DatasetError)
    assert "cannot download it" in str(result.exception) and "pass its path to --dataset" in str(result.exception)


def test_the_file_name_of_a_url_is_safe_and_keeps_its_suffix():
    assert remote._file_name("https://host/a/b/My%20Data%20(v2).tar.gz?dl=1") == "My_Data__v2_.tar.gz"
    assert remote._file_name("https://host/") == "download"
    assert remote._file_name("https://host/..%2F..%2Fetc") == "_.._etc"
    assert remote.url_scheme("HTTPS://host/x.npz") == "https" and remote.url_scheme("digits") is None
    assert remote.url_scheme("ftp://host/x.npz") is None and remote.url_scheme("./pics") is None


def test_an_archive_changed_on_disk_is_unpacked_again(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYNAS_HOME", str(tmp_path / "home"))
    folder = _pictures(tmp_path / "pics")
    archive = _zip_folder(folder, tmp_path / "pics.zip", top="pics")
    first = load_dataset(archive).fingerprint
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), 7, np.uint8)).save(buffer, format="PNG")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("pics/left/extra.png", buffer.getvalue())
    assert load_dataset(archive).fingerprint != first


def test_the_cache_command_lists_and_clears_only_what_tinynas_wrote(server, tmp_path, monkeypatch):
    from tinynas.cli.datasets import cache_cmd
    from tinynas.data.cache_entries import KINDS

    home = tmp_path / "home"
    monkeypatch.setenv("TINYNAS_HOME", str(home))
    _npz(server.root / "readings.npz")
    url = f"{server.url}/readings.npz"
    load_dataset(url)
    archive = _zip_folder(_pictures(tmp_path / "pics"), tmp_path / "pics.zip", top="pics")
    load_dataset(archive)
    mine = [home / "downloads" / "notes.txt", home / "profiles" / "my-board.toml", home / "unpacked" / "keep"]
    for path in mine:  # a user's files beside the cache: never listed, never removed
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("mine")

    listed = CliRunner().invoke(cli, ["datasets", "cache", "--json"])
    assert listed.exit_code == 0, listed.output
    entries = json.loads(listed.output)["entries"]
    assert {(e["kind"], e["what"]) for e in entries} >= {("downloads", url), ("unpacked", str(archive.resolve()))}
    assert {e["kind"] for e in entries} <= set(KINDS) and not any("mine" in e["path"] for e in entries)
    assert "notes.txt" not in listed.output and "my-board" not in listed.output

    cleared = CliRunner().invoke(cli, ["datasets", "cache", "--clear", "downloads", "--clear", "unpacked"])
    assert cleared.exit_code == 0 and cleared.output.startswith(f"{home} removed ")
    assert all(path.read_text() == "mine" for path in mine)
    left = json.loads(CliRunner().invoke(cli, ["datasets", "cache", "--json"]).output)["entries"]
    assert not [e for e in left if e["kind"] in ("downloads", "unpacked")]
    assert load_dataset(url).input_shape == (16, 1)  # downloaded again
    assert list([c for c in cache_cmd.params if c.name == "clear"][0].type.choices) == ["all", *KINDS]


def test_clearing_keeps_what_a_live_process_is_still_writing(tmp_path, monkeypatch, caplog):
    """Another run downloading or unpacking while the user clears the cache: its temporaries stay (it would
    fail on rename otherwise); those of a writer that died are cut-off leftovers, and go."""
    import os
    import subprocess
    import sys

    from tinynas.data.cache_entries import cache_entries, clear_cache

    home = tmp_path / "home"
    monkeypatch.setenv("TINYNAS_HOME", str(home))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # reaped: its id names no process now
    live = os.getpid()
    paths = {}
    for who, pid in (("live", live), ("dead", dead.pid)):
        key = ("a" if who == "live" else "b") * 16
        unpacking = home / "unpacked" / f".{key}-pid{pid}-x1y2"
        (unpacking / "pics" / "cat").mkdir(parents=True)
        (unpacking / "pics" / "cat" / "1.png").write_bytes(b"png")
        download = home / "downloads" / key
        download.mkdir(parents=True)
        (download / f".readings.npz.pid{pid}.q9.part").write_bytes(b"half")
        paths[who] = (unpacking, download)
    assert len(cache_entries(kinds=("downloads", "unpacked"))) == 4
    with caplog.at_level("WARNING"):
        removed = clear_cache(kinds=("downloads", "unpacked"))
    assert sorted(e.path for e in removed) == sorted(paths["dead"])
    assert all(p.is_dir() for p in paths["live"]) and not any(p.exists() for p in paths["dead"])
    assert f"process {live} is still writing it" in caplog.text


def test_downloads_and_unpackings_name_their_writer(server, tmp_path, monkeypatch):
    """The tag busy_writer reads is in the names remote.py really writes (seen mid-write)."""
    import os

    from tinynas.data.cache_entries import busy_writer

    monkeypatch.setenv("TINYNAS_HOME", str(tmp_path / "home"))
    seen = []
    real_extract = remote._extract

    def extract(archive, into, names):
        seen.append(("unpack", busy_writer(into)))
        return real_extract(archive, into, names)

    real_replace = os.replace

    def replace(src, dst):
        if str(src).endswith(".part"):  # the download's last moment as a temporary
            seen.append(("download", busy_writer(Path(src).parent)))
        return real_replace(src, dst)

    monkeypatch.setattr(remote, "_extract", extract)
    monkeypatch.setattr(remote.os, "replace", replace)
    _npz(server.root / "readings.npz")
    load_dataset(f"{server.url}/readings.npz")
    load_dataset(_zip_folder(_pictures(tmp_path / "pics"), tmp_path / "pics.zip", top="pics"))
    assert seen == [("download", os.getpid()), ("unpack", os.getpid())]
