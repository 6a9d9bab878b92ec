"""``tinynas measure``, ``emulate``, ``flash`` and ``calibrate``: thin wrappers over ``tinynas.measure``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from tinynas.cli.common import echo_json
from tinynas.text import counted


@click.command("measure")
@click.option("--port", default=None,
              help="Serial board: device path (/dev/ttyACM0), pyserial URL (socket://host:port) or 'auto'.")
@click.option("--on", "target", default=None, metavar="TARGET",
              help="Phone, Linux board or GPU instead of a serial board: host, ssh:USER@HOST, adb, adb:SERIAL "
                   "or trtexec (needs --model: a .tflite, or an .onnx for trtexec and ONNX Runtime).")
@click.option("--profile", "-p", "profile_id", default=None,
              help="Hardware profile id: baud, USB ids, reset, prediction; threads and delegate for --on.")
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The int8 .tflite on the board: input size, host outputs to compare, calibration features.")
@click.option("--windows", type=click.IntRange(min=1), default=5, show_default=True, help="Measurement windows.")
@click.option("--min-window-s", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Each window runs enough inferences to last at least this long (MLPerf Tiny uses 10 s).")
@click.option("--warmup", type=click.IntRange(min=0), default=1, show_default=True,
              help="Warm-up inferences before each window (with --on: before the timed runs; trtexec warms up "
                   "for 200 ms instead, or not at all with 0).")
@click.option("--baud", type=click.IntRange(min=1), default=None, help="Baud rate (default: the profile's, or 115200).")
@click.option("--run", "run_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run directory: the result goes to RUN/measure/latency.json.")
@click.option("--timeout-s", type=click.FloatRange(min=0.1), default=None,
              help="Serial: longest any answer may take beyond what its inferences should take [5]. "
                   "With --on: longest any one command (copy, benchmark) may take [300].")
@click.option("--force", is_flag=True,
              help="Measure even if the device announces another model id than --model's (marked in the result).")
@click.option("--runs", type=click.IntRange(min=1), default=50, show_default=True,
              help="With --on: timed runs (the median is the figure).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="With --on: CPU threads (default: the profile's [extra] threads, else 1).")
@click.option("--benchmark-binary", default=None, metavar="PATH",
              help="With --on adb (required) or ssh: LiteRT's benchmark_model on the device; trtexec's path "
                   "with --on trtexec or an .onnx over ssh.")
@click.option("--remote-dir", default="/data/local/tmp", show_default=True,
              help="With --on adb or ssh: where the model is copied on the device.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def measure(port: str | None, target: str | None, profile_id: str | None, model: Path | None, windows: int,
            min_window_s: float, warmup: int, baud: int | None, run_dir: Path | None, timeout_s: float | None,
            force: bool, runs: int, threads: int | None, benchmark_binary: str | None, remote_dir: str,
            as_json: bool) -> None:
    """Measure a model's latency on a serial board (--port) or on a phone, Linux board or GPU (--on).

    Serial: the median of windows, like the MLPerf Tiny runner. The whole measurement has a
    deadline: boot + 4 x --timeout-s + the upload at --baud (with its retries) + 3 probe
    inferences, then --windows x (1.5 x window + --timeout-s) once the probe has timed one
    inference (docs/protocol.md). A device that keeps talking without answering cannot stretch it.

    --on: LiteRT or ONNX Runtime on this machine (host), LiteRT's benchmark over ssh,
    benchmark_model over adb, or trtexec; the result has the same shape.
    """
    from tinynas.measure.runner import MeasurementFailed, summary_rows

    if (port is None) == (target is None):
        raise click.UsageError("give either --port (a serial board) or --on (host, ssh:USER@HOST, adb[:SERIAL], "
                               "trtexec)")
    # Options of the other kind of measurement would be silently ignored: refuse them instead.
    ctx = click.get_current_context()
    given = {name for name in ctx.params
             if ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)}
    serial_only = {"windows": "--windows", "min_window_s": "--min-window-s", "baud": "--baud", "force": "--force"}
    target_only = {"runs": "--runs", "threads": "--threads", "benchmark_binary": "--benchmark-binary",
                   "remote_dir": "--remote-dir"}
    wrong = sorted(flag for name, flag in (serial_only if target else target_only).items() if name in given)
    if wrong:
        raise click.UsageError(f"{', '.join(wrong)} only {'apply' if len(wrong) > 1 else 'applies'} to "
                               f"{'--port (serial boards)' if target else '--on (phones, Linux boards, GPUs)'}")
    try:
        if target is not None:
            if model is None:
                raise click.UsageError("--on needs --model: the .tflite (or .onnx) to measure")
            from tinynas.measure.target import measure_on_target

            report = measure_on_target(target=target, model=model, profile=profile_id, threads=threads, runs=runs,
                                       warmup=warmup, benchmark_binary=benchmark_binary, remote_dir=remote_dir,
                                       run_dir=run_dir, timeout_s=300.0 if timeout_s is None else timeout_s)
        else:
            from tinynas.measure.runner import measure_latency

            report = measure_latency(port=port, profile=profile_id, model=model, windows=windows,
                                     min_window_s=min_window_s, warmup=warmup, baud=baud, run_dir=run_dir,
                                     timeout_s=5.0 if timeout_s is None else timeout_s, force=force)
    except MeasurementFailed as exc:
        if as_json:
            echo_json(exc.report.to_json())  # the partial result, for scripts; the error goes to stderr
        raise
    if as_json:
        echo_json(report.to_json())
        return
    for label, value in summary_rows(report):
        click.echo(f"{label:<18} {value}")
    if report.target is None:
        for w in report.windows:
            click.echo(f"  window {w.index}: {w.latency_ms:.3f} ms ({w.inferences} inferences, {w.elapsed_us} us)")
    if run_dir is not None:
        written = run_dir / "measure" / "latency.json"
        click.echo(f"written to {written}")
        _echo_calibrate_step(report, written, profile_id=profile_id)


def _echo_calibrate_step(report: Any, written: Path, *, profile_id: str | None) -> None:
    """The next step, fitting the board's latency model to this measurement, where calibrate would take it;
    else why it would not (an emulator's time, a GPU timed on this machine's CPU, a forced measurement).
    ``profile_id`` is the --profile given (an id or a .toml path), as calibrate takes it too."""
    import shlex

    from tinynas.hardware import load_profile
    from tinynas.measure.calibrate import refusal

    if not profile_id:
        return
    why = refusal(report, profile=load_profile(profile_id))  # loaded once already by the measurement
    if why is None:
        click.echo(f"calibrate  tinynas calibrate --profile {shlex.quote(profile_id)} "
                   f"{shlex.quote(str(written))}   (measurements of several models fit it better)")
    else:
        click.echo(f"calibrate  not with this measurement: {why.split(': ', 1)[-1]}")


@click.command("emulate")
@click.option("--model", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The int8 .tflite the emulated board runs.")
@click.option("--profile", "-p", "profile_id", default=None, help="Hardware profile for predicted latency.")
@click.option("--latency", type=click.Choice(["predicted", "host"]), default="predicted", show_default=True,
              help="Report the cost model's prediction (deterministic) or host time.")
@click.option("--tcp", "tcp_port", type=click.IntRange(min=0, max=65535), default=None,
              help="Serve on this TCP port (0: any free one) instead of a pseudo-terminal.")
@click.option("--fault", "faults", multiple=True, metavar="KIND[:N]",
              help="Inject a fault: garble, drop, slow, hang, disconnect, reboot, stall-timer, step-back-timer "
                   "(repeatable; N is a whole count, or bytes per second for slow).")
@click.option("--no-realtime", is_flag=True, help="Answer at once instead of taking as long as the latency reported.")
@click.option("--json", "as_json", is_flag=True, help="Print the port and board facts as one JSON line.")
def emulate(model: Path, profile_id: str | None, latency: str, tcp_port: int | None, faults: tuple[str, ...],
            no_realtime: bool, as_json: bool) -> None:
    """Serve a board emulator: prints the port to open (first line), serves until stopped (Ctrl-C)."""
    from tinynas.measure.emulator import BoardEmulator

    profile = None
    if profile_id is not None:
        from tinynas.hardware import load_profile

        profile = load_profile(profile_id)
    emu = BoardEmulator(model.read_bytes(), profile=profile, latency=latency, faults=faults, tcp_port=tcp_port,
                        realtime=not no_realtime, source=str(model))
    if as_json:
        click.echo(json.dumps({"port": emu.port, "model_id": emu.model_id, "input_bytes": emu.input_bytes,
                               "arena_used_bytes": emu.arena_used_bytes, "latency": latency,
                               "predicted_latency_us": emu.latency_us}))
    else:
        click.echo(emu.port)
        import shlex

        command = shlex.join(["tinynas", "measure", "--port", emu.port, "--model", str(model),
                              *(["--profile", profile_id] if profile_id else [])])
        click.echo(f"emulating {model.name} ({latency} latency); measure with: {command}; stop with Ctrl-C", err=True)
    import sys

    sys.stdout.flush()
    try:
        emu.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()


@click.command("flash")
@click.argument("project", type=click.Path(path_type=Path))
@click.option("--port", default=None, help="Serial port to flash through (tools that use one).")
@click.option("--no-build", is_flag=True, help="Flash only; the project is already built.")
@click.option("--dry-run", is_flag=True, help="Only print the commands.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def flash(project: Path, port: str | None, no_build: bool, dry_run: bool, as_json: bool) -> None:
    """Build and flash a generated firmware project with its ecosystem's tool (or print the commands).

    Exits 1 when nothing was flashed (a tool not installed, a variable or --port missing), after printing the
    commands to run by hand, so that a script does not go on to measure the firmware that was on the board."""
    from tinynas.errors import MeasureError
    from tinynas.measure.flash import flash_project

    result = flash_project(project=project, port=port, build=not no_build, run=not dry_run)
    if as_json:
        echo_json(result.to_json())
    else:
        for note in result.notes:
            click.echo(f"note: {note}")
        if result.ran:
            click.echo(f"flashed {result.project} with {result.tool}")
        else:
            click.echo(f"{result.not_run_because}; run these in {result.project}:")
            for line in result.commands:
                click.echo(f"  {line}")
        if result.ran or dry_run:
            hint = _measure_hint(Path(result.project), port)
            if hint:
                click.echo(f"{'then measure' if dry_run else 'measure it'}: {hint}")
    if not result.ran and not dry_run:
        raise MeasureError(f"{result.project}: nothing was flashed: {result.not_run_because}")


def _measure_hint(project: Path, port: str | None) -> str | None:
    """The ``tinynas measure`` command for the model a generated project holds: the project sits at
    firmware/<template> under a run (its model in model/, its measurement kept in the run) or a deploy folder."""
    import shlex

    from tinynas.measure.flash import STAMP

    try:
        profile = json.loads((project / STAMP).read_text()).get("profile")
    except (OSError, ValueError):
        return None
    base = project.parent.parent
    for model, run in ((base / "model" / "model_int8.tflite", True), (base / "model_int8.tflite", False)):
        if profile and model.is_file():
            return shlex.join(["tinynas", "measure", "--port", port or "auto", "--profile", str(profile),
                               "--model", str(model), *(["--run", str(base)] if run else [])])
    return None


@click.command("calibrate")
@click.option("--profile", "-p", "profile_id", required=True, help="The board's hardware profile id.")
@click.argument("measurements", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--measure", "measure_on", type=click.Choice(["host"]), default=None,
              help="Instead of measurement files: time --n single kernels with LiteRT on this machine and fit the "
                   "profile's per-kernel latency model (mobile profiles, run on the board itself; nn-Meter's method).")
@click.option("-n", "--n", "n_kernels", type=click.IntRange(min=2), default=900, show_default=True,
              help="With --measure host: how many kernels to measure (conversion takes about 1 s a kernel; 300 "
                   "kernels predicted 86 % of held-out models within +-10 %, 900 kernels 94 %).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="With --measure host: LiteRT threads (default: the profile's extra.threads, else 1).")
@click.option("--whole-models", type=click.IntRange(min=0), default=None,
              help="With --measure host: whole random models timed to scale the kernel sum (default: n/12, "
                   "at least 2, at most 50; 0: no scale).")
@click.option("--seed", type=int, default=0, show_default=True, help="With --measure host: which kernels are drawn.")
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True,
              help="With --measure host: time every kernel and model in this many rounds and keep its fastest "
                   "(a burst of other load then misses some rounds; a round of 900 kernels takes about half a "
                   "minute).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the calibration report (coefficients, errors) as JSON here.")
@click.option("--dry-run", is_flag=True, help="Fit and report, but do not write the profile overlay.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def calibrate(profile_id: str, measurements: tuple[Path, ...], measure_on: str | None, n_kernels: int,
              threads: int | None, whole_models: int | None, seed: int, rounds: int, out: Path | None,
              dry_run: bool, as_json: bool) -> None:
    """Fit a board's latency model to measurement files and store it as the profile's user overlay.

    With --measure host (mobile profiles), measure single kernels with LiteRT on this machine
    instead and store a per-kernel-kind latency model beside the overlay.
    """
    if measure_on is not None:
        if measurements:
            raise click.UsageError("give either measurement files or --measure host, not both")
        _calibrate_host(profile_id, n_kernels=n_kernels, threads=threads, whole_models=whole_models, seed=seed,
                        rounds=rounds, out=out, dry_run=dry_run, as_json=as_json)
        return
    if not measurements:
        raise click.UsageError("give measurement files (latency.json from tinynas measure), or --measure host "
                               "for a mobile or gpu profile")
    from tinynas.measure.calibrate import calibrate as fit

    result = fit(profile=profile_id, measurements=list(measurements), save=not dry_run)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    if as_json:
        echo_json(result.to_json())
        return
    after = "-" if result.error_after_pct is None else f"{result.error_after_pct:.1f} %"
    click.echo(f"profile {result.profile_id}: {counted(result.measurements, 'measurement')}")
    click.echo(f"error before {result.error_before_pct:.1f} %, after {after} (held out: {result.held_out})")
    for key, value in sorted(result.coefficients.items()):
        click.echo(f"  {key:<28} {value:.4g}")
    if result.overlay_path:
        click.echo(f"overlay written to {result.overlay_path}")


def _calibrate_host(profile_id: str, *, n_kernels: int, threads: int | None, whole_models: int | None, seed: int,
                    rounds: int, out: Path | None,
                    dry_run: bool, as_json: bool) -> None:
    from tinynas.measure.kernel_calibrate import calibrate_host, host_profile

    host_profile(profile_id)  # an MCU profile is refused before anything is measured
    with click.progressbar(length=n_kernels, label="converting kernels",
                           file=click.get_text_stream("stderr")) as bar:
        result = calibrate_host(profile=profile_id, n=n_kernels, seed=seed, threads=threads, save=not dry_run,
                                whole_models=whole_models, rounds=rounds,
                                on_kernel=lambda done, total: bar.update(1))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    if as_json:
        data = result.to_json()
        data.pop("samples")
        echo_json(data)
        return
    click.echo(f"profile {result.profile_id}: {result.kernels} kernels timed with LiteRT on this machine, "
               f"{result.threads} thread(s); per-invoke overhead {result.invoke_ms * 1000:.1f} us, "
               f"kernel sum x {result.kernel_scale:.3f} (median over whole models)")
    if result.group_scales:
        scales = ", ".join(f"{g} x {v:.3f}" for g, v in sorted(result.group_scales.items()))
        click.echo(f"  fitted on whole models: {scales}, {result.op_ms * 1000:.2f} us per kernel; "
                   f"in-sample median error {result.whole_model_error_pct:.1f} %")
    click.echo(f"  {'kind':<10} {'kernels':>7} {'median ms':>10} {'held-out median error':>22}")
    for kind, st in sorted(result.per_kind.items()):
        err = st["held_out_median_error_pct"]
        click.echo(f"  {kind:<10} {int(st['kernels']):>7} {st['median_ms']:>10.4f} "
                   f"{'-' if err < 0 else f'{err:.1f} %':>22}")
    if result.model_path:
        click.echo(f"kernel latency model written to {result.model_path}")
