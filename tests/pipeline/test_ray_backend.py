"""``--backend ray``: candidate trainings as tasks on a real Ray instance (2 CPUs, started here).

The driver keeps the journal and the cache; a killed worker's candidate is trained again; a killed
driver resumes without training anything twice; a sweep runs boards at once; bad input says the fix
and writes nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pipeline_helpers import tiny_settings

ray = pytest.importorskip("ray", reason="the Ray extra is not installed: pip install 'tinynas[ray]'")

from tinynas.errors import SearchError  # noqa: E402
from tinynas.pipeline import ray_backend  # noqa: E402
from tinynas.pipeline.journal import Journal  # noqa: E402
from tinynas.pipeline.run import search  # noqa: E402

TINYNAS = [sys.executable, "-m", "tinynas.cli.main"]


@pytest.fixture(scope="module")
def cluster():
    """A local 2-CPU Ray instance for this module; its address lets other processes join it."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _candidates(out: Path, stage: str) -> list[dict]:
    return Journal(out / "journal.jsonl").candidates(stage=stage)


def _task_pids() -> list[int]:
    """Ray workers running a training now (Ray titles a busy worker ``ray::<function>``)."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if Path(f"/proc/{name}/cmdline").read_bytes().startswith(b"ray::_train_task"):
                    pids.append(int(name))
            except OSError:
                continue
    return pids


def _kill_a_training(after_s: float, timeout_s: float = 120.0) -> list[int]:
    """SIGKILL the first worker seen training for ``after_s`` seconds; returns the pids killed."""
    seen: dict[int, float] = {}
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        now = time.monotonic()
        for pid in _task_pids():
            seen.setdefault(pid, now)
            if now - seen[pid] >= after_s:
                os.kill(pid, signal.SIGKILL)
                return [pid]
        time.sleep(0.1)
    return []


@pytest.mark.slow
def test_a_search_on_ray_equals_the_local_search(cluster, tmp_path):
    """Same seed, single-threaded trainings: the same archs and the same accuracies, and the driver
    wrote the cache and the kept weights (no shared file system needed)."""
    settings = tiny_settings(strategy="random", workers=2, final_top_k=1)
    local = search(settings=settings, out=tmp_path / "local")
    remote = search(settings=settings.replace(backend="ray"), out=tmp_path / "ray")
    for stage in ("search", "final"):
        a = [(e["id"], e["accuracy"]) for e in _candidates(tmp_path / "local", stage)]
        b = [(e["id"], e["accuracy"]) for e in _candidates(tmp_path / "ray", stage)]
        assert sorted(a) == sorted(b) and a
    entries = _candidates(tmp_path / "ray", "search")
    assert all(e["worker"] != os.getpid() and e["attempts"] == 1 and e["node"] for e in entries)
    assert remote.summary["winner"]["id"] == local.summary["winner"]["id"]
    assert (tmp_path / "ray" / "model" / "model.keras").is_file()
    assert len(list((tmp_path / "ray" / "cache" / "models").glob("*.keras"))) == 1
    assert len(list((tmp_path / "ray" / "cache").glob("??/*.json"))) == len(entries) + 1
    assert len(ray_backend._STATE["data"]) == 1  # the dataset went into the object store once
    config = (tmp_path / "ray" / "config.toml").read_text()
    assert 'backend = "ray"' in config


@pytest.mark.slow
def test_a_killed_worker_requeues_its_candidate(cluster, tmp_path):
    killed: list[int] = []
    killer = threading.Thread(target=lambda: killed.extend(_kill_a_training(after_s=2.0)))
    killer.start()
    out = tmp_path / "run"
    search(settings=tiny_settings(strategy="random", budget_candidates=2, final_top_k=1, backend="ray"), out=out)
    killer.join()
    assert killed, "no training was seen to kill"
    entries = _candidates(out, "search") + _candidates(out, "final")
    assert all(e["accuracy"] is not None for e in entries)
    requeued = [e for e in entries if e["attempts"] == 2]
    assert len(requeued) == 1 and requeued[0]["lost_workers"][0].startswith("WorkerCrashedError")
    assert len({e["id"] for e in _candidates(out, "search")}) == 2


@pytest.mark.slow
def test_a_worker_lost_too_often_fails_only_its_candidate(cluster, tmp_path, monkeypatch):
    from tinynas.pipeline.evaluate import EvalJob, WorkerSpec
    from tinynas.space import get_space
    from tinynas.train.budget import TrainBudget

    monkeypatch.setattr(ray_backend, "MAX_ATTEMPTS", 1)
    space = get_space("dscnn", input_shape=(8, 8, 1), num_classes=10)
    spec = WorkerSpec(dataset="digits", dataset_seed=0, space="dscnn", input_shape=(8, 8, 1), num_classes=10,
                      cache_dir=str(tmp_path / "cache"))
    evaluator = ray_backend.RayEvaluator(spec=spec, workers=1)
    job = EvalJob(arch=space.sample(__import__("numpy").random.default_rng(0)),
                  budget=TrainBudget(epochs=50, max_train_samples=200, evaluate_test=False), seed=0, fidelity="low")
    fut = evaluator.submit(job)
    assert _kill_a_training(after_s=1.0)
    with pytest.raises(SearchError, match="lost its Ray worker 1 times"):
        fut.result(timeout=60)
    assert not list((tmp_path / "cache").glob("??/*.json"))


@pytest.mark.slow
def test_a_killed_driver_resumes_without_training_twice(cluster, tmp_path):
    """The driver joins the cluster (--ray-address), is killed after two candidates, and the same
    command finishes the search: every candidate journaled once, the first entries untouched."""
    out = tmp_path / "run"
    args = [*TINYNAS, "search", "--profile", "nano33ble", "--dataset", "digits", "--strategy", "random",
            "--budget-candidates", "5", "--search-epochs", "1", "--search-samples", "200", "--final-epochs", "1",
            "--final-top-k", "1", "--backend", "ray", "--ray-address", cluster, "--no-progress", "--out", str(out)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    journal = out / "journal.jsonl"
    end = time.monotonic() + 180
    while time.monotonic() < end and proc.poll() is None:
        if journal.is_file() and journal.read_text().count('"type": "candidate"') >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = Journal(journal).entries()
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    after = Journal(journal).entries()
    assert after[:len(before)] == before
    ids = [e["id"] for e in _candidates(out, "search")]
    assert len(ids) == 5 and len(set(ids)) == 5
    assert (out / "summary.json").is_file()


@pytest.mark.slow
def test_a_three_board_sweep_runs_boards_at_once(cluster, tmp_path):
    from tinynas.pipeline.sweep import board_slots, sweep

    settings = tiny_settings(strategy="random", budget_candidates=2, final_top_k=1, backend="ray")
    assert board_slots(settings) == 2
    boards = ["nano33ble", "nucleo-l4r5zi", "nucleo-h743zi"]
    result = sweep(settings=settings, profiles=boards, out=tmp_path / "sweep", deploy=False)
    rows = {b["board"]: b for b in result.report["boards"]}
    assert sorted(rows) == sorted(boards) and all(r["status"] == "ok" for r in rows.values()), rows
    starts = {b: Journal(tmp_path / "sweep" / b / "journal.jsonl").events()[0]["time"] for b in boards}
    ends = {b: (tmp_path / "sweep" / b / "summary.json").stat().st_mtime for b in boards}
    first, second = result.report["run_order"][:2]
    assert starts[second] < ends[first], "the first two boards did not overlap"
    # The board that started after another finished was told its results, as in a local sweep.
    assert rows[result.report["run_order"][2]]["shared"] > 0


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@pytest.mark.slow
def test_ctrl_c_stops_a_concurrent_sweep_and_the_same_command_resumes(cluster, tmp_path):
    """The boards run in threads, which never see SIGINT: each running board journals its interruption."""
    out = tmp_path / "sweep"
    args = [*TINYNAS, "sweep", "--profiles", "nano33ble,nucleo-l4r5zi,nucleo-h743zi", "--dataset", "digits",
            "--strategy", "random", "--budget-candidates", "4", "--search-epochs", "1", "--search-samples", "200",
            "--final-epochs", "1", "--final-top-k", "1", "--search-only", "--backend", "ray", "--ray-address", cluster,
            "--no-progress", "--out", str(out)]
    # The child inherits this worker's SIGINT disposition and signal mask; earlier tests in the same
    # pytest worker can leave SIGINT ignored or blocked (the sweep then ran to the end, exit 0, in two
    # full-suite runs), so it starts as a shell would start it: default action, unblocked.
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
    end = time.monotonic() + 180
    while time.monotonic() < end and proc.poll() is None:
        if any(j.read_text().count('"type": "candidate"') for j in out.glob("*/journal.jsonl")):
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130, proc.stderr.read()[-2000:]
    assert f"kept in {out}; the same command again resumes it" in proc.stderr.read()
    interrupted = [j.parent.name for j in out.glob("*/journal.jsonl")
                   if any(e["event"] == "interrupted" for e in Journal(j).events(stage="search"))]
    assert len(interrupted) == 2, interrupted
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count(" ok ") == 3


def test_ray_address_needs_the_ray_backend():
    with pytest.raises(SearchError, match="--ray-address 10.0.0.5:6379 is for --backend ray"):
        tiny_settings(ray_address="10.0.0.5:6379")


def test_an_unknown_backend_lists_the_known_ones():
    with pytest.raises(SearchError, match="local, ray"):
        tiny_settings(backend="slurm")


def test_ray_not_installed_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    out = tmp_path / "run"
    with pytest.raises(SearchError, match=r"pip install 'tinynas\[ray\]'"):
        search(settings=tiny_settings(backend="ray"), out=out)
    assert not out.exists()


def test_an_unreachable_ray_address_fails_fast_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    args = [*TINYNAS, "search", "--profile", "nano33ble", "--dataset", "digits", "--backend", "ray",
            "--ray-address", "127.0.0.1:9", "--out", str(out)]
    started = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "cannot reach the Ray cluster at --ray-address 127.0.0.1:9" in done.stderr
    assert "ray start --head" in done.stderr
    assert time.monotonic() - started < 60 and not out.exists()


@pytest.mark.slow
def test_a_cluster_without_tinynas_is_refused_with_the_fix(tmp_path):
    """Workers whose Python cannot import tinynas (here a broken package shadows it on the workers)."""
    fake = tmp_path / "node" / "tinynas"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ModuleNotFoundError("No module named \'tinynas\'", name="tinynas")\n')
    script = (
        "import ray\n"
        f"ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, "
        f"runtime_env={{'working_dir': {str(fake.parent)!r}}})\n"
        "from tinynas.errors import SearchError\n"
        "from tinynas.pipeline.ray_backend import connect\n"
        "try:\n    connect()\nexcept SearchError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert "workers cannot import tinynas" in done.stdout, done.stdout + done.stderr[-2000:]
    assert "pip install 'tinynas[ray]'" in done.stdout
