"""The installed package, not the checkout. DESIGN.md: the data folders at the top level (hardware_profiles/,
firmware_templates/, benchmarks/) must be reachable from an installed wheel. The wheel packs them as
``tinynas/_data/<name>`` (pyproject.toml's force-include); a folder or file left out there passes every test
run from the checkout and fails for whoever installs the wheel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = ("hardware_profiles", "firmware_templates", "benchmarks")


def _files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def test_the_wheel_carries_every_data_folder_and_its_commands_find_them(tmp_path):
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)],
                           capture_output=True, text=True, timeout=600, check=False)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("tinynas-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as packed:
        packed.extractall(site)
    for name in DATA:
        assert _files(site / "tinynas" / "_data" / name) == _files(REPO / name), name

    # the unpacked wheel first on the path, run from elsewhere: nothing of the checkout is in reach
    env = {**os.environ, "PYTHONPATH": str(site)}

    def tinynas(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "tinynas.cli.main", *args], capture_output=True, text=True,
                              timeout=300, check=False, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    where = subprocess.run([sys.executable, "-c", "import tinynas.resources as r; print(r.data_dir('benchmarks'))"],
                           capture_output=True, text=True, timeout=120, check=True, env=env, cwd=tmp_path)
    assert Path(where.stdout.strip()) == site / "tinynas" / "_data" / "benchmarks"
    assert len(json.loads(tinynas("profiles", "list", "--json"))) == len(_files(REPO / "hardware_profiles"))
    model = site / "tinynas" / "_data" / "benchmarks" / "mlperf_tiny" / "ad01_int8.tflite"
    out = tmp_path / "fw"
    tinynas("firmware", "generate", "--template", "platformio", "--model", str(model), "--profile", "nucleo-l432kc",
            "--out", str(out))
    # firmware_templates/common's files, copied and included
    assert (out / "src" / "tinynas_protocol.c").is_file() and (out / "src" / "tinynas_runner.cpp").is_file()
    assert "micros()" in (out / "src" / "main.cpp").read_text()
