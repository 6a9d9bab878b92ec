"""``tinynas proxies``: list the zero-cost proxies, score sampled architectures, and
benchmark how well the proxies rank against published or freshly trained accuracy.

Thin wrappers over ``tinynas.proxies`` (score, benchmark); errors are
TinyNASError subclasses that ``tinynas.cli.main`` reports.
"""

from __future__ import annotations

from typing import Any

import click

from tinynas.cli.common import echo_json, parse_shape
from tinynas.cli.datasets import dataset_option, typed_options
from tinynas.errors import ProxyError


def _proxy_list(value: str | None, *, default: list[str]) -> list[str]:
    from tinynas.proxies import get_proxy

    names = default if not value else [p.strip() for p in value.split(",") if p.strip()]
    for name in names:
        get_proxy(name)  # unknown names raise ProxyError listing the known ones
    return names


def _dataset_batch(name: str, *, seed: int, n: int, options: dict[str, Any]) -> tuple[Any, Any]:
    from tinynas.data import load_dataset
    from tinynas.proxies.benchmark import batch_from_dataset

    dataset = load_dataset(name, seed=seed, **options)
    return dataset, batch_from_dataset(dataset, n=n, seed=seed)


@click.group("proxies")
def proxies() -> None:
    """Zero-cost proxies: list, score, benchmark."""


@proxies.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_proxies(as_json: bool) -> None:
    """Every registered proxy, its sign and whether it needs data."""
    from tinynas.proxies import get_proxy, proxy_names

    specs = [get_proxy(n).to_json() for n in proxy_names()]
    if as_json:
        echo_json(specs)
        return
    click.echo(f"{'proxy':<10} {'sign':<7} {'data':<5} description")
    for s in specs:
        sign = "higher" if s["higher_is_better"] else "lower"
        click.echo(f"{s['name']:<10} {sign:<7} {'yes' if s['needs_data'] else 'no':<5} {s['description']}")


@proxies.command("score")
@click.option("--space", "space_name", required=True, help="Search space name (see `tinynas space list`).")
@click.option("--input-shape", "input_shape", default=None, help="H,W,C or L,C (default: the dataset's, else 32,32,3).")
@click.option("--classes", "num_classes", type=int, default=None, help="Class count (default: the dataset's, else 10).")
@click.option("-n", "--n", "n", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many archs to sample and score.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--proxies", "proxy_csv", default=None,
              help="Comma-separated proxies (default: every one with --dataset, else the data-free ones).")
@click.option("--dataset", default=None, help="Dataset for data-dependent proxies (a name or path).")
@dataset_option()
@click.option("--batch-size", type=int, default=64, show_default=True, help="Examples in the proxies' batch.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def score(space_name: str, input_shape: str | None, num_classes: int | None, n: int, seed: int,
          proxy_csv: str | None, dataset: str | None, options: tuple[str, ...], batch_size: int, as_json: bool) -> None:
    """Sample N archs of a space and print each proxy's score for each."""
    import numpy as np

    from tinynas.proxies import proxy_names
    from tinynas.proxies.ensemble import ensemble_for
    from tinynas.proxies.score import score_arch
    from tinynas.space import get_space

    names = _proxy_list(proxy_csv, default=proxy_names(needs_data=False) if dataset is None else proxy_names())
    data, batch = (_dataset_batch(dataset, seed=seed, n=batch_size, options=typed_options(dataset, options))
                   if dataset else (None, None))
    shape = parse_shape(input_shape) if input_shape else tuple(data.input_shape) if data is not None else (32, 32, 3)
    classes = num_classes if num_classes is not None else len(data.class_names) if data is not None else 10
    space = get_space(space_name, input_shape=shape, num_classes=classes)
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        arch = space.sample(rng)
        rows.append({"id": arch.id, "arch": arch.to_json(),
                     "scores": score_arch(space=space, arch=arch, proxies=names, batch=batch, seed=seed)})
    ens = ensemble_for(names)
    for row, value in zip(rows, ens.combine([r["scores"] for r in rows])):
        row["ensemble_rank"] = float(value)
    if as_json:
        echo_json(rows)
        return
    click.echo(f"{'id':<13}" + "".join(f"{p:>14}" for p in names))
    for row in rows:
        click.echo(f"{row['id']:<13}" + "".join(f"{row['scores'][p]:>14.5g}" for p in names))


@proxies.command("benchmark")
@click.option("--space", "space_name", required=True, help="nasbench201 (with --truth) or a space to train.")
@click.option("--truth", "truth", default=None, type=click.Path(dir_okay=False),
              help="NAS-Bench-201 table (arch_str + accuracy columns); default: the one in tinynas's benchmarks/.")
@click.option("--column", default="cifar10_val_acc", show_default=True, help="Accuracy column of --truth.")
@click.option("--dataset", default=None, help="Dataset to train on (spaces without a published table).")
@dataset_option()
@click.option("--epochs", type=int, default=2, show_default=True, help="Training epochs per arch (with --dataset).")
@click.option("-n", "--n", "n", type=click.IntRange(min=3), default=100, show_default=True,
              help="How many archs (3 or more: the rank correlation of two is always +-1).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--proxies", "proxy_csv", default=None, help="Comma-separated proxies (default: data-free ones).")
@click.option("--cells", "cells_per_stage", type=int, default=5, show_default=True,
              help="NAS-Bench-201 cells per stage (5 is the paper's).")
@click.option("--input-shape", "input_shape", default=None, help="Input shape for a trained space (default: the dataset's).")
@click.option("--max-train-samples", type=int, default=None, help="Train on a class-balanced subset of this size.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def benchmark(space_name: str, truth: str | None, column: str, dataset: str | None, options: tuple[str, ...],
              epochs: int, n: int, seed: int,
              proxy_csv: str | None, cells_per_stage: int, input_shape: str | None, max_train_samples: int | None,
              progress: bool, as_json: bool) -> None:
    """Spearman and Kendall tau of each proxy (and the ensemble) against accuracy, plus seconds per arch."""
    from tinynas.proxies import proxy_names
    from tinynas.proxies.benchmark import benchmark_nasbench201, benchmark_trained
    from tinynas.proxies.ensemble import ensemble_for

    names = _proxy_list(proxy_csv, default=proxy_names(needs_data=False))
    ens = ensemble_for(names)
    if truth is None and space_name == "nasbench201" and not dataset:
        from tinynas.resources import data_dir

        truth = str(data_dir("benchmarks") / "nasbench201_accuracy.csv")
    if truth:
        if space_name != "nasbench201":
            raise ProxyError(f"--truth is a NAS-Bench-201 table: use it with --space nasbench201, not {space_name!r}")
        result = benchmark_nasbench201(truth_path=truth, n=n, seed=seed, proxies=names, column=column,
                                       cells_per_stage=cells_per_stage, ensemble=ens, progress=progress)
    elif dataset:
        from tinynas.data import load_dataset
        from tinynas.space import get_space

        data = load_dataset(dataset, seed=seed, **typed_options(dataset, options))
        shape = parse_shape(input_shape) if input_shape else tuple(data.input_shape)
        space = get_space(space_name, input_shape=shape, num_classes=len(data.class_names), adjacency=data.adjacency,
                          node_task=data.node_task)
        result = benchmark_trained(space=space, dataset=data, n=n, epochs=epochs, seed=seed, proxies=names,
                                   ensemble=ens, progress=progress, max_train_samples=max_train_samples)
    else:
        raise ProxyError("benchmark needs --space nasbench201 (its table ships with tinynas) or --dataset NAME (train each arch)")
    if as_json:
        echo_json(result.to_json())
        return
    click.echo(result.table())
