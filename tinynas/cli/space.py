"""``tinynas space``: list the search spaces, sample architectures with their cost,
and build one architecture as a Keras model.

Thin wrappers: each command parses its options, calls the library
(``tinynas.space``, ``tinynas.cost.estimate``, ``tinynas.space.keras_builder``)
and prints; errors are TinyNASError subclasses that ``tinynas.cli.main`` reports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from tinynas.cli.common import echo_json, parse_shape
from tinynas.cli.datasets import dataset_option, typed_options
from tinynas.errors import SpaceError
from tinynas.text import dataset_words

FALLBACK_INPUT_SHAPE = (32, 32, 3)


def _shape_option(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    return None if value is None else parse_shape(value)


def _default_shape(name: str) -> tuple[int, ...]:
    from tinynas.space.base import space_class

    return tuple(getattr(space_class(name), "default_input_shape", FALLBACK_INPUT_SHAPE))


def _dataset_options(f: Any) -> Any:
    """``--dataset`` and ``-o``: the input shape and classes from the data, and its front end's SRAM set aside
    on a microcontroller, as ``run`` would search."""
    f = dataset_option()(f)
    return click.option("--dataset", "dataset_name", default=None,
                        help="Take the input shape and classes from this dataset (instead of --input-shape and "
                             "--classes), and on a microcontroller set aside its front end's SRAM as `run` does.")(f)


def _dataset(dataset_name: str | None, options: tuple[str, ...], *, input_shape: tuple[int, ...] | None,
             num_classes: int | None) -> Any:
    """The dataset ``--dataset`` names (None without one); a usage error when the shape or classes are
    given too, or ``-o`` without a dataset."""
    if dataset_name is None:
        if options:
            raise click.UsageError("-o/--dataset-option is an option of --dataset: give the dataset too")
        return None
    if input_shape is not None or num_classes is not None:
        raise click.UsageError("give --dataset or --input-shape/--classes, not both: the dataset sets them")
    from tinynas.data import load_dataset

    return load_dataset(dataset_name, **typed_options(dataset_name, options))


def _space_and_profile(space_name: str, *, input_shape: tuple[int, ...] | None, num_classes: int | None,
                       dataset_name: str | None, options: tuple[str, ...], profile_id: str | None,
                       default_shape: tuple[int, ...] | None = None) -> tuple[Any, Any]:
    """The space for a dataset or for the shape and classes given, and the profile with the budget a run on
    that dataset would search under (None without ``profile_id``)."""
    from tinynas.space import get_space

    dataset = _dataset(dataset_name, options, input_shape=input_shape, num_classes=num_classes)
    if dataset is not None:
        search_space = get_space(space_name, input_shape=dataset.input_shape, num_classes=dataset.num_classes,
                                 adjacency=dataset.adjacency, node_task=dataset.node_task)
    else:
        shape = input_shape or default_shape
        if shape is None or num_classes is None:
            raise click.UsageError("give --dataset, or --input-shape and --classes")
        search_space = get_space(space_name, input_shape=shape, num_classes=num_classes)
    if profile_id is None:
        return search_space, None
    from tinynas.hardware import load_profile

    profile = load_profile(profile_id)
    if dataset is not None:
        from tinynas.pipeline.front_end_budget import reserve_front_end

        profile = reserve_front_end(profile, dataset, resized=search_space.resizes_input())
    return search_space, profile


def _reserve_line(profile: Any) -> str | None:
    reserve = getattr(profile, "front_end_reserve_bytes", None)
    if not reserve:
        return None
    from tinynas.pipeline.front_end_budget import reserve_text

    arena = int(profile.sram_budget_bytes)
    return f"arena budget {arena:,} B: {reserve_text(arena_budget=arena, reserve=int(reserve))}, as `run` does"


def _summary(space: Any, arch: Any) -> str:
    summary = getattr(space, "summary", None)
    return summary(arch) if callable(summary) else str(arch)


@click.group("space")
def space() -> None:
    """List search spaces, sample architectures, build one in Keras."""


@space.command("list")
@click.option("--input-shape", "input_shape", callback=_shape_option, default=None,
              help="Input shape for the sizes shown (default: each space's own, e.g. 32,32,3).")
@click.option("--classes", "num_classes", type=int, default=None, help="Number of classes (default: 10; or --dataset).")
@_dataset_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_spaces(input_shape: tuple[int, ...] | None, num_classes: int | None, dataset_name: str | None,
                options: tuple[str, ...], as_json: bool) -> None:
    """Every registered space: description, decisions with options, and size."""
    from tinynas.space import get_space, space_names
    from tinynas.space.base import space_class

    dataset = _dataset(dataset_name, options, input_shape=input_shape, num_classes=num_classes)
    graph: dict[str, Any] = {}
    if dataset is not None:
        input_shape, num_classes = tuple(dataset.input_shape), dataset.num_classes
        graph = {"adjacency": dataset.adjacency, "node_task": dataset.node_task}
    described = []
    for name in space_names():
        shape = input_shape or _default_shape(name)
        try:
            described.append(get_space(name, input_shape=shape, num_classes=10 if num_classes is None else num_classes,
                                       **graph).describe())
        except SpaceError as exc:  # this space cannot take the input: say why, list the others
            described.append({"name": name, "description": space_class(name).description,
                              "input_shape": list(shape), "error": str(exc)})
    if as_json:
        echo_json(described)
        return
    for info in described:
        shape = ",".join(str(d) for d in info["input_shape"])
        if "error" in info:
            click.echo(f"{info['name']}  (not available for input {shape}: {info['error']})")
            click.echo(f"  {info['description']}\n")
            continue
        click.echo(f"{info['name']}  ({info['size']:.3g} architectures for input {shape})")
        click.echo(f"  {info['description']}")
        for label, options in _grouped_decisions(info["decisions"]):
            text = ", ".join(str(o) for o in _in_order(options))
            click.echo(f"    {label:<22} {text if len(text) <= 70 else text[:67] + '...'}")
        click.echo("")


def _in_order(options: list) -> list:
    """Numeric options smallest first: spaces append options at the end to keep earlier arch ids
    (mcunet's widths 0.1-0.2 came after 1.0), which reads as if the list were unordered."""
    if all(isinstance(o, (int, float)) and not isinstance(o, bool) for o in options):
        return sorted(options)
    return options


def _grouped_decisions(decisions: list[dict]) -> list[tuple[str, list]]:
    """Decisions that differ only by stage/block number and share options, shown once (s*_b*_kernel x20)."""
    import re

    groups: dict[tuple[str, str], list] = {}
    counts: dict[tuple[str, str], int] = {}
    for d in decisions:
        key = (re.sub(r"\d+", "*", d["name"]), json.dumps(d["options"]))
        groups.setdefault(key, d["options"])
        counts[key] = counts.get(key, 0) + 1
    return [(pattern if counts[(pattern, o)] == 1 else f"{pattern} (x{counts[(pattern, o)]})", opts)
            for (pattern, o), opts in groups.items()]


def _cost_json(cost: Any, with_profile: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "macs": cost.macs,
        "params": cost.params,
        "flash_bytes": cost.flash_bytes,
        "arena_bytes": cost.arena_bytes,
    }
    if with_profile:
        data["latency_ms"] = cost.latency_ms
        data["profile"] = cost.profile_id
    data["fits"] = cost.fits
    return data


@space.command("sample")
@click.option("--space", "space_name", required=True, help="Space name (see `tinynas space list`).")
@click.option("--input-shape", "input_shape", default=None, callback=_shape_option,
              help="H,W,C for images and spectrograms, L,C for 1-D signals (or --dataset).")
@click.option("--classes", "num_classes", type=int, default=None, help="Number of classes (or --dataset).")
@_dataset_options
@click.option("-n", "--n", "n", type=click.IntRange(min=1), default=5, show_default=True, help="How many archs.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--profile", "-p", "profile_id", default=None, help="Hardware profile id or .toml path: adds latency and fits.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def sample(space_name: str, input_shape: tuple[int, ...] | None, num_classes: int | None, dataset_name: str | None,
           options: tuple[str, ...], n: int, seed: int, profile_id: str | None, as_json: bool) -> None:
    """Random architectures of a space with their cost (and fit on a profile)."""
    import numpy as np

    from tinynas.cost import estimate

    search_space, profile = _space_and_profile(space_name, input_shape=input_shape, num_classes=num_classes,
                                               dataset_name=dataset_name, options=options, profile_id=profile_id)

    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        arch = search_space.sample(rng)
        cost = estimate(search_space.graph(arch), profile=profile)
        row = {"id": arch.id, "arch": arch.to_json(), "cost": _cost_json(cost, profile is not None)}
        if as_json:
            click.echo(json.dumps(row, separators=(",", ":")))
        else:
            rows.append((row, _summary(search_space, arch)))
    if not as_json:
        _print_table(rows, with_profile=profile is not None)
        reserve = _reserve_line(profile)
        if reserve:
            click.echo(f"\n{reserve}")
        if search_space.summary_legend:
            click.echo(f"\narch: {search_space.summary_legend}")


def _print_table(rows: list[tuple[dict[str, Any], str]], *, with_profile: bool) -> None:
    header = f"{'id':<12}  {'MMACs':>8}  {'params':>8}  {'flash KiB':>9}  {'arena KiB':>9}"
    if with_profile:
        header += f"  {'ms':>8}  {'fits':<4}"
    click.echo(header + "  arch")
    for row, summary in rows:
        c = row["cost"]
        line = (f"{row['id']:<12}  {c['macs'] / 1e6:>8.2f}  {c['params']:>8d}  "
                f"{c['flash_bytes'] / 1024:>9.1f}  {c['arena_bytes'] / 1024:>9.1f}")
        if with_profile:
            latency = "-" if c.get("latency_ms") is None else f"{c['latency_ms']:.2f}"
            line += f"  {latency:>8}  {'yes' if c['fits'] else 'no':<4}"
        click.echo(line + "  " + summary)


@space.command("fit")
@click.option("--space", "space_name", default="mcunet", show_default=True, help="Space name.")
@click.option("--profile", "-p", "profile_id", required=True, help="Hardware profile id or .toml path.")
@click.option("--input-shape", "input_shape", callback=_shape_option, default=None,
              help="H,W,C or L,C (default: the space's own, e.g. 32,32,3; or --dataset).")
@click.option("--classes", "num_classes", type=int, default=None, help="Number of classes (default: 10; or --dataset).")
@_dataset_options
@click.option("--samples", type=click.IntRange(min=1), default=100, show_default=True, help="Samples per slice.")
@click.option("--min-fit", "min_fit", type=click.FloatRange(min=0.0, max=1.0, min_open=True), default=0.1,
              show_default=True, help="Least share of a slice's samples that must fit for it to be recommended.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def fit(space_name: str, profile_id: str, input_shape: tuple[int, ...] | None, num_classes: int | None,
        dataset_name: str | None, options: tuple[str, ...], samples: int, min_fit: float, seed: int,
        as_json: bool) -> None:
    """Which width and resolution of a space suit a board: the MACs of the archs that fit (MCUNet's space choice)."""
    from tinynas.pipeline.space_fit import fit_space

    if dataset_name is None:
        num_classes = 10 if num_classes is None else num_classes
    search_space, profile = _space_and_profile(
        space_name, input_shape=input_shape, num_classes=num_classes, dataset_name=dataset_name, options=options,
        profile_id=profile_id, default_shape=None if dataset_name else _default_shape(space_name))
    result = fit_space(space=search_space, profile=profile, samples=samples, seed=seed, min_fit_fraction=min_fit)
    if as_json:
        echo_json(result.to_json())
        return
    names = list(result.decisions) or ["slice"]
    click.echo(f"{search_space.name} on {result.profile}, {samples} samples per slice")
    reserve = _reserve_line(profile)
    if reserve:
        click.echo(reserve)
    click.echo("  ".join(f"{n:>10}" for n in names) + f"  {'fit %':>6}  {'MMACs mean':>10}  {'p10':>7}  {'p50':>7}"
               f"  {'p90':>7}")
    for i, s in enumerate(result.slices):
        values = [str(s.values[n]) for n in result.decisions] or ["all"]
        stats = ("-", "-", "-", "-") if s.macs_mean is None else (
            f"{s.macs_mean / 1e6:.3f}", f"{s.macs_p10 / 1e6:.3f}", f"{s.macs_p50 / 1e6:.3f}", f"{s.macs_p90 / 1e6:.3f}")
        mark = "  <- best" if i == result.best else ""
        click.echo("  ".join(f"{v:>10}" for v in values) + f"  {100 * s.fit_fraction:>6.1f}  {stats[0]:>10}  "
                   f"{stats[1]:>7}  {stats[2]:>7}  {stats[3]:>7}{mark}")
    if result.best is None:
        click.echo(f"nothing in {search_space.name} fits {result.profile} in {samples} samples per slice")
    else:
        best = result.slices[result.best]
        if not best.values:
            click.echo(f"{search_space.name} has no width or resolution decisions to slice by: the whole space "
                       "is one slice")
            return
        click.echo("best: " + ", ".join(f"{k}={v}" for k, v in best.values.items())
                   + f" (largest mean MACs among slices where at least {100 * min_fit:.0f} % fit)")


@space.command("build")
@click.argument("arch_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--input-shape", "input_shape", default=None, callback=_shape_option,
              help="H,W,C or L,C: the dataset's input shape the arch was sampled for (or --dataset).")
@click.option("--classes", "num_classes", type=int, default=None, help="Number of classes (or --dataset).")
@_dataset_options
@click.option("--out", "out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Where to write the model (.keras).")
@click.option("--seed", type=int, default=None, help="Seed for the weight initialisation.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def build(arch_file: Path, input_shape: tuple[int, ...] | None, num_classes: int | None, dataset_name: str | None,
          options: tuple[str, ...], out: Path, seed: int | None, as_json: bool) -> None:
    """Build the Keras model of one arch (ARCH_FILE as printed by `space sample`) and save it."""
    from tinynas.space.arch import read_arch_file
    from tinynas.space.keras_builder import build_keras_model

    if out.suffix != ".keras":
        raise SpaceError(f"--out {out}: the model file must end in .keras")
    arch = read_arch_file(arch_file)
    search_space, _ = _space_and_profile(arch.space, input_shape=input_shape, num_classes=num_classes,
                                         dataset_name=dataset_name, options=options, profile_id=None)
    resample = ["tinynas", "space", "sample", "--space", arch.space, "--n", "1", "--json", *(
        dataset_words(dataset_name, options) if dataset_name else
        ["--input-shape", ",".join(map(str, search_space.input_shape)), "--classes", str(search_space.num_classes)])]
    graph = search_space.graph_from_file(arch, path=arch_file, resample=resample)
    model = build_keras_model(graph, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    info = {
        "id": arch.id,
        "out": str(out),
        "input_shape": list(graph.input_shape[1:]),
        "output_shape": list(graph.output_shape[1:]),
        "params": int(model.count_params()),
    }
    if as_json:
        echo_json(info)
    else:
        click.echo(f"wrote {out}: {arch.space} arch {arch.id}, input {tuple(info['input_shape'])}, "
                   f"{info['params']} parameters")
