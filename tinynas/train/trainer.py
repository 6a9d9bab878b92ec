"""Train one Graph on one Dataset under a ``TrainBudget``: the evaluator every search strategy calls.

Builds the Keras model from the Graph, trains with Adam and cosine decay on a
stratified subset, keeps the best epoch by validation loss when early stopping
is on, and caches the metrics by (arch, dataset fingerprint, budget, seed).
"""

from __future__ import annotations

import logging
import math
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

log = logging.getLogger(__name__)


BN_TRAIN_MOMENTUM = 0.9
BN_RECALIBRATION_SAMPLES = 1024


def _recalibrate_batch_norm(model: Any, batch_norms: list[Any], x: np.ndarray, *, seed: int) -> None:
    """Reset BatchNorm moving statistics to the exact average over training batches.

    Once-for-All (Cai et al. 2020, sec. 3.3) recalibrates BN statistics of a
    network before judging it; for short low-fidelity runs it lifts the
    validation accuracy to what the trained weights deserve. Running momentum
    ``i / (i + 1)`` on batch ``i`` makes the moving mean the plain average.
    """
    if not batch_norms or not len(x):
        return
    rng = np.random.default_rng(seed)
    sample = x[rng.permutation(len(x))[:BN_RECALIBRATION_SAMPLES]]
    for i, startx in enumerate(range(0, len(sample), 256)):
        for bn in batch_norms:
            bn.momentum = i / (i + 1)
        model(sample[startx:startx + 256], training=True)


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
        path = Path(save_path)
        if path.suffix != ".keras":
            raise TrainError(f"{path}: a trained model is saved as a .keras file; name it e.g. model.keras")
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(path)
        result = _with(result, weights_path=str(path))
    if cache is not None:
        cache.put(key, result)
    return _with(result, model=model) if return_model else result


def _with(result: TrainResult, **changes: Any) -> TrainResult:
    from dataclasses import replace

    return replace(result, **changes)


def _train(graph: Graph, dataset: Dataset, *, budget: TrainBudget, seed: int, arch_id: str | None,
           key: str) -> tuple[TrainResult, Any]:
    import keras

    from tinynas.space.keras_builder import build_keras_model

    model_shape = tuple(graph.input_shape[1:])
    fp, name = dataset.fingerprint, dataset.name
    x_train = fit_inputs(dataset.x_train, model_shape, dataset=name, fingerprint=fp, split="train")
    y_train = dataset.y_train
    if budget.max_train_samples is not None and budget.max_train_samples < len(y_train):
        idx = stratified_subset(y_train, budget.max_train_samples, seed=seed)
        x_train, y_train = x_train[idx], y_train[idx]
    x_val = fit_inputs(dataset.x_val, model_shape, dataset=name, fingerprint=fp, split="val")
    y_val = dataset.y_val

    start = time.perf_counter()
    model = build_keras_model(graph, seed=seed)  # also seeds Keras' shuffling and dropout
    batch_norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved_momentum = [bn.momentum for bn in batch_norms]
    for bn in batch_norms:
        # Keras' default 0.99 lags far behind the weights in a few hundred steps, so the
        # inference-mode accuracy of a 2-epoch candidate would be near chance.
        bn.momentum = BN_TRAIN_MOMENTUM
    steps_per_epoch = max(1, math.ceil(len(y_train) / budget.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=budget.learning_rate, decay_steps=steps_per_epoch * budget.epochs, alpha=0.0
    )
    if budget.weight_decay > 0:
        optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=budget.weight_decay)
    else:
        optimizer = keras.optimizers.Adam(learning_rate=schedule)
    if budget.label_smoothing > 0:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=budget.label_smoothing)
        k = dataset.num_classes
        y_fit, y_val_fit = np.eye(k, dtype=np.float32)[y_train], np.eye(k, dtype=np.float32)[y_val]
        metric = keras.metrics.CategoricalAccuracy(name="accuracy")
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        y_fit, y_val_fit = y_train, y_val
        metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    # One compiled step runs a whole epoch of tiny batches: Python overhead, not maths,
    # dominates low-fidelity training of microcontroller-sized models.
    model.compile(optimizer=optimizer, loss=loss, metrics=[metric], steps_per_execution=steps_per_epoch,
                  jit_compile=False)
    callbacks = []
    if budget.early_stopping_patience is not None:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=budget.early_stopping_patience, restore_best_weights=True))
    try:
        hist = model.fit(x_train, y_fit, batch_size=budget.batch_size, epochs=budget.epochs,
                         validation_data=(x_val, y_val_fit), callbacks=callbacks, shuffle=True, verbose=0)
    except (ValueError, TypeError) as exc:  # Keras reports shape problems this way
        raise TrainError(f"training {arch_id or graph.name} on {name!r} failed: {exc}") from None
    _recalibrate_batch_norm(model, batch_norms, x_train, seed=seed)
    for bn, momentum in zip(batch_norms, saved_momentum):
        bn.momentum = momentum
    history = {k: [float(v) for v in vs] for k, vs in hist.history.items() if k in
               ("loss", "accuracy", "val_loss", "val_accuracy")}
    epochs_run = len(history.get("loss", []))
    if budget.early_stopping_patience is not None and callbacks[0].best_epoch is not None:
        best = int(callbacks[0].best_epoch)
    else:
        best = epochs_run - 1
    if batch_norms:
        val_loss, val_acc = (float(v) for v in model.evaluate(x_val, y_val_fit, batch_size=256, verbose=0))
    else:
        val_loss, val_acc = history["val_loss"][best], history["val_accuracy"][best]
    train_acc = history["accuracy"][best]
    test_loss = test_acc = None
    if budget.evaluate_test and len(dataset.y_test):
        x_test = fit_inputs(dataset.x_test, model_shape, dataset=name, fingerprint=fp, split="test")
        y_test = dataset.y_test
        if budget.label_smoothing > 0:
            y_test = np.eye(dataset.num_classes, dtype=np.float32)[y_test]
        test_loss, test_acc = (float(v) for v in model.evaluate(x_test, y_test, batch_size=256, verbose=0))
    seconds = time.perf_counter() - start
    log.info("trained %s on %s: val acc %.3f, %d epochs, %.1f s", arch_id or graph.name, name, val_acc, epochs_run, seconds)
    result = TrainResult(
        val_accuracy=float(val_acc), val_loss=float(val_loss), train_accuracy=float(train_acc),
        test_accuracy=test_acc, test_loss=test_loss, train_seconds=float(seconds), epochs_run=epochs_run,
        train_samples=int(len(y_train)), params=int(model.count_params()), history=history, budget=budget,
        seed=int(seed), arch_id=arch_id, dataset_fingerprint=fp, key=key,
    )
    return result, model
