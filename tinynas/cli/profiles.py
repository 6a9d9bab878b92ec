"""``tinynas profiles``: list, show and validate hardware profiles (thin wrappers over tinynas.hardware)."""

from __future__ import annotations

from typing import Any

import click

from tinynas.cli.common import echo_json


def _kib(n: int) -> str:
    if n >= 1 << 30:
        return f"{n / (1 << 30):.1f} GiB"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    return f"{n / 1024:.0f} KiB"


@click.group()
def profiles() -> None:
    """List, show and validate hardware profiles (built-in and your own)."""


@profiles.command("list")
@click.option("--kind", type=click.Choice(["mcu", "mobile", "gpu"]), default=None, help="Only this kind of target.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per profile).")
def list_cmd(kind: str | None, as_json: bool) -> None:
    """Every profile tinynas can find, with its budgets."""
    from tinynas.hardware import list_profiles

    found = list_profiles(kind=kind)
    if as_json:
        echo_json([p.to_json() for p in found])
        return
    header = f"{'id':<18} {'kind':<6} {'core':<14} {'clock':>9} {'SRAM budget':>12} {'flash budget':>13} {'template':<14} name"
    click.echo(header)
    for p in found:
        click.echo(
            f"{p.id:<18} {p.kind:<6} {p.core:<14} {p.clock_hz / 1e6:>6.0f}MHz {_kib(p.sram_budget_bytes):>12} "
            f"{_kib(p.flash_budget_bytes):>13} {p.ecosystem.default_template:<14} {p.name}"
        )


@profiles.command("show")
@click.argument("profile_id")
@click.option("--no-overlay", is_flag=True, help="Ignore a calibration overlay.")
@click.option("--json", "as_json", is_flag=True, help="Print the resolved profile as JSON.")
def show_cmd(profile_id: str, no_overlay: bool, as_json: bool) -> None:
    """One profile (an id or a path to a .toml file), with derived budgets."""
    from tinynas.hardware import load_profile

    p = load_profile(profile_id, overlays=not no_overlay)
    if as_json:
        echo_json(p.to_json())
        return
    lines = [
        f"{p.id}: {p.name}",
        f"  file          {p.source_path}",
        f"  kind          {p.kind}, core {p.core}, {p.clock_hz / 1e6:g} MHz, fpu {'yes' if p.fpu else 'no'}"
        + (f", simd {p.simd}" if p.simd else ""),
        f"  runtime       {p.runtime} with {p.kernel_library} kernels",
        f"  SRAM          {p.sram_bytes:,} B - reserved {p.reserved_sram_bytes:,} B = budget {p.sram_budget_bytes:,} B",
        f"  flash         {p.flash_bytes:,} B - runtime {p.runtime_flash_bytes:,} B = budget {p.flash_budget_bytes:,} B",
        f"  latency       target {p.latency_target_ms if p.latency_target_ms is not None else 'none'} ms; "
        f"op overhead {p.latency.op_overhead_cycles:g} cycles, invoke {p.latency.invoke_overhead_cycles:g} cycles",
        "  cycles/MAC    " + ", ".join(f"{k} {v:g}" for k, v in p.latency.cycles_per_mac.items()),
        "  cycles/elem   " + ", ".join(f"{k} {v:g}" for k, v in p.latency.cycles_per_element.items()),
        f"  source        {p.latency.source}",
    ]
    if p.base:
        from tinynas.hardware.loader import inherited_keys

        lines.insert(2, f"  base          {p.base}, whose values it keeps for: {', '.join(inherited_keys(p.source_path))}")
    if "latency_overlay" in p.extra:
        lines.append(f"  overlay       {p.extra['latency_overlay']} (tinynas calibrate's fit, or your own: delete it "
                     "to go back to the profile's latency model)")
    if p.kind == "mcu":
        usb = ", ".join(f"{v:04x}:{d:04x}" for v, d in p.serial.usb_ids) or "-"
        lines.append(f"  serial        {p.serial.baud} baud, reset {p.serial.reset}, usb {usb}")
        eco = p.ecosystem
        ids = {k: getattr(eco, k) for k in ("platformio_board", "arduino_fqbn", "zephyr_board", "espidf_target",
                                            "pico_board", "cmake_cpu") if getattr(eco, k)}
        lines.append(f"  firmware      template {eco.default_template}" + "".join(f"; {k} {v}" for k, v in ids.items()))
    else:  # a phone or a GPU gets its runtime's models and runners, no firmware; measured over ssh, adb, trtexec
        from tinynas.deploy.runtime_deploy import WRITES

        lines.append(f"  deploy        {WRITES[p.kind]}")
    if p.notes:
        lines.append(f"  notes         {p.notes}")
    click.echo("\n".join(lines))


def _firmware_notes(profile: Any) -> list[str]:
    """A valid profile whose firmware template cannot build for it (often a misspelt core): search and
    estimate work, `run` and `deploy` refuse."""
    from tinynas.deploy.firmware import check_board_template
    from tinynas.errors import DeployError

    try:
        check_board_template(profile)
    except DeployError as exc:
        return [f"{exc}; `run` and `deploy` refuse it, `search` and `estimate` work"]
    return []


@profiles.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one result object per file.")
@click.pass_context
def validate_cmd(ctx: click.Context, paths: tuple[str, ...], as_json: bool) -> None:
    """Check profile files; exits 1 if any is invalid, printing every problem."""
    from tinynas.errors import ProfileError
    from tinynas.hardware import ProfileValidationError, validate_profile_file
    from tinynas.hardware.loader import inherited_keys

    results = []
    for path in paths:
        try:
            p = validate_profile_file(path)
            results.append({"path": path, "ok": True, "id": p.id, "problems": [], "base": p.base or None,
                            "inherited": inherited_keys(path) if p.base else [], "notes": _firmware_notes(p)})
        except ProfileValidationError as exc:
            results.append({"path": path, "ok": False, "id": None, "problems": exc.problems})
        except ProfileError as exc:
            results.append({"path": path, "ok": False, "id": None, "problems": [str(exc)]})
    if as_json:
        echo_json(results)
    else:
        for r in results:
            if r["ok"]:
                click.echo(f"ok      {r['path']} ({r['id']})" + (
                    f", on base {r['base']}: it keeps the base's {', '.join(r['inherited'])}" if r["base"] else ""))
                for note in r["notes"]:
                    click.echo(f"  note: {note}")
            else:
                click.echo(f"INVALID {r['path']}", err=True)
                for problem in r["problems"]:
                    text = problem if problem.startswith(r["path"]) else f"{r['path']}: {problem}"
                    click.echo(f"  {text}", err=True)
    if not all(r["ok"] for r in results):
        ctx.exit(1)
