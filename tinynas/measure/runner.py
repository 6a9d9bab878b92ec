"""Measure a model's latency on a board over serial, the way the MLPerf Tiny runner does.

Opens the port, identifies the device, uploads an input, then runs ``windows``
``infer N W%`` windows with N chosen so that each lasts at least
``min_window_s``; the result (median, min, max, p90, per-window figures, the
device's arena, output agreement with the host interpreter) is a
``LatencyReport``, written to ``<run>/measure/latency.json`` when a run is given.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from tinynas.errors import MeasureError, ModelFileError
from tinynas.measure.protocol import CHUNK_BYTES, DeviceClient, InferResult, cut

log = logging.getLogger(__name__)

REPORT_FORMAT = "tinynas.latency/1"


@dataclass(frozen=True)
class WindowResult:
    """One ``infer N W%`` window: N inferences took ``elapsed_us`` on the board's timer."""

    index: int
    inferences: int
    elapsed_us: int

    @property
    def latency_ms(self) -> float:
        return self.elapsed_us / self.inferences / 1000.0

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "inferences": self.inferences, "elapsed_us": self.elapsed_us,
                "latency_ms": self.latency_ms}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "WindowResult":
        return cls(index=int(data["index"]), inferences=int(data["inferences"]), elapsed_us=int(data["elapsed_us"]))


@dataclass(frozen=True)
class LatencyReport:
    """Everything one measurement found; ``complete`` False (with ``error``) when it stopped early.

    ``features`` are the model's per-op-kind MACs and element counts
    (``measure.calibrate.graph_features``) so calibration needs only this file.
    """

    port: str
    device: dict[str, Any]
    profile_id: str | None
    model_path: str | None
    model_sha1: str | None
    windows: tuple[WindowResult, ...]
    inferences_per_window: int
    warmup: int
    min_window_s: float
    upload_retries: int
    upload_checked_by_crc: bool
    arena_used_bytes: int | None
    output_max_diff_int8: int | None  # vs the host TFLM interpreter on the same input; None without a model
    predicted_latency_ms: float | None
    features: dict[str, float] | None
    complete: bool = True
    error: str | None = None
    created_utc: str = ""
    # The id the device announced and the id of the file given; ``forced`` when they differed
    # and the user measured anyway (--force): calibration refuses such a measurement.
    device_model_id: str | None = None
    file_model_id: str | None = None
    forced: bool = False
    # Phones, Linux boards and GPUs (``measure.target``): where and with what it ran; None for serial boards.
    # ``stats_ms`` holds a tool's own summary (trtexec, benchmark_model) when it gives no per-run figures.
    target: str | None = None
    runtime: str | None = None
    threads: int | None = None
    command: tuple[str, ...] | None = None
    stats_ms: dict[str, float] | None = None
    output_tail: str | None = None
    format: str = REPORT_FORMAT

    # -- statistics over the windows (MLPerf Tiny reports the median) ----------
    def _latencies(self) -> list[float]:
        return [w.latency_ms for w in self.windows]

    def _stat(self, name: str) -> float | None:
        return None if not self.stats_ms else self.stats_ms.get(name)

    @property
    def latency_ms(self) -> float | None:
        lat = self._latencies()
        if lat:
            return float(np.median(lat))
        # A tool's summary: its median when it prints one (trtexec), else its mean (benchmark_model).
        return self._stat("median_ms") if self._stat("median_ms") is not None else self._stat("mean_ms")

    @property
    def min_ms(self) -> float | None:
        lat = self._latencies()
        return min(lat) if lat else self._stat("min_ms")

    @property
    def max_ms(self) -> float | None:
        lat = self._latencies()
        return max(lat) if lat else self._stat("max_ms")

    @property
    def p90_ms(self) -> float | None:
        lat = self._latencies()
        return float(np.percentile(lat, 90)) if lat else self._stat("p90_ms")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["windows"] = [w.to_json() for w in self.windows]
        data.update(latency_ms=self.latency_ms, min_ms=self.min_ms, max_ms=self.max_ms, p90_ms=self.p90_ms)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], *, source: str = "measurement") -> "LatencyReport":
        if not isinstance(data, dict) or data.get("format") != REPORT_FORMAT:
            raise MeasureError(
                f"{source}: not a tinynas latency measurement (expected \"format\": \"{REPORT_FORMAT}\"); "
                "pass a measure/latency.json written by `tinynas measure`"
            )
        try:
            return cls(
                port=str(data["port"]), device=dict(data.get("device") or {}),
                profile_id=data.get("profile_id"), model_path=data.get("model_path"),
                model_sha1=data.get("model_sha1"),
                windows=tuple(WindowResult.from_json(w) for w in data.get("windows", [])),
                inferences_per_window=int(data["inferences_per_window"]), warmup=int(data["warmup"]),
                min_window_s=float(data["min_window_s"]), upload_retries=int(data["upload_retries"]),
                upload_checked_by_crc=bool(data.get("upload_checked_by_crc", False)),
                arena_used_bytes=data.get("arena_used_bytes"), output_max_diff_int8=data.get("output_max_diff_int8"),
                predicted_latency_ms=data.get("predicted_latency_ms"),
                features={str(k): float(v) for k, v in data["features"].items()} if data.get("features") else None,
                complete=bool(data.get("complete", True)), error=data.get("error"),
                created_utc=str(data.get("created_utc", "")),
                device_model_id=data.get("device_model_id"), file_model_id=data.get("file_model_id"),
                forced=bool(data.get("forced", False)),
                target=data.get("target"), runtime=data.get("runtime"),
                threads=None if data.get("threads") is None else int(data["threads"]),
                command=None if data.get("command") is None else tuple(str(c) for c in data["command"]),
                stats_ms={str(k): float(v) for k, v in data["stats_ms"].items()} if data.get("stats_ms") else None,
                output_tail=data.get("output_tail"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MeasureError(f"{source}: malformed latency measurement ({type(exc).__name__}: {exc})") from None

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> "LatencyReport":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise MeasureError(f"{path}: no such measurement file") from None
        except (OSError, ValueError) as exc:
            raise MeasureError(f"{path}: cannot read it as JSON ({exc})") from None
        return cls.from_json(data, source=str(path))


class MeasurementFailed(MeasureError):
    """A measurement stopped early; ``report`` holds what was measured until then (also written to the run)."""

    def __init__(self, message: str, *, report: LatencyReport) -> None:
        super().__init__(message)
        self.report = report


def report_path(run_dir: Path) -> Path:
    """Where a run keeps its measurement: ``<run>/measure/latency.json``."""
    return Path(run_dir) / "measure" / "latency.json"


def _resolve_profile(profile: Any) -> Any:
    if profile is None or not isinstance(profile, (str, Path)):
        return profile
    from tinynas.hardware import load_profile

    return load_profile(str(profile))


@dataclass
class _Model:
    path: str | None
    data: bytes
    sha1: str
    input_bytes: int
    interp: Any
    features: dict[str, float] | None
    predicted_ms: float | None = None
    ids: tuple[str, ...] = ()  # every id a board flashed with this file may announce

    @property
    def model_id(self) -> str:
        return self.ids[0] if self.ids else self.sha1[:12]

    @classmethod
    def load(cls, path: str | Path, *, profile: Any) -> "_Model":
        from tinynas.deploy.interpreter import MicroInterpreter

        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelFileError(f"{path}: cannot read the model ({exc.strerror or exc})") from None
        interp = MicroInterpreter(data, source=str(path))
        features = predicted = None
        try:
            from tinynas.measure.calibrate import model_features

            features = model_features(data)
        except Exception as exc:  # calibration features are a bonus: never fail a measurement for them
            log.warning("%s: no per-op features for calibration (%s)", path, exc)
        if profile is not None:
            try:
                from tinynas.measure.emulator import predicted_latency_us

                predicted = predicted_latency_us(data, profile=profile) / 1000.0
            except Exception as exc:
                log.warning("%s: no predicted latency on %s (%s)", path, getattr(profile, "id", profile), exc)
        sha1 = hashlib.sha1(data).hexdigest()
        return cls(path=str(path), data=data, sha1=sha1, input_bytes=int(np.prod(interp.io.input.shape)),
                   interp=interp, features=features, predicted_ms=predicted,
                   ids=(*_deployed_ids(path, data), sha1[:12]))


def _deployed_ids(path: Path, data: bytes) -> tuple[str, ...]:
    """The model id ``tinynas deploy`` gave this file (an Arch id), from the metrics.json beside it.

    Firmware announces that id; it counts only when metrics.json names this very file's SHA-256.
    """
    try:
        metrics = json.loads((path.parent / "metrics.json").read_text())
    except (OSError, ValueError):
        return ()
    if not isinstance(metrics, dict) or metrics.get("int8_sha256") != hashlib.sha256(data).hexdigest():
        return ()
    model_id = metrics.get("model_id")
    return (str(model_id),) if model_id else ()


def measure_latency(
    *,
    port: str,
    profile: Any = None,
    model: str | Path | None = None,
    windows: int = 5,
    min_window_s: float = 10.0,
    warmup: int = 1,
    baud: int | None = None,
    run_dir: str | Path | None = None,
    timeout_s: float = 5.0,
    retries: int = 8,
    seed: int = 0,
    force: bool = False,
) -> LatencyReport:
    """Measure on the board at ``port`` (path, pyserial URL or ``auto``); returns the ``LatencyReport``.

    ``profile`` (id or ``HardwareProfile``) gives the baud rate, the USB ids for
    ``auto``, the reset line, and the prediction to compare with. ``model`` (the
    ``.tflite`` flashed on the board) gives the input size, the host outputs to
    compare with and the features calibration needs; without it the device must
    announce its input size in the tinynas extension line. ``timeout_s`` is the
    longest any answer may take beyond what its work should take. The whole measurement
    has an overall deadline (``overall_deadline_s``), however the device behaves.
    ``force`` measures even when the device announces another model id than ``model``'s
    (the report is marked ``forced``; calibration refuses it).

    Raises ``MeasureError`` on a bad port or device (or the wrong model), ``MeasurementFailed`` (with
    the partial report, also written to ``run_dir``) when the device stops
    answering, disconnects or reboots mid-measurement.
    """
    from tinynas.measure.ports import open_port, reset_board

    if windows < 1 or min_window_s < 0 or warmup < 0:
        raise MeasureError(f"need windows >= 1, min_window_s >= 0, warmup >= 0; got {windows}, {min_window_s}, {warmup}")
    prof = _resolve_profile(profile)
    serial_cfg = getattr(prof, "serial", None)
    baud = int(baud or (serial_cfg.baud if serial_cfg else 115200))
    usb_ids = tuple(serial_cfg.usb_ids) if serial_cfg else ()
    loaded = _Model.load(model, profile=prof) if model is not None else None

    ser, name = open_port(port, baud=baud, usb_ids=usb_ids)
    try:
        client = DeviceClient(ser, port_name=name, timeout_s=timeout_s)
        boot_s = max(serial_cfg.boot_wait_s, 0.1) if serial_cfg is not None and serial_cfg.reset != "none" else 1.0
        setup_s = setup_deadline_s(timeout_s=timeout_s, baud=baud, retries=retries, boot_s=boot_s,
                                   input_bytes=loaded.input_bytes if loaded else None,
                                   predicted_ms=loaded.predicted_ms if loaded else None, warmup=warmup)
        client.set_deadline(time.monotonic() + setup_s,
                            why=f"{setup_s:.0f} s to identify the device, upload the input and probe")
        if serial_cfg is not None and serial_cfg.reset != "none":
            reset_board(ser, how=serial_cfg.reset, port_name=name)
            if not client.wait_boot(timeout_s=max(serial_cfg.boot_wait_s, 0.1)):
                log.info("%s: no boot banner within %.1f s after reset", name, serial_cfg.boot_wait_s)
        else:
            # Stale output from before we opened the port; its e- lines are the banner's self-checks
            # (e-[timer did not advance: ...]) that an error later on should quote.
            stale = client.drain(quiet_s=0.1, max_s=1.0)
            client.boot_errors.extend(line for line in stale if line.startswith("e-"))
        return _measure(client, prof=prof, loaded=loaded, windows=windows, min_window_s=min_window_s,
                        warmup=warmup, run_dir=run_dir, retries=retries, seed=seed, force=force)
    finally:
        try:
            ser.close()
        except Exception:
            pass


def setup_deadline_s(*, timeout_s: float, baud: int, retries: int, boot_s: float, input_bytes: int | None,
                     predicted_ms: float | None, warmup: int) -> float:
    """Seconds allowed to boot, identify, upload (with every retry) and probe: the first part of
    the overall deadline (docs/protocol.md). The windows get theirs once the probe has timed
    one inference: ``windows x (1.5 x window + timeout)``."""
    # `db <62 hex>%` plus `m-ready` back: about 2.7 characters on the wire per input byte, 10 bits each
    n = input_bytes or 64 * 1024
    upload_s = (retries + 1) * (n * 2.7 * 10 / baud + (n / CHUNK_BYTES + 3) * 0.02 + timeout_s)
    probe_s = 3 * (predicted_ms or 1000.0) / 1000.0 * (1 + warmup)
    return boot_s + 4 * timeout_s + upload_s + probe_s


def _check_timer(client: DeviceClient, result: InferResult) -> None:
    """MeasureError for a window whose laps cannot be a latency: the same time twice, or time going back."""
    command = f"'infer {result.count} {result.warmup}%'"
    if result.elapsed_us == 0:
        said = [line for line in (*client.boot_errors, *client.recent) if "timer" in line and line.startswith("e-")]
        told = f" (at boot it said {cut(said[0])!r})" if said else ""
        raise MeasureError(
            f"{client.port_name}: the board's timer did not advance: {command} "
            f"reported the same time before and after ({result.t0_us} us){told}. Its cycle counter is locked or "
            "absent (QEMU, some parts); rebuild the firmware with -DTINYNAS_TIMER=systick "
            "(cmake -DTINYNAS_TIMER=systick for cmake-cortexm)"
        )
    if result.stepped_back_us:
        raise MeasureError(
            f"{client.port_name}: the board's timer went back {result.stepped_back_us} us within {command} "
            f"(lap {result.t0_us} us, then {result.t1_us} us): its microsecond clock is not monotonic, so the "
            "window has no latency. A SysTick clock that misses a tick whose interrupt has not run yet does this; "
            "the firmware tinynas generates counts it: generate the project again, or fix the board's clock"
        )


def _measure(client: DeviceClient, *, prof: Any, loaded: _Model | None, windows: int, min_window_s: float,
             warmup: int, run_dir: str | Path | None, retries: int, seed: int, force: bool = False) -> LatencyReport:
    name = client.port_name
    info = client.identify()
    log.info("%s: device %r, model %r, extension %s", name, info.name, info.model, info.extension)
    # another model on the board than the file given: refused unless forced, and then marked
    forced = bool(loaded and info.model_id and info.model_id not in loaded.ids)
    if loaded is not None:
        if info.input_bytes is not None and info.input_bytes != loaded.input_bytes:
            raise MeasureError(
                f"{name}: the device's model takes {info.input_bytes} input bytes (its m-tinynas line) but "
                f"{loaded.path} takes {loaded.input_bytes}; flash the firmware built for this model, or pass "
                "the .tflite that is on the board"
            )
        if forced and not force:
            raise MeasureError(
                f"{name}: the device runs model {info.model_id} but {loaded.path} is model {loaded.model_id}; "
                "flash the firmware built for this model (tinynas deploy / firmware generate), pass the "
                ".tflite that is on the board, or --force to measure anyway (the result is marked forced "
                "and calibration will not use it)"
            )
        if forced:
            log.warning("%s: device model %s is not %s (%s): measuring anyway (--force)", name, info.model_id,
                        loaded.model_id, loaded.path)
        input_bytes = loaded.input_bytes
    elif info.input_bytes:
        input_bytes = info.input_bytes
    else:
        raise MeasureError(
            f"{name}: the device does not say its input size (no m-tinynas line: MLPerf Tiny firmware?); "
            "pass --model with the .tflite that is on the board"
        )
    rng = np.random.default_rng(seed)
    data = rng.integers(-128, 128, size=input_bytes, dtype=np.int8)

    base = dict(
        port=name, device=info.to_json(), profile_id=getattr(prof, "id", None),
        model_path=loaded.path if loaded else None, model_sha1=loaded.sha1 if loaded else None,
        warmup=warmup, min_window_s=float(min_window_s), arena_used_bytes=info.arena_used_bytes,
        predicted_latency_ms=loaded.predicted_ms if loaded else None,
        features=loaded.features if loaded else None,
        created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        device_model_id=info.model_id, file_model_id=loaded.model_id if loaded else None,
        forced=forced,
    )
    state: dict[str, Any] = dict(windows=[], count=0, retries=0, diff=None)

    def report(*, complete: bool, error: str | None) -> LatencyReport:
        return LatencyReport(
            **base, windows=tuple(state["windows"]), inferences_per_window=state["count"],
            upload_retries=state["retries"], upload_checked_by_crc=bool(client.crc_supported),
            output_max_diff_int8=state["diff"], complete=complete, error=error,
        )

    try:
        state["retries"] = client.upload(data.tobytes(), retries=retries)
        # The probe: one inference, to size the windows (the MLPerf runner does the same).
        guess_s = (loaded.predicted_ms / 1000.0) if loaded and loaded.predicted_ms else 1.0
        probe = client.infer(count=1, warmup=warmup, timeout_s=client.timeout_s + 3 * guess_s * (1 + warmup))
        _check_timer(client, probe)
        state["diff"] = _agreement(loaded, data, probe, port=name)
        per_us = max(probe.latency_us, 1.0)
        count = max(1, math.ceil(min_window_s * 1e6 / per_us))
        state["count"] = count
        window_timeout = client.timeout_s + 2.0 * per_us * (count + warmup) / 1e6
        window_s = per_us * (count + warmup) / 1e6
        windows_s = windows * (1.5 * window_s + client.timeout_s)
        client.set_deadline(time.monotonic() + windows_s,
                            why=f"{windows_s:.0f} s for {windows} windows of {window_s:.1f} s")
        log.info("%s: %.3f ms per inference in the probe; %d windows of %d inferences", name,
                 per_us / 1000, windows, count)
        for index in range(windows):
            result = client.infer(count=count, warmup=warmup, timeout_s=window_timeout)
            _check_timer(client, result)
            state["windows"].append(WindowResult(index=index, inferences=count, elapsed_us=result.elapsed_us))
            if loaded is not None and result.results != probe.results:
                diff = _agreement(loaded, data, result, port=name)
                state["diff"] = max(state["diff"] or 0, diff or 0)
    except MeasureError as exc:
        done = len(state["windows"])
        partial = report(complete=False, error=str(exc))
        where = _write(partial, run_dir)
        kept = f"; the {done} finished window(s) are in {where}" if where else (
            f"; {done} window(s) had finished" if done else "")
        raise MeasurementFailed(f"{exc}{kept}", report=partial) from None
    final = report(complete=True, error=None)
    _write(final, run_dir)
    return final


def _agreement(loaded: _Model | None, data: np.ndarray, result: InferResult, *, port: str) -> int | None:
    """Largest difference, in int8 steps, between the device's outputs and the host interpreter's."""
    if loaded is None:
        return None
    from tinynas.deploy.interpreter import output_agreement

    host = loaded.interp.dequantize_output(loaded.interp.invoke_int8(data)).reshape(-1)
    if len(result.results) != host.size:
        raise MeasureError(
            f"{port}: the device printed {len(result.results)} outputs but {loaded.path} has {host.size}; "
            "the board runs a different model than the one given"
        )
    return output_agreement(np.asarray(result.results, dtype=np.float64), host.astype(np.float64),
                            scale=loaded.interp.io.output.scale)


def _write(report: LatencyReport, run_dir: str | Path | None) -> Path | None:
    if run_dir is None:
        return None
    return report.save(report_path(Path(run_dir)))


def summary_rows(report: LatencyReport) -> list[tuple[str, str]]:
    """(label, value) rows for the CLI's table."""
    def fmt(v: Any, unit: str = "") -> str:
        if v is None:
            return "-"
        return f"{v:.3f}{unit}" if isinstance(v, float) else f"{v:,}{unit}" if isinstance(v, int) else f"{v}{unit}"

    if report.target is not None:
        runs = f"{len(report.windows)} timed runs" if report.windows else f"{report.inferences_per_window or '?'} runs (tool summary)"
        return [
            ("target", report.target),
            ("runtime", f"{report.runtime or '-'}, {report.threads} thread(s)"),
            ("latency (median)" if report.windows or "median_ms" in (report.stats_ms or {}) else "latency (mean)",
             fmt(report.latency_ms, " ms")),
            ("min / p90 / max", f"{fmt(report.min_ms)} / {fmt(report.p90_ms)} / {fmt(report.max_ms)} ms"),
            ("runs", f"{runs} (warmup {report.warmup})"),
            ("command", " ".join(report.command or ())),
        ]
    rows = [
        ("port", report.port),
        ("device", f"{report.device.get('name', '')} / model {report.device.get('model', '')}"),
        ("latency (median)", fmt(report.latency_ms, " ms")),
        ("min / p90 / max", f"{fmt(report.min_ms)} / {fmt(report.p90_ms)} / {fmt(report.max_ms)} ms"),
        ("windows", f"{len(report.windows)} x {report.inferences_per_window} inferences (warmup {report.warmup})"),
        ("predicted", fmt(report.predicted_latency_ms, " ms")),
        ("arena used", fmt(report.arena_used_bytes, " bytes")),
        ("output vs host", "-" if report.output_max_diff_int8 is None else f"max {report.output_max_diff_int8} int8 steps"),
        ("upload retries", f"{report.upload_retries}{' (CRC-checked)' if report.upload_checked_by_crc else ''}"),
    ]
    emulated = (report.device.get("extension") or {}).get("emulator")
    if emulated:
        rows.append(("EMULATED", f"tinynas's board emulator ({emulated} latency), not a board: not used by calibrate"))
    if report.forced:
        rows.append(("FORCED", f"the device runs model {report.device_model_id}, the file is "
                               f"{report.file_model_id}: not used by calibrate"))
    return rows
