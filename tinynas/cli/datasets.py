"""``tinynas datasets``: list the dataset sources and inspect one dataset."""

from __future__ import annotations

from typing import Any, Callable

import click

from tinynas.cli.common import echo_json, split_setting


def parse_options(pairs: tuple[str, ...]) -> dict[str, str]:
    """``("image_size=32", ...)`` -> ``{"image_size": "32"}`` (typed later by the loader's signature)."""
    out: dict[str, str] = {}
    for text in pairs:
        pair = split_setting(text)
        if pair is None:
            raise click.BadParameter(f"expected KEY=VALUE with a name for KEY, got {text!r}", param_hint="-o/--option")
        out[pair[0]] = pair[1]
    return out


def dataset_option(*, dest: str = "options", also: tuple[str, ...] = ()) -> Callable:
    """The ``-o/--dataset-option KEY=VALUE`` option of every command that loads a dataset."""
    return click.option("-o", "--dataset-option", *also, dest, multiple=True, metavar="KEY=VALUE",
                        help="A dataset loader option, e.g. -o label_column=activity or -o image_size=32 "
                             "(repeatable; `tinynas datasets list` shows each dataset's).")


def typed_options(dataset: str, pairs: tuple[str, ...]) -> dict[str, Any]:
    """``-o`` pairs typed by the loader of ``dataset`` (DatasetError for an unknown key or a bad value)."""
    if not pairs:
        return {}
    from tinynas.data import coerce_options, resolve_source

    source, _ = resolve_source(dataset)
    return coerce_options(source, parse_options(pairs))


@click.group()
def datasets() -> None:
    """List and inspect datasets (built-in, downloads, folders, .npz, .csv)."""


@datasets.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_cmd(as_json: bool) -> None:
    """Every dataset name and the kinds of path --dataset accepts, with their options."""
    from tinynas.data import dataset_sources
    from tinynas.data.remote import remote_kinds

    sources = [s.to_json() for s in dataset_sources()]
    named = [s for s in sources if s["kind"] != "path"]
    sources = named + remote_kinds() + [s for s in sources if s["kind"] == "path"]
    if as_json:
        echo_json(sources)
        return
    for s in sources:
        opts = ", ".join(f"{k}={v}" for k, v in s["options"].items())
        click.echo(f"{s['name']:<16} {s['kind']:<10} {s['description']}" + (f"  [options: {opts}]" if opts else ""))


@datasets.command("inspect")
@click.argument("name_or_path")
@click.option("--seed", type=int, default=0, show_default=True, help="Split seed.")
@dataset_option(also=("--option",))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def inspect_cmd(name_or_path: str, seed: int, options: tuple[str, ...], as_json: bool) -> None:
    """Sizes, input shape, classes, counts per class, input scaling and fingerprint of a dataset."""
    from tinynas.data import inspect_dataset
    from tinynas.data.types import InputScaling

    info = inspect_dataset(name_or_path, seed=seed, **typed_options(name_or_path, options))
    if as_json:
        echo_json(info)
        return
    click.echo(f"dataset      {info['name']}")
    click.echo(f"source       {info['source']}")
    click.echo(f"input shape  {tuple(info['input_shape'])}")
    st = info["structure"]
    if st["kind"] == "graph":
        click.echo(f"graph        {st['nodes']} nodes, {st['edges']} {'directed ' if st['directed'] else ''}edges, "
                   f"degree {st['degree_range'][0]}..{st['degree_range'][1]}, {st['node_features']} features per node"
                   + (f", {st['self_loops']} self loops" if st["self_loops"] else "")
                   + ("; node task (the last feature marks the node asked about)" if st["task"] == "node"
                      else "; graph task"))
    elif st["kind"] == "sequence":
        click.echo(f"sequence     length {st['length']}, {st['channels']} channel(s)")
    click.echo(f"sizes        train {info['sizes']['train']}, val {info['sizes']['val']}, test {info['sizes']['test']}")
    if info.get("splits"):
        click.echo(f"splits       {info['splits']}")
    if info.get("preprocessing"):
        click.echo(f"preprocess   {info['preprocessing']}")
    scaling = InputScaling.from_json(info["input_scaling"])
    click.echo(f"scaling      {scaling.description} ({scaling.formula('.6g')})")
    click.echo(f"fingerprint  {info['fingerprint']}")
    click.echo("classes      (train / val / test)")
    for i, name in enumerate(info["class_names"]):
        c = info["counts"]
        click.echo(f"  {i:>3} {name:<20} {c['train'][i]:>6} {c['val'][i]:>6} {c['test'][i]:>6}")


@datasets.command("cache")
# the kinds are tinynas.data.cache_entries.KINDS (a test holds them equal), not imported: --help stays instant
@click.option("--clear", "clear", multiple=True,
              type=click.Choice(("all", "downloads", "unpacked", "generated", "image-folders")),
              help="Remove these entries (repeatable; all: every kind). Downloads come back on the next load that "
                   "needs them, with the network; the rest are rebuilt offline.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cache_cmd(clear: tuple[str, ...], as_json: bool) -> None:
    """What the dataset cache ($TINYNAS_HOME, else ~/.cache/tinynas) holds: downloads, unpacked archives,
    generated sets and image folders' pixels; --clear removes what tinynas wrote there, nothing else."""
    from tinynas.data.cache import tinynas_home
    from tinynas.data.cache_entries import KINDS, cache_entries, clear_cache

    kinds = KINDS if "all" in clear else tuple(k for k in KINDS if k in clear)
    entries = clear_cache(kinds=kinds) if clear else cache_entries()
    if as_json:
        echo_json({"root": str(tinynas_home()), "cleared": bool(clear), "entries": [e.to_json() for e in entries]})
        return
    verb = "removed" if clear else "holds"
    click.echo(f"{tinynas_home()} {verb} {sum(e.bytes for e in entries):,} bytes in {len(entries)} entries")
    for e in entries:
        click.echo(f"  {e.kind:<14} {e.bytes:>14,}  {e.what}")
