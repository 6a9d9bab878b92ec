"""``tinynas firmware``: list the firmware templates and render a project for a model and a board.

Thin wrappers over ``tinynas.deploy.firmware``: parse, call one function, print.
"""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path

import click

from tinynas.cli.common import echo_json


@click.group()
def firmware() -> None:
    """List firmware templates and generate a project that builds with that ecosystem's own tool."""


@firmware.command("list")
@click.option("--profile", "-p", "profile_id", default=None, help="Only the templates that build for this profile.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_cmd(profile_id: str | None, as_json: bool) -> None:
    """The templates under firmware_templates/ with the cores each supports."""
    from tinynas.deploy.firmware import list_templates, templates_for

    templates = list_templates()
    if profile_id:
        from tinynas.hardware import load_profile

        fits = set(templates_for(load_profile(profile_id)))
        templates = [t for t in templates if t.name in fits]
    if as_json:
        echo_json([t.to_json() for t in templates])
        return
    width = max((len(t.name) for t in templates), default=4)
    for t in templates:
        click.echo(f"{t.name:<{width}}  {t.description}")
        click.echo(f"{'':<{width}}  cores: {', '.join(t.cores)}")
        if t.missing_ops:
            click.echo(f"{'':<{width}}  no kernel for: {', '.join(t.missing_ops)} (in the library it pins)")


def _class_names(text: str | None, labels_file: Path | None) -> list[str]:
    if labels_file is not None:
        return [line.strip() for line in labels_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if text:
        return [name.strip() for name in text.split(",")]
    return []


@firmware.command("generate")
@click.option("--template", default=None, help="Template name (default: the profile's default_template).")
@click.option("--model", "model_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The int8 .tflite model.")
@click.option("--profile", "-p", "profile_id", required=True, help="Hardware profile id or .toml path.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="New or empty folder for the project, or a project generated before (its files are "
                   "replaced; files you added there stay).")
@click.option("--arena-bytes", type=click.IntRange(min=1), default=None,
              help="Measured tensor arena in bytes (default: measured now in the TFLite Micro interpreter).")
@click.option("--class-names", default=None, help="Comma-separated labels, one per output.")
@click.option("--labels", "labels_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A file with one label per line (instead of --class-names).")
@click.option("--model-id", default=None, help="Id the firmware reports (default: first 12 hex digits of the SHA-1).")
@click.option("--input-scaling", default=None, help="How raw input becomes model input (a note in model_data.h).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def generate_cmd(template: str | None, model_path: Path, profile_id: str, out_dir: Path, arena_bytes: int | None,
                 class_names: str | None, labels_file: Path | None, model_id: str | None,
                 input_scaling: str | None, as_json: bool) -> None:
    """Render a firmware project for MODEL on PROFILE into OUT.

    The project embeds the model without the converter's tensor names, as deploy writes it (TFLite Micro
    never reads them); the firmware announces the file's own id, so `tinynas measure --model` finds it."""
    from tinynas.deploy.firmware import generate_firmware, get_template, read_project_info
    from tinynas.hardware import load_profile

    from tinynas.deploy.flatbuffer import strip_tensor_names
    from tinynas.deploy.interpreter import require_int8

    profile = load_profile(profile_id)
    model_bytes = model_path.read_bytes()
    require_int8(model_bytes, source=str(model_path))  # the check estimate, deploy and measure make
    if arena_bytes is None:
        from tinynas.deploy.arena import measure_arena_bytes

        arena_bytes = measure_arena_bytes(model_bytes, source=str(model_path))
    model_id = model_id or hashlib.sha1(model_bytes).hexdigest()[:12]  # the file's, as `measure` finds it
    # the board holds the model without the converter's tensor names, as deploy writes it
    model_bytes, stripped = strip_tensor_names(model_bytes, source=str(model_path))
    project = generate_firmware(template=template, model_bytes=model_bytes, profile=profile, out_dir=out_dir,
                                class_names=_class_names(class_names, labels_file), arena_bytes=arena_bytes,
                                model_id=model_id, input_scaling=input_scaling, source=str(model_path))
    stamp = read_project_info(project)
    if as_json:
        echo_json({"out_dir": str(project), "arena_bytes": arena_bytes, "model_bytes": len(model_bytes),
                   "tensor_names_stripped_bytes": stripped, **stamp})
        return
    name = template or profile.ecosystem.default_template
    click.echo(f"{get_template(name).ecosystem} project for {profile.name} in {project}")
    click.echo(f"  model {model_id}, {len(model_bytes):,} bytes of flash"
               + (f" ({stripped:,} bytes of tensor names stripped)" if stripped else "")
               + f", measured arena {arena_bytes} bytes")
    where = shlex.quote(str(project))  # the commands are for a shell a person types into
    click.echo(f"  build: (cd {where} && {stamp['build']})")
    click.echo(f"  flash: (cd {where} && {stamp['flash']})")
    click.echo(f"  see {project / 'README.md'}")
