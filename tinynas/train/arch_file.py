"""Train an architecture saved as JSON on a dataset: what ``tinynas train ARCH.json`` runs.

Reads the arch (as ``tinynas space sample`` prints it), builds its space for
the dataset's input shape and class count, trains, and saves ``model.keras``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tinynas.errors import TrainError
from tinynas.space.arch import Arch
from tinynas.space.arch import read_arch_file as _read_arch_file
from tinynas.text import dataset_words
from tinynas.train.budget import TrainBudget, TrainResult
from tinynas.train.inputs import check_input_shape


def read_arch_file(path: str | os.PathLike[str]) -> Arch:
    """The Arch in ``path`` (see ``tinynas.space.arch.read_arch_file``); raises TrainError."""
    return _read_arch_file(path, error=TrainError)


def train_arch_file(
    arch_path: str | os.PathLike[str],
    *,
    dataset: str,
    out: str | os.PathLike[str],
    budget: TrainBudget = TrainBudget(),
    seed: int = 0,
    dataset_options: dict[str, Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[TrainResult, dict[str, Any]]:
    """Train the arch in ``arch_path`` on ``dataset`` and save it to ``out`` (a ``.keras`` file).

    A small training set is passed over several times per epoch, as in a run's trainings
    (``TrainBudget.on_train_set``). Returns the result and a summary (arch, dataset facts, output
    path) for printing.
    """
    from tinynas.data import load_dataset
    from tinynas.space import base as space_base
    from tinynas.train.provenance import write_train_record
    from tinynas.train.trainer import train_graph

    out = Path(out)
    if out.suffix != ".keras":
        raise TrainError(f"--out {out}: the trained model is saved as a .keras file; name it e.g. model.keras")
    arch = read_arch_file(arch_path)
    ds = load_dataset(dataset, seed=seed, **(dataset_options or {}))
    ds.require_splits("train", "val", needed_for="training (validation accuracy, early stopping)")
    space = space_base.get_space(arch.space, input_shape=ds.input_shape, num_classes=ds.num_classes,
                                 adjacency=ds.adjacency, node_task=ds.node_task)
    resample = ["tinynas", "space", "sample", "--space", arch.space, *dataset_words(dataset, dataset_options or {}),
                "--n", "1", "--json"]
    graph = space.graph_from_file(arch, path=arch_path, resample=resample, error=TrainError)
    result = train_graph(graph, ds, budget=budget.on_train_set(len(ds.y_train)), seed=seed, arch_id=arch.id,
                         save_path=out, cache_dir=cache_dir)
    model_shape = tuple(graph.input_shape[1:])
    # deploy reads the split seed from it, so the test split it measures on is this one's
    record = write_train_record(out, seed=seed, arch=arch.to_json(), dataset={
        "name": ds.name, "given": str(dataset), "fingerprint": ds.fingerprint, "options": dataset_options or {}})
    summary = {
        "arch": arch.to_json(),
        "arch_id": arch.id,
        "model_input_shape": list(model_shape),
        # what the firmware must do before the input tensor: "same", "reshape" or "resize" (bilinear)
        "input_adaptation": check_input_shape(ds.input_shape, model_shape, dataset=ds.name),
        "dataset": {"name": ds.name, "fingerprint": ds.fingerprint, "input_shape": list(ds.input_shape),
                    "num_classes": ds.num_classes, "input_scaling": ds.input_scaling.to_json()},
        "model": str(out),
        "record": None if record is None else str(record),
    }
    return result, summary
