"""Train one Graph on one Dataset under a ``TrainBudget``: the evaluator every search strategy calls.

Builds the Keras model from the Graph, trains it (``loop.py``: Adam, cosine
decay) on a stratified subset, keeps the best epoch by validation loss when
early stopping is on, recalibrates BatchNorm statistics, and caches the
metrics by (arch, dataset fingerprint, budget, seed).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from tinynas.data.splits import stratified_subset
from tinynas.data.types import Dataset
from tinynas.errors import TrainError
from tinynas.space.graph import Graph
from tinynas.train.budget import TrainBudget, TrainResult
from tinynas.train.cache import TrainCache, cache_key, graph_signature
from tinynas.train.inputs import check_input_shape, fit_inputs
from tinynas.train.loop import KerasTrainLoop, LoopConfig

log = logging.getLogger(__name__)


# Keras' default BN momentum of 0.99 lags far behind the weights in a few hundred steps.
BN_TRAIN_MOMENTUM = 0.9
BN_RECALIBRATION_SAMPLES = 1024


def _check_classes(graph: Graph, dataset: Dataset) -> None:
    out = graph.output_shape[-1]
    if out != dataset.num_classes:
        raise TrainError(
            f"model output has {out} classes but dataset {dataset.name!r} has {dataset.num_classes} "
            f"({', '.join(dataset.class_names[:10])}{', ...' if dataset.num_classes > 10 else ''}); "
            f"build the architecture with num_classes={dataset.num_classes}"
        )


def train_graph(
    graph: Graph,
    dataset: Dataset,
    *,
    budget: TrainBudget = TrainBudget(),
    seed: int = 0,
    cache: TrainCache | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    arch_id: str | None = None,
    return_model: bool = False,
    save_path: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Train ``graph`` on ``dataset`` and return its metrics.

    With a cache (``cache`` or ``cache_dir``) a result already stored for the
    same ``arch_id`` (or graph signature when None), dataset fingerprint,
    budget and seed is returned with ``cached=True`` without training. Asking
    for the model (``return_model``) or its file (``save_path``, a ``.keras``
    path) always trains, since the cache holds metrics, not weights. Raises
    TrainError when the graph does not fit the dataset (shapes, classes).
    """
    if cache is None and cache_dir is not None:
        cache = TrainCache(cache_dir)
    if save_path is not None and Path(save_path).suffix != ".keras":
        raise TrainError(f"{save_path}: a trained model is saved as a .keras file; name it e.g. model.keras")
    check_input_shape(dataset.input_shape, tuple(graph.input_shape[1:]), dataset=dataset.name)
    _check_classes(graph, dataset)
    model_id = arch_id or f"graph:{graph_signature(graph)}"
    key = cache_key(model_id=model_id, dataset_fingerprint=dataset.fingerprint, budget=budget, seed=seed)
    wants_model = return_model or save_path is not None
    if cache is not None and not wants_model:
        hit = cache.get(key)
        if hit is not None:
            log.info("training cache hit %s for %s", key[:12], model_id)
            return hit

    result, model = _train(graph, dataset, budget=budget, seed=seed, arch_id=arch_id, key=key)
    if save_path is not None:
        result = _with(result, weights_path=str(_save(model, save_path)))
    if cache is not None:
        cache.put(key, result)
    return _with(result, model=model) if return_model else result


def _with(result: TrainResult, **changes: Any) -> TrainResult:
    from dataclasses import replace

    return replace(result, **changes)


def train_keras_model(
    model: Any,
    dataset: Dataset,
    *,
    budget: TrainBudget = TrainBudget(),
    seed: int = 0,
    arch_id: str | None = None,
    cache: TrainCache | None = None,
    save_path: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Train an existing functional ``keras.Model`` (softmax output) like ``train_graph`` trains a Graph.

    For strategies that build their own Keras models (weight sharing, DARTS).
    The model is trained in place and returned in ``result.model``. The cache
    is used only with an ``arch_id``, since a Keras model has no stable id.
    """
    model_shape = tuple(int(d) for d in model.input_shape[1:])
    check_input_shape(dataset.input_shape, model_shape, dataset=dataset.name)
    classes = int(model.output_shape[-1])
    if classes != dataset.num_classes:
        raise TrainError(f"model output has {classes} classes but dataset {dataset.name!r} has "
                         f"{dataset.num_classes}; build the model with {dataset.num_classes} outputs")
    key = cache_key(model_id=arch_id or "keras-model", dataset_fingerprint=dataset.fingerprint, budget=budget,
                    seed=seed)
    if cache is not None and arch_id is not None and save_path is None:
        hit = cache.get(key)
        if hit is not None:
            return hit
    result = _fit(model, model_shape, dataset, budget=budget, seed=seed, arch_id=arch_id, key=key,
                  label=arch_id or model.name, start=time.perf_counter())
    if save_path is not None:
        result = _with(result, weights_path=str(_save(model, save_path)))
    if cache is not None and arch_id is not None:
        cache.put(key, result)
    return _with(result, model=model)


def _save(model: Any, save_path: str | os.PathLike[str]) -> Path:
    path = Path(save_path)
    if path.suffix != ".keras":
        raise TrainError(f"{path}: a trained model is saved as a .keras file; name it e.g. model.keras")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def _train(graph: Graph, dataset: Dataset, *, budget: TrainBudget, seed: int, arch_id: str | None,
           key: str) -> tuple[TrainResult, Any]:
    from tinynas.space.keras_builder import build_keras_model

    start = time.perf_counter()
    model = build_keras_model(graph, seed=seed)
    result = _fit(model, tuple(graph.input_shape[1:]), dataset, budget=budget, seed=seed, arch_id=arch_id,
                  key=key, label=arch_id or graph.name, start=start)
    return result, model


def _fit(model: Any, model_shape: tuple[int, ...], dataset: Dataset, *, budget: TrainBudget, seed: int,
         arch_id: str | None, key: str, label: str, start: float) -> TrainResult:
    fp, name = dataset.fingerprint, dataset.name
    x_train = fit_inputs(dataset.x_train, model_shape, dataset=name, fingerprint=fp, split="train")
    y_train = dataset.y_train
    if budget.max_train_samples is not None and budget.max_train_samples < len(y_train):
        idx = stratified_subset(y_train, budget.max_train_samples, seed=seed)
        x_train, y_train = x_train[idx], y_train[idx]
    x_val = fit_inputs(dataset.x_val, model_shape, dataset=name, fingerprint=fp, split="val")
    y_val = dataset.y_val

    loop = KerasTrainLoop(model, num_classes=dataset.num_classes, config=LoopConfig(
        epochs=budget.epochs, batch_size=budget.batch_size, learning_rate=budget.learning_rate,
        weight_decay=budget.weight_decay, label_smoothing=budget.label_smoothing,
        patience=budget.early_stopping_patience, bn_momentum=BN_TRAIN_MOMENTUM,
        recalibration_samples=BN_RECALIBRATION_SAMPLES, seed=seed, epoch_passes=budget.epoch_passes))
    try:
        history, best = loop.fit(x_train, y_train, x_val, y_val)
        loop.recalibrate_batch_norm(x_train, np.random.default_rng(seed + 1))
        if loop.batch_norms:
            val_loss, val_acc = loop.evaluate(x_val, y_val)
        else:
            val_loss, val_acc = history["val_loss"][best], history["val_accuracy"][best]
        test_loss = test_acc = None
        if budget.evaluate_test and len(dataset.y_test):
            x_test = fit_inputs(dataset.x_test, model_shape, dataset=name, fingerprint=fp, split="test")
            test_loss, test_acc = loop.evaluate(x_test, dataset.y_test)
    finally:
        loop.restore_layers()
    epochs_run = len(history["loss"])
    train_acc = history["accuracy"][best]
    seconds = time.perf_counter() - start
    log.info("trained %s on %s: val acc %.3f, %d epochs, %.1f s", label, name, val_acc, epochs_run, seconds)
    result = TrainResult(
        val_accuracy=float(val_acc), val_loss=float(val_loss), train_accuracy=float(train_acc),
        test_accuracy=test_acc, test_loss=test_loss, train_seconds=float(seconds), epochs_run=epochs_run,
        train_samples=int(len(y_train)), params=int(model.count_params()), history=history, budget=budget,
        seed=int(seed), arch_id=arch_id, dataset_fingerprint=fp, key=key,
    )
    return result
