"""``tinynas search``, ``run``, ``sweep`` and ``report``: thin wrappers over tinynas.pipeline."""

from __future__ import annotations

import contextlib
import os
import shlex
from pathlib import Path
from typing import Any, Callable, Iterator

import click

from tinynas.cli.common import ByteSize, Count, Setting, echo_json, qat_option
from tinynas.cli.datasets import dataset_option, typed_options
from tinynas.text import dataset_words

# Commands here train; keep TensorFlow's C++ start-up chatter out of the output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _common(fn: Callable) -> Callable:
    """The options search, run and sweep share."""
    options = [
        click.option("--dataset", required=True,
                     help="A dataset name (tinynas datasets list), a path, or an https:// URL (downloaded once)."),
        dataset_option(dest="dataset_options"),
        click.option("--space", default="dscnn", show_default=True, help="Search space (tinynas space list)."),
        click.option("--strategy", default="staged", show_default=True,
                     help="Search strategy: staged, evolution, random, reinforce, nanonas, ofa, darts, drnas, rdarts."),
        click.option("--refine", type=click.Choice(["none", "darts", "drnas", "rdarts"]), default="none",
                     show_default=True,
                     help="With --strategy staged on mcunet or dscnn: a differentiable refinement stage between "
                          "evolution and final training (layer-wise supernet around the evolution's best arch)."),
        click.option("--refine-option", "refine_options", type=Setting(), multiple=True, metavar="KEY=VALUE",
                     help="A hyperparameter of the --refine method's supernet (repeatable): supernet_epochs, "
                          "supernet_samples, alpha_lr, hw_lambda, max_mixed_blocks; goes into config.toml [refine]."),
        click.option("--strategy-option", "strategy_options", type=Setting(), multiple=True, metavar="KEY=VALUE",
                     help="A hyperparameter of --strategy (repeatable), e.g. --strategy-option max_width=0.35 "
                          "for ofa; goes into config.toml [strategy]."),
        click.option("--budget-candidates", type=int, default=None,
                     help="Candidates to train in the search (default 24 when no budget is given)."),
        click.option("--budget-minutes", type=float, default=None, help="Wall-clock minutes for the search."),
        click.option("--workers", type=int, default=1, show_default=True,
                     help="Candidate trainings at a time: local worker processes, or Ray tasks with "
                          "--backend ray (one TensorFlow thread each)."),
        click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help="Where candidates train: local processes, or Ray tasks (pip install 'tinynas[ray]')."),
        click.option("--ray-address", default=None,
                     help="A Ray cluster to join, e.g. 10.0.0.5:6379 from `ray start --head` "
                          "(default: $RAY_ADDRESS, else start a local Ray instance)."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--search-epochs", type=int, default=3, show_default=True, help="Epochs per search candidate."),
        click.option("--search-samples", type=int, default=1000, show_default=True,
                     help="Training samples per search candidate (class-balanced subset)."),
        click.option("--final-epochs", type=int, default=20, show_default=True, help="Epochs of the final training."),
        click.option("--final-top-k", type=int, default=3, show_default=True, help="Candidates trained in full."),
        click.option("--prefilter-candidates", type=int, default=150, show_default=True,
                     help="Archs the staged prefilter samples and scores with zero-cost proxies."),
        click.option("--latency-ms", type=float, default=None,
                     help="Latency budget in ms (replaces the profile's latency_target_ms)."),
        click.option("--arena-budget", type=ByteSize(), default=None,
                     help="TFLM arena budget, e.g. 32K or 32768 (replaces the profile's SRAM budget; taken as it "
                          "is: without it, an image or WAV folder's front end gets its share set aside first)."),
        click.option("--flash-budget", type=ByteSize(), default=None,
                     help="Model flash budget, e.g. 256K (replaces the profile's flash budget)."),
        click.option("--max-macs", type=Count(), default=None,
                     help="Most multiply-accumulates per inference, e.g. 1.2M (NanoNAS-style bound)."),
        click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
                     help="Training result cache (default: <out>/cache)."),
        click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
                     help="Run directory; the same command again resumes it."),
        click.option("--no-progress", is_flag=True,
                     help="No progress bars (for logs: `tinynas -v` logs a line per training and stage)."),
        click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _settings(profile: str, kw: dict[str, Any]):
    from tinynas.pipeline.settings import RunSettings

    return RunSettings(
        profile=profile, dataset=kw["dataset"], dataset_options=typed_options(kw["dataset"], kw["dataset_options"]),
        space=kw["space"], strategy=kw["strategy"],
        refine=kw["refine"], strategy_options=dict(kw["strategy_options"]), refine_options=dict(kw["refine_options"]),
        budget_candidates=kw["budget_candidates"], budget_minutes=kw["budget_minutes"], workers=kw["workers"],
        backend=kw["backend"], ray_address=kw["ray_address"],
        seed=kw["seed"], search_epochs=kw["search_epochs"], search_samples=kw["search_samples"],
        final_epochs=kw["final_epochs"], final_top_k=kw["final_top_k"],
        prefilter_candidates=kw["prefilter_candidates"], template=kw.get("template"), qat=kw.get("qat"),
        cache_dir=kw["cache_dir"],
        progress=not kw["no_progress"], latency_ms=kw["latency_ms"], arena_budget_bytes=kw["arena_budget"],
        flash_budget_bytes=kw["flash_budget"], max_macs=kw["max_macs"],
    )


@contextlib.contextmanager
def _resumable(out: Path, what: str) -> Iterator[None]:
    """Ctrl-C says where the work is kept and how to go on: the pipeline saved it and journaled the stop."""
    try:
        yield
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"what the {what} had done is kept in {out}; the same command again resumes it") \
            from None


def _bytes(value: Any) -> str:
    return f"{int(value):,}" if isinstance(value, (int, float)) else str(value)


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    from tinynas.measure.flash import STAMP
    from tinynas.pipeline.front_end_budget import reserve_text
    from tinynas.pipeline.report import (cheaper_tie_note, dataset_options_text, fill_text, refinement_text,
                                         scored_text, search_time_text, supernet_text)

    w = summary.get("winner") or {}
    c = w.get("cost") or {}
    options = dataset_options_text(summary)
    click.echo(f"board      {summary['board']}   dataset {summary['dataset']}"
               f"{f' ({options})' if options else ''}   space {summary['space']}   "
               f"strategy {summary['strategy']}")
    if summary.get("supernet"):
        click.echo(f"supernet   {supernet_text(summary['supernet'])}")
    click.echo(f"searched   {summary['candidates_evaluated']} candidates, {summary['trainings']} trainings"
               f"{scored_text(summary)}, {search_time_text(summary).removeprefix('search ')}")
    refinement = summary.get("refinement")
    if refinement:
        click.echo(f"{'refine' if refinement['stage'] == 'refine' else 'supernet':<10} {refinement_text(refinement)}")
    stop = summary.get("search_stop") or {}
    if stop.get("reason") not in (None, "budget"):
        click.echo(f"{'exhausted' if stop['reason'] == 'exhausted' else 'stopped':<10} {stop.get('message')}")
    extension = (summary.get("final_training") or {}).get("extension")
    if extension:
        click.echo(f"final      {extension['message']}")
    fill = (summary.get("final_training") or {}).get("fill")
    if fill:
        click.echo(f"final      {fill_text(fill)}")
    if w:
        acc, deployed = w.get("deployed_accuracy"), w.get("deployed_model")  # a GPU's: its fp32 ONNX model's
        what = "int8" if deployed in (None, "model_int8.tflite") else deployed
        acc_text = f"  {what} test acc {acc:.4f}" if acc is not None else ""
        click.echo(f"winner     {w['id']}  val acc {w['val_accuracy']:.4f}{acc_text}"
                   + (f"  float test acc {w['float_test_accuracy']:.4f}" if w.get("float_test_accuracy") else ""))
        arena = w.get("tflm_arena_bytes") or c.get("arena_bytes")
        flash = w.get("tflite_flash_bytes") or c.get("flash_bytes")
        runtime = w.get("kind") in ("mobile", "gpu")  # the largest deployed model's runtime memory and file
        click.echo(f"cost       latency {c.get('latency_ms', 0):.2f} ms  {'runtime memory' if runtime else 'arena'} "
                   f"{_bytes(arena)} B  {'model file' if runtime else 'flash'} {_bytes(flash)} B")
        tie = cheaper_tie_note(summary)
        if tie:
            click.echo(f"tie        {tie}")
    budgets = summary.get("budgets") or {}
    if budgets.get("front_end_reserve_bytes"):
        arena, reserve = int(budgets["sram_budget_bytes"]), int(budgets["front_end_reserve_bytes"])
        click.echo(f"budget     arena {arena:,} B: {reserve_text(arena_budget=arena, reserve=reserve)}")
    if summary.get("constraints"):
        click.echo("constraints " + ", ".join(f"{k} {v}" for k, v in summary["constraints"].items()))
    projects = sorted((out / "firmware").glob("*/" + STAMP))
    for stamp in projects:
        click.echo(f"firmware   {stamp.parent}   (build and flash: tinynas flash {stamp.parent} --port PORT)")
    if not projects and (out / "deploy").is_dir():  # phones and GPUs: a runner and instructions, no firmware
        click.echo(f"deploy     {out / 'deploy'}   ({', '.join(sorted(p.name for p in (out / 'deploy').iterdir()))})")
    from tinynas.deploy.codegen import FRONT_ENDS, front_end_ram_text

    for name, (what, source) in FRONT_ENDS.items():
        if (out / "deploy" / name).is_file():
            ram = front_end_ram_text((summary.get("winner") or {}).get("front_end"))
            click.echo(f"front end  {out / 'deploy' / name}   ({what}, from {source}" + (f"; {ram})" if ram else ")"))
    click.echo(f"report     {out / 'report.md'}")


@click.command()
@click.option("--profile", "-p", required=True, help="Board id (tinynas profiles list) or a .toml path.")
@_common
def search(profile: str, as_json: bool, **kw: Any) -> None:
    """Search for the most accurate architecture that fits a board (no deployment)."""
    from tinynas.pipeline.run import search as do_search

    with _resumable(kw["out"], "search"):
        result = do_search(settings=_settings(profile, kw), out=kw["out"])
    if as_json:
        echo_json(result.to_json())
        return
    _print_summary(result.summary, kw["out"])
    model = kw["out"] / "model" / "model.keras"
    if model.is_file():  # the next step, with the dataset and split this search used
        words = ["tinynas", "deploy", str(model), "--profile", profile, *dataset_words(kw["dataset"],
                                                                                      kw["dataset_options"]),
                 *(["--seed", str(kw["seed"])] if kw["seed"] else []), "--out", "DIR"]
        click.echo(f"next       {shlex.join(words)}")


@click.command()
@click.option("--profile", "-p", required=True, help="Board id (tinynas profiles list) or a .toml path.")
@click.option("--template", default=None, help="Firmware template (default: the board's own).")
@qat_option
@_common
def run(profile: str, as_json: bool, **kw: Any) -> None:
    """Search, train, quantize to int8, validate in TFLite Micro, write firmware and a report."""
    from tinynas.pipeline.run import run as do_run

    with _resumable(kw["out"], "run"):
        result = do_run(settings=_settings(profile, kw), out=kw["out"])
    echo_json(result.to_json()) if as_json else _print_summary(result.summary, kw["out"])


@click.command()
@click.option("--profiles", "--profile", "-p", "profiles", multiple=True,
              help="Board ids or .toml paths, comma-separated or the option repeated (-p nano33ble -p rpi4).")
@click.option("--kind", default=None, help="Every built-in board of this kind (mcu, mobile, gpu).")
@click.option("--search-only", is_flag=True, help="Search each board without deploying.")
@qat_option
@click.option("--order", default="tightest-first", show_default=True,
              help="Which board searches first. tightest-first: about the cost of one run, roomy boards pick "
                   "among candidates found for tighter ones; roomiest-first: each class of boards searches "
                   "its own frontier, about one run per class.")
@_common
def sweep(profiles: tuple[str, ...], kind: str | None, search_only: bool, order: str, as_json: bool, **kw: Any) -> None:
    """The whole pipeline over many boards, sharing trained candidates; writes sweep.md/sweep.json.

    A board that fails is reported and the others go on; the command then exits 1, so a script sees it."""
    from tinynas.pipeline.report import sweep_accuracy_text, sweep_budget_note
    from tinynas.pipeline.sweep import sweep as do_sweep, sweep_profiles

    if profiles and kind:
        raise click.UsageError("give --profiles or --kind, not both")
    if search_only and kw["qat"] is not None:
        raise click.UsageError(f"--{'' if kw['qat'] else 'no-'}qat is for deploying; a --search-only sweep deploys "
                               "nothing: drop one of them")
    named = [p for value in profiles for p in value.split(",")]  # sweep_profiles drops blanks
    ids = sweep_profiles(profiles=named or None, kind=kind)
    with _resumable(kw["out"], "sweep"):
        result = do_sweep(settings=_settings(ids[0], kw), profiles=ids, out=kw["out"], deploy=not search_only,
                          order=order)
    failed = result.report["failed"]
    if as_json:
        echo_json(result.to_json())
    else:
        for b in result.report["boards"]:
            if b["status"] == "failed":
                click.echo(f"{b['board']:<18} FAILED  {b.get('error', '')}")
            else:
                click.echo(f"{b['board']:<18} {b['status']:<10} {b.get('winner') or '-':<13} "
                           f"{sweep_accuracy_text(b)}  trainings {b.get('trainings')}")
        note = sweep_budget_note(result.report["boards"])
        if note:
            click.echo(f"note       {note}")
        click.echo(f"report     {kw['out'] / 'sweep.md'}")
    if failed:
        boards = len(result.report["boards"])
        click.echo(f"Error: {len(failed)} of {boards} boards failed ({', '.join(failed)}): each says why above and in "
                   f"{kw['out'] / 'sweep.md'}", err=True)
        raise SystemExit(1)


@click.command()
@click.argument("path", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def report(path: Path, as_json: bool) -> None:
    """Rebuild the report of a run or sweep in PATH."""
    from tinynas.pipeline.report import rebuild

    summary = rebuild(path)
    if as_json:
        echo_json(summary)
    elif "boards" in summary:
        click.echo(f"rebuilt {path / 'sweep.md'}, sweep.html, sweep.png and sweep.json")
    else:
        click.echo(f"rebuilt {path / 'report.md'}, report.html, pareto.png and summary.json")
