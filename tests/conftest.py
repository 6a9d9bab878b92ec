"""Shared test settings: quiet, single-threaded TensorFlow, and where the ground-truth benchmarks are."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # cli_run.py and other helpers beside this file

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_benchmarks() -> Path:
    """The repository's ``benchmarks/`` (MLPerf Tiny models, NAS-Bench-201 table; see its README)."""
    from tinynas.resources import data_dir

    return data_dir("benchmarks")


@pytest.fixture(scope="session")
def mlperf_models(shared_benchmarks: Path) -> dict[str, Path]:
    base = shared_benchmarks / "mlperf_tiny"
    return {
        "kws": base / "kws_ref_model.tflite",
        "ic": base / "pretrainedResnet_quant.tflite",
        "vww": base / "vww_96_int8.tflite",
        "ad": base / "ad01_int8.tflite",
    }


@pytest.fixture(scope="session")
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tinynas_home")


@pytest.fixture(autouse=True)
def tinynas_home(session_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One TINYNAS_HOME per worker session (generated datasets, image folders' pixels), set for every test so
    none writes into the user's ~/.cache; a test may set its own. Set per test, not once in os.environ: a
    session fixture of another directory set later on the same xdist worker replaced it, and mnist1d was
    cached in the other home."""
    monkeypatch.setenv("TINYNAS_HOME", str(session_home))
    return session_home


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001
    """Seconds per test file and per xdist worker, after ``--durations``: the workers take whole
    files (``--dist loadfile``), so when the suite's time drifts, this shows whether one file
    grew or the two workers came out unbalanced."""
    per_file: dict[str, float] = {}
    per_worker: dict[str, float] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            seconds, nodeid = getattr(report, "duration", None), getattr(report, "nodeid", "")
            if not isinstance(seconds, float) or "::" not in nodeid:
                continue
            per_file[nodeid.split("::")[0]] = per_file.get(nodeid.split("::")[0], 0.0) + seconds
            worker = getattr(getattr(getattr(report, "node", None), "gateway", None), "id", "main")
            per_worker[worker] = per_worker.get(worker, 0.0) + seconds
    if not per_file:
        return
    terminalreporter.write_sep("=", "slowest 15 test files (setup + call + teardown)")
    for path, seconds in sorted(per_file.items(), key=lambda kv: -kv[1])[:15]:
        terminalreporter.write_line(f"{seconds:8.1f}s {path}")
    terminalreporter.write_line("per worker: " + ", ".join(f"{w} {s:.0f}s" for w, s in sorted(per_worker.items())))
