"""Latency measured where a phone, Linux board or GPU model will run, into the same ``LatencyReport``.

``tinynas measure --on TARGET`` lands here (``--port`` stays for serial boards):
``host`` times LiteRT / ONNX Runtime on this machine (``measure.host``); ``ssh:USER@HOST``
copies the model with scp and runs LiteRT's benchmark (or ``trtexec`` for .onnx)
on the board; ``adb[:SERIAL]`` pushes the model and runs a ``benchmark_model`` binary on
an Android device; ``trtexec`` runs NVIDIA's ``trtexec`` on this machine. Tools run
with argument lists, never a local shell; their output is parsed by ``measure.bench_output``.
"""

from __future__ import annotations

import hashlib
import logging
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from tinynas.errors import MeasureError
from tinynas.measure.bench_output import (BenchTimings, parse_benchmark_model, parse_litert_result_json,
                                          parse_trtexec, tail)
from tinynas.measure.runner import LatencyReport, MeasurementFailed, WindowResult, report_path
from tinynas.registry import Registry

log = logging.getLogger(__name__)

TARGET_FORMS = "host, ssh:USER@HOST, adb, adb:SERIAL or trtexec"


@dataclass(frozen=True)
class TargetSpec:
    """Where to measure: ``kind`` is a registered target (host, ssh, adb, trtexec), ``address`` its host or serial."""

    kind: str
    address: str | None = None

    def __str__(self) -> str:
        return self.kind if self.address is None else f"{self.kind}:{self.address}"


def parse_target(text: str) -> TargetSpec:
    """``"ssh:pi@rpi4.local"`` -> ``TargetSpec("ssh", "pi@rpi4.local")``; MeasureError naming the forms otherwise."""
    kind, _, address = str(text).strip().partition(":")
    address = address.strip() or None
    if kind not in TARGETS:
        raise MeasureError(f"--on {text!r}: unknown target {kind!r}; use {TARGET_FORMS}")
    if kind == "ssh" and (address is None or address.startswith("-")):
        raise MeasureError(f"--on {text!r}: ssh needs a host, like ssh:pi@rpi4.local")
    if kind in ("host", "trtexec") and address is not None:
        raise MeasureError(f"--on {text!r}: {kind} takes no address; use {TARGET_FORMS}")
    if address is not None and address.startswith("-"):
        raise MeasureError(f"--on {text!r}: an address may not start with '-'")
    return TargetSpec(kind, address)


@dataclass
class _Session:
    """What one measurement knows and has done so far; a failed one becomes the partial report."""

    spec: TargetSpec
    model: Path
    threads: int
    use_gpu: bool
    runs: int
    warmup: int
    timeout_s: float
    connect_timeout_s: float
    benchmark_binary: str | None
    remote_dir: str
    runtime: str | None = None
    commands: list[list[str]] = field(default_factory=list)
    output: str = ""
    device: dict[str, Any] = field(default_factory=dict)
    windows: tuple[WindowResult, ...] = ()
    timings: BenchTimings | None = None
    bench_command: list[str] | None = None  # the command the report names; default: the last one run

    @property
    def is_onnx(self) -> bool:
        return self.model.suffix.lower() == ".onnx"

    @property
    def remote_model(self) -> str:
        return f"{self.remote_dir.rstrip('/')}/{self.model.name}"

    def run(self, cmd: list[str], *, what: str, hint: Callable[[int, str], str] | None = None) -> str:
        """Run ``cmd`` (an argument list), return stdout+stderr; MeasureError naming it and its output on failure."""
        self.commands.append(cmd)
        tool = cmd[0]
        if "/" not in tool and shutil.which(tool) is None:
            raise MeasureError(f"{what}: `{tool}` is not on PATH; install it or add its folder to PATH "
                               f"(tried to run `{shlex.join(cmd)}`)")
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        except FileNotFoundError:
            raise MeasureError(f"{what}: cannot run `{tool}` (no such file)") from None
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            self.output = out
            raise MeasureError(f"{what}: `{shlex.join(cmd)}` did not finish within {self.timeout_s:.0f} s "
                               f"(raise --timeout-s); it printed:\n    {tail(out)}") from None
        out = (proc.stdout or "") + (proc.stderr or "")
        self.output = out
        if proc.returncode != 0:
            why = hint(proc.returncode, out) if hint else ""
            raise MeasureError(f"{what}: `{shlex.join(cmd)}` exited with status {proc.returncode}"
                               f"{'; ' + why if why else ''}; it printed:\n    {tail(out)}")
        return out


TARGETS: Registry[Callable[[_Session], None]] = Registry("measurement target", error=MeasureError)


@TARGETS.register("host")
def _measure_host(s: _Session) -> None:
    """LiteRT (.tflite) or ONNX Runtime CPU (.onnx) on this machine: one window per timed run."""
    from tinynas.measure.host import time_litert, time_onnx

    s.runtime = "onnxruntime" if s.is_onnx else "litert"
    timer = time_onnx if s.is_onnx else time_litert
    s.commands.append([f"tinynas.measure.host.{timer.__name__}", str(s.model), f"threads={s.threads}",
                       f"runs={s.runs}", f"warmup={s.warmup}"])
    timing = timer(s.model, threads=s.threads, runs=s.runs, warmup=s.warmup)
    import platform

    s.device = {"name": platform.node(), "machine": platform.machine()}
    s.windows = tuple(WindowResult(index=i, inferences=1, elapsed_us=max(1, round(t * 1000.0)))
                      for i, t in enumerate(timing.times_ms))


def _benchmark_args(s: _Session, *, graph: str) -> list[str]:
    delegate = "--use_gpu=true" if s.use_gpu else "--use_xnnpack=true"
    return [f"--graph={graph}", f"--num_threads={s.threads}", delegate, f"--num_runs={s.runs}",
            f"--warmup_runs={s.warmup}"]


def _adb_hint(status: int, out: str) -> str:
    low = out.lower()
    if "not found" in low and "device" in low:
        return "that device is not connected; `adb devices` lists the serials (--on adb:SERIAL)"
    if "no devices" in low or "more than one device" in low:
        return "name the device with --on adb:SERIAL (`adb devices` lists them)"
    if "unauthorized" in low:
        return "accept the USB debugging prompt on the phone"
    return ""


@TARGETS.register("adb")
def _measure_adb(s: _Session) -> None:
    """Android: push the .tflite, run the user's ``benchmark_model`` on the device, parse its timings."""
    if s.is_onnx:
        raise MeasureError(f"{s.model}: adb targets run LiteRT; give the .tflite, not an .onnx")
    if not s.benchmark_binary:
        raise MeasureError("--on adb needs --benchmark-binary: the path of LiteRT's benchmark_model on the device "
                           "(push it once: adb push benchmark_model /data/local/tmp/)")
    s.runtime = "litert benchmark_model"
    adb = ["adb", *(["-s", s.spec.address] if s.spec.address else [])]
    s.run([*adb, "push", str(s.model), s.remote_model], what=f"{s.spec}: pushing the model", hint=_adb_hint)
    remote = [s.benchmark_binary, *_benchmark_args(s, graph=s.remote_model)]
    out = s.run([*adb, "shell", shlex.join(remote)], what=f"{s.spec}: benchmark_model", hint=_adb_hint)
    s.timings = parse_benchmark_model(out, what=f"{s.spec}: `{shlex.join(remote)}`")


def _ssh_hint(status: int, out: str) -> str:
    if status == 255:
        return ("ssh could not log in or connect: check the host is reachable and accepts key login "
                "without a password prompt (BatchMode=yes)")
    if status == 127:
        return "the command is not installed on the board"
    return ""


@TARGETS.register("ssh")
def _measure_ssh(s: _Session) -> None:
    """Linux board: scp the model, run LiteRT's benchmark (or trtexec for .onnx) over ssh, parse its result.

    Without ``--benchmark-binary`` a .tflite runs in ``ai_edge_litert.tools.benchmark_litert_model``
    (pip install ai-edge-litert on the board), whose ``--result_json`` is read back with ``cat``."""
    opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, round(s.connect_timeout_s))}"]
    host = str(s.spec.address)
    ssh = ["ssh", *opts, host]
    s.run(["scp", *opts, "--", str(s.model), f"{host}:{s.remote_model}"], what=f"{s.spec}: copying the model",
          hint=_ssh_hint)
    if s.is_onnx:
        s.runtime = "tensorrt trtexec"
        remote = [s.benchmark_binary or "trtexec", *_trtexec_args(s, onnx=s.remote_model)]
        out = s.run([*ssh, shlex.join(remote)], what=f"{s.spec}: trtexec", hint=_ssh_hint)
        s.timings = parse_trtexec(out, what=f"{s.spec}: `{shlex.join(remote)}`")
    elif s.benchmark_binary:
        s.runtime = "litert benchmark_model"
        remote = [s.benchmark_binary, *_benchmark_args(s, graph=s.remote_model)]
        out = s.run([*ssh, shlex.join(remote)], what=f"{s.spec}: benchmark_model", hint=_ssh_hint)
        s.timings = parse_benchmark_model(out, what=f"{s.spec}: `{shlex.join(remote)}`")
    else:
        s.runtime = "litert benchmark_litert_model"
        result = s.remote_model + ".latency.json"
        remote = ["python3", "-m", "ai_edge_litert.tools.benchmark_litert_model", f"--model={s.remote_model}",
                  f"--num_threads={s.threads}", f"--num_runs={s.runs}", f"--warmup_runs={s.warmup}",
                  *(["--use_gpu"] if s.use_gpu else []), f"--result_json={result}"]
        s.run([*ssh, shlex.join(remote)], what=f"{s.spec}: benchmark_litert_model", hint=_ssh_hint)
        text = s.run([*ssh, shlex.join(["cat", result])], what=f"{s.spec}: reading {result}", hint=_ssh_hint)
        s.timings = parse_litert_result_json(text, what=f"{s.spec}: {result} of `{shlex.join(remote)}`")
        s.bench_command = [*ssh, shlex.join(remote)]  # the report names the benchmark, not the cat


#: trtexec warms up for a time, not a number of runs: its --warmUp is milliseconds (its default, 200)
TRTEXEC_WARMUP_MS = 200


def _trtexec_args(s: _Session, *, onnx: str) -> list[str]:
    """``--warmUp`` is trtexec's default 200 ms for any warm-up asked for (passing the run count gave 1-5 ms,
    too short for the GPU's clocks to rise), 0 for none. An fp16 model (deploy's model_fp16.onnx) gets
    ``--fp16``, as its build_trt_engine.sh does: without it TensorRT may pick fp32 kernels for it."""
    return [f"--onnx={onnx}", f"--iterations={s.runs}", f"--warmUp={TRTEXEC_WARMUP_MS if s.warmup > 0 else 0}",
            *(["--fp16"] if _onnx_has_fp16_weights(s.model) else [])]


def _onnx_has_fp16_weights(path: Path) -> bool:
    """Whether the ONNX model at ``path`` holds float16 initializers; False for a file onnx cannot read (trtexec
    then says what is wrong with it)."""
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - any unreadable file: trtexec reports it
        return False
    return any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)


@TARGETS.register("trtexec")
def _measure_trtexec(s: _Session) -> None:
    """NVIDIA GPU on this machine: build a TensorRT engine from the .onnx with trtexec and read its timing."""
    if not s.is_onnx:
        raise MeasureError(f"{s.model}: trtexec needs the .onnx model, not {s.model.suffix or 'this file'}")
    s.runtime = "tensorrt trtexec"
    cmd = [s.benchmark_binary or "trtexec", *_trtexec_args(s, onnx=str(s.model))]
    out = s.run(cmd, what="trtexec")
    s.timings = parse_trtexec(out, what=f"`{shlex.join(cmd)}`")


def measure_on_target(*, target: str | TargetSpec, model: str | Path, profile: Any = None,
                      threads: int | None = None, runs: int = 50, warmup: int = 5,
                      benchmark_binary: str | None = None, remote_dir: str = "/data/local/tmp",
                      run_dir: str | Path | None = None, timeout_s: float = 300.0,
                      connect_timeout_s: float = 10.0) -> LatencyReport:
    """Measure ``model`` (.tflite or .onnx) on ``target`` and return a ``LatencyReport``.

    Threads default to the profile's (``[extra] threads``, else 1); a ``gpu-delegate`` profile
    runs benchmark_model with ``--use_gpu=true``. Writes ``<run_dir>/measure/latency.json``.
    Raises MeasureError for bad arguments, MeasurementFailed (with the partial report, also
    written) when a tool is missing, fails, times out or prints output that cannot be parsed.
    """
    spec = target if isinstance(target, TargetSpec) else parse_target(target)
    model = Path(model)
    if not model.is_file():
        raise MeasureError(f"{model}: no such model file; give the .tflite (or .onnx) to measure")
    if runs < 1 or warmup < 0:
        raise MeasureError(f"need at least 1 timed run and no negative warm-up, got runs={runs}, warmup={warmup}")
    if profile is not None and isinstance(profile, (str, Path)):
        from tinynas.hardware import load_profile

        profile = load_profile(str(profile))
    if spec.kind == "host" and getattr(profile, "kind", None) == "gpu":
        log.warning("--on host times %s on this machine's CPU, not on %s's GPU: a figure to compare, not one to "
                    "calibrate %s with", model.name, profile.id, profile.id)
    data = model.read_bytes()
    if not threads:
        threads = profile.runtime_threads if profile is not None else 1
    session = _Session(spec=spec, model=model, threads=int(threads),
                       use_gpu=getattr(profile, "kernel_library", "") == "gpu-delegate", runs=int(runs),
                       warmup=int(warmup), timeout_s=float(timeout_s), connect_timeout_s=float(connect_timeout_s),
                       benchmark_binary=benchmark_binary, remote_dir=remote_dir)
    base = dict(port=str(spec), profile_id=getattr(profile, "id", None), model_path=str(model),
                model_sha1=hashlib.sha1(data).hexdigest(), warmup=int(warmup), min_window_s=0.0,
                upload_retries=0, upload_checked_by_crc=False, arena_used_bytes=None, output_max_diff_int8=None,
                predicted_latency_ms=None, features=None,
                created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"), target=str(spec),
                threads=session.threads)

    def report(*, complete: bool, error: str | None) -> LatencyReport:
        t = session.timings
        command = session.bench_command or (session.commands[-1] if session.commands else None)
        return LatencyReport(
            **base, device=dict(session.device), windows=session.windows,
            inferences_per_window=1 if session.windows else (t.runs if t else 0), complete=complete, error=error,
            runtime=session.runtime, command=tuple(command) if command else None,
            stats_ms=t.stats() if t else None, output_tail=tail(session.output, lines=20) if session.output else None,
        )

    try:
        TARGETS.get(spec.kind)(session)
    except MeasureError as exc:
        partial = report(complete=False, error=str(exc))
        where = _write(partial, run_dir)
        raise MeasurementFailed(f"{exc}{f'; what was found is in {where}' if where else ''}",
                                report=partial) from None
    final = report(complete=True, error=None)
    _write(final, run_dir)
    log.info("%s: %s ms (%s, %d threads)", spec, final.latency_ms, session.runtime, session.threads)
    return final


def _write(report: LatencyReport, run_dir: str | Path | None) -> Path | None:
    return None if run_dir is None else report.save(report_path(Path(run_dir)))
