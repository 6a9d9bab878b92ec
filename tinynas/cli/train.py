"""``tinynas train ARCH.json --dataset DS --out model.keras``: train one architecture."""

from __future__ import annotations

from pathlib import Path

import click

from tinynas.cli.common import echo_json
from tinynas.cli.datasets import dataset_option, typed_options


@click.command()
@click.argument("arch_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dataset", "dataset", required=True,
              help="A dataset name (tinynas datasets list), a path, or an https:// URL (downloaded once).")
@dataset_option(also=("--option",))
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--max-train-samples", type=int, default=None, help="Train on a class-balanced subset of this size.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--learning-rate", type=float, default=3e-3, show_default=True)
@click.option("--patience", type=int, default=None, help="Early stopping patience in epochs (off by default).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the splits, subset and weights.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Where to save model.keras.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Training result cache (results are recorded; the model is always trained).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def train(arch_file: Path, dataset: str, options: tuple[str, ...], epochs: int, max_train_samples: int | None,
          batch_size: int, learning_rate: float, patience: int | None, seed: int, out: Path,
          cache_dir: Path | None, as_json: bool) -> None:
    """Train the architecture in ARCH_FILE (as `tinynas space sample` prints it) and save it."""
    from tinynas.train import TrainBudget
    from tinynas.train.arch_file import train_arch_file

    budget = TrainBudget(epochs=epochs, max_train_samples=max_train_samples, batch_size=batch_size,
                         learning_rate=learning_rate, early_stopping_patience=patience)
    result, summary = train_arch_file(arch_file, dataset=dataset, out=out, budget=budget, seed=seed,
                                      dataset_options=typed_options(dataset, options),
                                      cache_dir=cache_dir)
    if as_json:
        echo_json({**summary, "result": result.to_json()})
        return
    click.echo(f"arch      {summary['arch_id']}  {summary['arch']['space']}")
    click.echo(f"dataset   {summary['dataset']['name']}  {tuple(summary['dataset']['input_shape'])}")
    if summary["input_adaptation"] == "resize":
        click.echo(f"input     resized (bilinear) to {tuple(summary['model_input_shape'])}: the firmware must do the "
                   "same (deploy writes ResizeRawInput into model_data.h for it)")
    click.echo(f"val acc   {result.val_accuracy:.4f}  (loss {result.val_loss:.4f})")
    if result.test_accuracy is not None:
        click.echo(f"test acc  {result.test_accuracy:.4f}  (loss {result.test_loss:.4f})")
    passes = result.budget.epoch_passes
    over = f" (each {passes} passes over them)" if passes > 1 else ""
    click.echo(f"epochs    {result.epochs_run}  on {result.train_samples} samples{over}, {result.train_seconds:.1f} s")
    click.echo(f"params    {result.params}")
    click.echo(f"saved     {summary['model']}")
    if summary.get("record"):
        click.echo(f"record    {summary['record']} (the split seed: deploy measures on this test split)")
