"""`tinynas estimate`: the cost of any int8 .tflite model on one or more boards.

Thin wrapper over ``tinynas.cost.estimate_tflite``: MACs, parameters, flash
(on a TFLite Micro board the model as deploy writes it, tensor names stripped;
else the file's size), TFLM arena (on a TFLite Micro board measured in its
interpreter, the cost model's figure beside it; on a phone-class board LiteRT's
runtime memory, measured in LiteRT as deploy's budget check counts it) and
predicted latency, and whether each fits the board's budget. Several models and
``--profile`` options give one table.
"""

from __future__ import annotations

from pathlib import Path

import click

from tinynas.cli.common import echo_json


def _fmt_bytes(n: float) -> str:
    return f"{int(n):,} B"


def _need(name: str, value: float) -> str:
    return f"{value:,.2f} ms" if name == "latency" else _fmt_bytes(value)


@click.command("estimate")
@click.argument("models", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", "named", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A model file, as the other commands name it (repeatable; the same as MODELS).")
@click.option("--profile", "-p", "profiles", multiple=True,
              help="Hardware profile id or .toml path (repeat for several boards; see `tinynas profiles list`).")
@click.option("--latency-ms", "--latency-target-ms", "latency_target_ms", type=float, default=None,
              help="Latency budget in ms (default: the profile's latency_target_ms).")
@click.option("--json", "as_json", is_flag=True, help="Print the Cost records as JSON.")
def estimate(models: tuple[Path, ...], named: tuple[Path, ...], profiles: tuple[str, ...],
             latency_target_ms: float | None, as_json: bool) -> None:
    """Cost of int8 .tflite MODELS: MACs, params, flash, TFLM arena, latency, and the budget checks."""
    from tinynas.cost import estimate_tflite

    models = models + named
    if not models:
        raise click.UsageError("name a .tflite model: tinynas estimate MODEL.tflite -p BOARD (or --model MODEL)")

    loaded = []
    if profiles:
        from tinynas.hardware import load_profile

        loaded = [load_profile(p) for p in profiles]
    rows, deployed, predicted, front_ends, sources = [], {}, {}, {}, {}
    for model in models:
        data = model.read_bytes() if model.is_file() else b""  # estimate_tflite says what is wrong with it
        written, change = _as_deployed(model, data)
        # an int8 file on a TFLite Micro board: the flash of the copy deploy writes (the names stripped)
        on_board = len(written) if written is not None and change is None else None
        costs = [(prof, estimate_tflite(model, profile=prof, latency_target_ms=latency_target_ms,
                                        flash_bytes=on_board if _on_tflm(prof) else None))
                 for prof in loaded or [None]]
        # once per model, after estimate_tflite has refused a file that is not an int8 model
        refusal = _tflm_refusal(model, data) if any(_on_tflm(prof) for prof, _ in costs) else None
        measured = _measured_arena(model, data) if refusal is None and any(_on_tflm(p) for p, _ in costs) else None
        litert = _litert_memory(model, data) if any(_on_litert(p) for p, _ in costs) else None
        predicted[model] = costs[0][1].arena_bytes
        front_ends[model] = _front_end(model, data)
        beside = int((front_ends[model] or {}).get("static_ram_bytes", 0))
        rows += [(model, prof, _with_arena(cost, measured, beside=beside) if _on_tflm(prof) else
                  _with_arena(cost, litert) if _on_litert(prof) else cost,
                  refusal if _on_tflm(prof) else None) for prof, cost in costs]
        sources.update({(model, prof.id if prof else None): _arena_source(prof, measured, litert, refusal)
                        for prof, _ in costs})
        deployed[model] = None
        if change is not None:
            cost = estimate_tflite(written, flash_bytes=len(written))
            deployed[model] = change, {"arena_bytes": int(cost.arena_bytes), "flash_bytes": int(cost.flash_bytes)}
    if as_json:
        data = [{"model": str(m), **c.to_json(), "arena_predicted_bytes": int(predicted[m]),
                 "arena_source": sources[m, p.id if p else None],
                 **({"front_end": front_ends[m]} if front_ends[m] else {}),
                 "file_bytes": m.stat().st_size, "tflm_aborts": why,
                 **({"deployed_int8_interface": deployed[m][1]} if deployed[m] else {})} for m, p, c, why in rows]
        for record in data:
            if record["tflm_aborts"] and record["fits"] is not None:
                record["fits"] = False
        echo_json(data[0] if len(data) == 1 else data)
        return
    if len(rows) == 1:
        model, prof = rows[0][:2]
        _print_one(*rows[0], predicted=predicted[model], source=sources[model, prof.id if prof else None])
    else:
        _print_table(rows)
        if any(source == "litert" for source in sources.values()):
            click.echo(f"\narena B on a phone-class board: {LITERT_TEXT}")
    for model, record in front_ends.items():
        if record:
            click.echo(f"\n{model.name}: deploy wrote {record.get('file', 'a front end')} beside it, "
                       f"{int(record['static_ram_bytes']):,} B of static RAM beside the tensor arena; on a TFLite "
                       "Micro board the sram check counts both")
    for model, found in deployed.items():
        if found:
            change, cost = found
            click.echo(f"\n{model.name}: its {change.input_was} input and {change.output_was} output wrap an int8 "
                       f"network; `tinynas deploy` removes {' and '.join(change.removed_ops)}, and the deployed "
                       f"model needs {cost['arena_bytes']:,} B of arena and {cost['flash_bytes']:,} B of flash "
                       "(the figures above are the file's as it is)")
    if not loaded:
        click.echo("(no --profile given: pass --profile ID to get latency and the SRAM/flash/latency checks;"
                   " `tinynas profiles list` shows the ids)")


def _as_deployed(model: Path, data: bytes):
    """(the model deploy writes for a microcontroller from this file, the interface change it makes), as
    ``deploy`` does it: a float or uint8 interface (TFLiteConverter's default) replaced by the int8 tensors
    inside, then the tensor names stripped. (None, None) when the model would be written as it is or the file
    is not a model (estimate_tflite then says why)."""
    from tinynas.deploy.flatbuffer import strip_tensor_names
    from tinynas.deploy.tflite_interface import int8_interface
    from tinynas.errors import ModelFileError

    try:
        converted, change = int8_interface(data, source=str(model))
        written, saved = strip_tensor_names(converted, source=str(model))
    except ModelFileError:
        return None, None
    return (written, change) if change is not None or saved else (None, None)


def _on_tflm(prof) -> bool:
    """Whether the board runs TFLite Micro (no board given: the microcontroller case is assumed)."""
    return prof is None or prof.runtime == "tflm"


def _on_litert(prof) -> bool:
    """Whether deploy ships the board this very .tflite, run in LiteRT (a phone-class board; a GPU gets ONNX)."""
    return prof is not None and prof.kind == "mobile"


#: what the memory figure of a phone-class board is
LITERT_TEXT = "LiteRT's runtime memory, its non-constant tensors once allocated, as deploy's budget check counts them"


def _arena_source(prof, measured: int | None, litert: int | None, refusal: str | None) -> str:
    """Where a row's arena figure comes from: "tflm" (measured in TFLite Micro), "litert" (LiteRT's runtime
    memory) or "cost_model" (the cost model's TFLM arena)."""
    if _on_tflm(prof) and refusal is None and measured is not None:
        return "tflm"
    return "litert" if _on_litert(prof) and litert is not None else "cost_model"


def _litert_memory(model: Path, data: bytes) -> int | None:
    """The runtime memory deploy's budget check counts for a phone-class board, measured in LiteRT; None where
    LiteRT cannot load the file (the cost model's figure stands)."""
    from tinynas.deploy.litert import runtime_bytes
    from tinynas.errors import ModelFileError

    try:
        return runtime_bytes(data, source=str(model))
    except ModelFileError:
        return None


def _tflm_refusal(model: Path, data: bytes) -> str | None:
    """Why TFLite Micro cannot run the model (an op it has no kernel for) or would abort on it
    while preparing it, None when neither.

    The cost model costs any graph, so without this a model that no board can run
    (a GELU, an int8 softmax over logits that barely vary) read "fits: yes".
    """
    from tinynas.deploy.interpreter import check_tflm_aborts, check_tflm_ops
    from tinynas.errors import DeployError, ModelFileError

    try:
        check_tflm_ops(data, source=str(model))
        check_tflm_aborts(data, source=str(model))
    except (DeployError, ModelFileError) as exc:
        return str(exc)
    return None


def _measured_arena(model: Path, data: bytes) -> int | None:
    """The arena the real TFLite Micro interpreter needs for the file (its x86-64 wheel), None where it cannot
    allocate it: a .tflite is at hand, so the cost model's figure (exact for the ops the spaces use, an
    approximation for others, e.g. an unrolled LSTM's SPLIT and UNPACK) gives way to the interpreter's."""
    from tinynas.deploy.arena import measure_arena_bytes
    from tinynas.errors import DeployError

    try:
        return measure_arena_bytes(data, source=str(model))
    except DeployError:
        return None


def _front_end(model: Path, data: bytes) -> dict | None:
    """The record of the C front end deploy wrote beside this model (its metrics.json, when that names this
    very file): its static RAM sits beside the tensor arena on the board, as `run` budgeted it."""
    import hashlib
    import json

    try:
        metrics = json.loads((model.parent / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    record = metrics.get("front_end") if isinstance(metrics, dict) else None
    if not isinstance(record, dict) or metrics.get("int8_sha256") != hashlib.sha256(data).hexdigest():
        return None
    return record if isinstance(record.get("static_ram_bytes"), int) else None


def _with_arena(cost, measured: int | None, *, beside: int = 0):
    """``cost`` with the measured arena in place of the predicted one, and its SRAM check needing that arena plus
    ``beside`` (a front end's static RAM)."""
    from dataclasses import replace

    arena = int(cost.arena_bytes if measured is None else measured)
    checks = tuple(replace(c, need=arena + beside) if c.name == "sram" else c for c in cost.checks)
    return replace(cost, arena_bytes=arena, checks=checks)


def _print_one(model: Path, prof, cost, refusal: str | None, *, predicted: int, source: str) -> None:
    click.echo(f"model     {model}")
    if prof is not None:
        click.echo(f"profile   {prof.id} ({prof.name}, {prof.clock_hz / 1e6:g} MHz, {prof.kernel_library})")
    click.echo(f"MACs      {cost.macs:,}")
    click.echo(f"params    {cost.params:,}")
    size = model.stat().st_size
    click.echo(f"flash     {_fmt_bytes(cost.flash_bytes)} " + ("(the .tflite file)" if cost.flash_bytes == size else
               f"(as deploy writes it, tensor names stripped; the .tflite file is {_fmt_bytes(size)})"))
    if source == "litert":
        click.echo(f"memory    {_fmt_bytes(cost.arena_bytes)} ({LITERT_TEXT}, measured in LiteRT here; TFLite "
                   f"Micro's arena would be {_fmt_bytes(predicted)})")
    elif source == "tflm":
        agrees = "as the cost model predicts" if cost.arena_bytes == predicted else \
            f"the cost model predicts {_fmt_bytes(predicted)}"
        click.echo(f"arena     {_fmt_bytes(cost.arena_bytes)} (TFLM tensor arena, measured in the TFLite Micro "
                   f"interpreter, x86-64; {agrees})")
    elif prof is not None and prof.kind == "gpu":
        click.echo(f"arena     {_fmt_bytes(cost.arena_bytes)} (activations as TFLite Micro would plan them, the cost "
                   f"model's figure; {prof.id} gets ONNX models, whose memory `tinynas deploy` measures)")
    else:
        click.echo(f"arena     {_fmt_bytes(cost.arena_bytes)} (TFLM tensor arena, the cost model's figure)")
    if cost.latency_ms is not None:
        click.echo(f"latency   {cost.latency_ms:,.2f} ms (predicted)")
    if cost.checks:
        click.echo("")
        click.echo(f"{'budget':<8} {'need':>14} {'budget':>14} {'margin':>14}  fits")
        for c in cost.checks:
            budget = "-" if c.budget is None else _need(c.name, c.budget)
            margin = "-" if c.margin is None else _need(c.name, c.margin)
            click.echo(f"{c.name:<8} {_need(c.name, c.need):>14} {budget:>14} {margin:>14}  {'yes' if c.fits else 'NO'}")
    if refusal:
        click.echo(f"\nwill not run in TFLite Micro: {refusal}")
    if cost.checks:
        fits = "no (TFLite Micro cannot run it)" if refusal else ("yes" if cost.fits else "no")
        click.echo(f"\nfits {prof.id}: {fits}")


def _print_table(rows) -> None:
    header = f"{'model':<32} {'profile':<18} {'MACs':>11} {'flash B':>9} {'arena B':>9} {'latency ms':>11}  fits"
    click.echo(header)
    click.echo("-" * len(header))
    refusals = {}
    for model, prof, cost, refusal in rows:
        lat = "-" if cost.latency_ms is None else f"{cost.latency_ms:,.1f}"
        failed = [c.name for c in cost.checks if not c.fits] + (["TFLM cannot run it"] if refusal else [])
        if refusal:
            refusals[model] = refusal
        if cost.fits is None:
            fits = "no (TFLM cannot run it)" if refusal else "-"
        else:
            fits = "no (" + ", ".join(failed) + ")" if failed else "yes"
        click.echo(f"{model.name[:32]:<32} {(prof.id if prof else '-'):<18} {cost.macs:>11,} {cost.flash_bytes:>9,} "
                   f"{cost.arena_bytes:>9,} {lat:>11}  {fits}")
    for refusal in refusals.values():
        click.echo(f"\nwill not run in TFLite Micro: {refusal}")
