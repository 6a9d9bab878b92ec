"""Full-integer post-training quantization: a float Keras model becomes int8 ``.tflite`` bytes.

The deploy stage and the cost-model benchmark call it; its output is what the
TFLite Micro interpreter runs and what the C arrays embed. Recipe: REFERENCE.md
section 2 (TFLiteConverter, TFLITE_BUILTINS_INT8, int8 input and output).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import warnings
from typing import Any, Iterator

import numpy as np

from tinynas.errors import DeployError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _quiet_fds() -> Iterator[None]:
    """Silence the converter's chatter: its C++ side writes straight to file descriptors 1 and 2,
    and Keras's export prints ("Saved artifact at ...") to ``sys.stdout``, which is not fd 1 when
    a caller (click's test runner, a notebook) has replaced it, and would corrupt ``--json`` output.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    printed = io.StringIO()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            sink.seek(0)
            tail = (printed.getvalue() + sink.read().decode(errors="replace"))[-4000:]
            if tail.strip():
                log.debug("converter output (tail):\n%s", tail)


def _batch_one(keras: Any, model: Any, sample_shape: tuple[int, ...]) -> Any:
    """The model called on a batch-1 input, so every shape in the converted graph is static.

    With a free batch dimension the converter turns Keras Flatten/Reshape into
    SHAPE + STRIDED_SLICE + PACK + RESHAPE; with batch 1 (what a microcontroller
    runs) it emits one RESHAPE, as the Graph IR and TFLM's examples have it.
    """
    if len(getattr(model, "inputs", None) or []) != 1:
        return model
    inp = keras.Input(batch_shape=(1, *(int(d) for d in sample_shape)), name="input")
    return keras.Model(inp, model(inp), name=getattr(model, "name", "model"))


def _with_unroll(config: Any) -> tuple[Any, bool]:
    """``config`` (a layer's, with nested layers' configs inside) with every ``unroll`` set to True."""
    if isinstance(config, dict):
        out, changed = {}, config.get("unroll") is False
        for key, value in config.items():
            out[key], inner = (True, False) if key == "unroll" else _with_unroll(value)
            changed = changed or inner
        return out, changed
    if isinstance(config, list):
        pairs = [_with_unroll(v) for v in config]
        return [v for v, _ in pairs], any(c for _, c in pairs)
    return config, False


def _unroll_recurrent(keras: Any, model: Any) -> Any:
    """``model`` with its recurrent layers (LSTM, GRU, SimpleRNN, Bidirectional) unrolled, same weights.

    Why: calibrating a recurrent layer's loop crashes TensorFlow 2.21's converter with a
    segmentation fault, which no ``except`` catches: the process dies with nothing said
    and nothing written. Unrolled over the fixed number of time steps a microcontroller
    runs, each step is FULLY_CONNECTED, ADD, MUL, LOGISTIC and TANH, all int8 kernels of
    TFLite Micro. The file grows with the steps, and the cost checks see that.
    """
    replaced: list[tuple[Any, Any]] = []

    def clone(layer: Any) -> Any:
        config, changed = _with_unroll(_config(layer))
        if not changed:
            return layer
        new = layer.__class__.from_config(config)
        replaced.append((layer, new))
        return new

    unrolled = recurrent_layers(model)
    if not unrolled:
        return model
    try:
        clone_of_model = keras.models.clone_model(model, clone_function=clone, recursive=True)
    except Exception as exc:
        raise DeployError(
            f"the model has recurrent layers, which int8 conversion needs unrolled, and it cannot be rebuilt "
            f"with them unrolled ({type(exc).__name__}: {str(exc)[:200]}); build it as a Sequential or "
            "functional model, or create its LSTM/GRU/SimpleRNN layers with unroll=True"
        ) from None
    for old, new in replaced:
        new.set_weights(old.get_weights())
    log.info("unrolled %s for int8 conversion: the .tflite holds each time step's ops",
             ", ".join(f"{name} ({steps or '?'} time steps)" for name, steps in unrolled))
    return clone_of_model


def recurrent_layers(model: Any) -> list[tuple[str, int | None]]:
    """The recurrent layers int8 conversion unrolls (``_unroll_recurrent``): each one's class name and the
    time steps it runs (None when its input has no fixed length)."""
    found = []
    for layer in _all_layers(model):
        if hasattr(layer, "layers") or not _with_unroll(_config(layer))[1]:
            continue  # a nested model is not a loop itself; its layers come on their own
        try:
            steps = layer.input.shape[1]
        except Exception:  # a layer called more than once, or never: no single input
            steps = None
        found.append((type(layer).__name__, None if steps is None else int(steps)))
    return found


def unrolled_hint(unrolled: list[tuple[str, int | None]]) -> str:
    """Why an unrolled recurrent model needs so much flash and arena, and what shrinks it ("" when none)."""
    if not unrolled:
        return ""
    names = ", ".join(f"{name} over {steps} time steps" if steps else name for name, steps in unrolled)
    return (f"The model's recurrent layers run unrolled ({names}): the int8 model holds every step's ops and "
            "its own copy of the weights, and TFLite Micro keeps bookkeeping for each op in the arena, so flash "
            "and arena grow with the sequence length. Fewer time steps (a shorter window, or a strided Conv1D "
            "before the recurrent layer) shrink both; a convolutional model of the same size needs far less "
            "(`tinynas run --space dscnn` searches one).")


def _config(layer: Any) -> dict[str, Any]:
    """The layer's config; {} for a custom layer that has none (it holds no recurrent loop Keras knows)."""
    try:
        return layer.get_config()
    except Exception:  # NotImplementedError, or a TypeError from an argument Keras cannot serialize
        return {}


def _all_layers(model: Any) -> Iterator[Any]:
    for layer in getattr(model, "layers", ()):
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


@contextlib.contextmanager
def keras_converter(model: Any, *, sample_shape: tuple[int, ...]) -> Iterator[Any]:
    """A ``TFLiteConverter`` for ``model`` called on a batch-1 input in inference mode.

    Why not ``TFLiteConverter.from_keras_model``: for a Keras 3 model it exports
    through ``keras.export.ExportArchive`` and a SavedModel on disk, which the
    converter then loads back twice. Converting the traced inference call itself
    (``from_concrete_functions``) skips the export, the save and both loads: the
    int8 conversion of a small mcunet net took 4.8 s through a SavedModel of the
    call alone and 2.8 s this way; ``scripts/bench_convert.py`` times ten archs
    against ``from_keras_model`` (41.2 -> 19.4 s). The file holds the network
    ``from_keras_model`` writes (``flatbuffer.network_of``: ops, tensors,
    quantization, weights, signature); only the output tensor's name and the
    conversion metadata's "original model type" differ, and deploy strips the
    names the board never reads. The ``tf.Module`` holds the variables while
    ``convert()`` freezes them.
    """
    from tinynas.tf_runtime import quiet_import

    quiet_import()
    import keras
    import tensorflow as tf

    one = _batch_one(keras, model, sample_shape)
    module = tf.Module()
    module.model_variables = [v.value for v in one.variables]
    specs = [tf.TensorSpec(x.shape, x.dtype, name=x.name) for x in one.inputs]
    serve = tf.function(lambda *xs: one(xs[0] if len(xs) == 1 else list(xs), training=False), input_signature=specs)
    yield tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], module)


@contextlib.contextmanager
def _calibrated_converter(tf: Any, model: Any, rep: np.ndarray) -> Iterator[Any]:
    """``keras_converter`` set for full-integer int8 PTQ, its ranges calibrated on ``rep`` one sample at a
    time, with TensorFlow's output and UserWarnings silenced ("Statistics for quantized inputs were expected":
    expected with int8 inputs; tf.lite.Interpreter's deprecation, which the QuantizationDebugger uses)."""

    def dataset() -> Iterator[list[np.ndarray]]:
        for i in range(rep.shape[0]):
            yield [rep[i : i + 1]]

    with _quiet_fds(), warnings.catch_warnings(), keras_converter(model, sample_shape=rep.shape[1:]) as converter:
        warnings.simplefilter("ignore", UserWarning)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        yield converter


def quantize_int8(model: Any, *, representative: np.ndarray, num_samples: int = 200) -> bytes:
    """The int8 ``.tflite`` flatbuffer of a float ``keras.Model`` (full-integer PTQ, int8 in/out).

    ``representative`` holds input samples (batch first, the model's input shape
    after it); the first ``num_samples`` of them calibrate the activation ranges,
    fed one at a time as ``[x[i:i+1]]``. The same model and data give the same
    bytes. Raises DeployError when the data do not match the model or the
    converter cannot express an op in int8.
    """
    rep = np.asarray(representative)
    if rep.ndim < 2 or rep.shape[0] < 1:
        raise DeployError(f"representative data must be a batch of samples, got shape {rep.shape}")
    want = tuple(model.input_shape[1:]) if hasattr(model, "input_shape") else None
    if want is not None and None not in want and tuple(rep.shape[1:]) != tuple(int(d) for d in want):
        raise DeployError(
            f"representative data samples have shape {tuple(rep.shape[1:])}, the model expects {want}; "
            "resize the data to the model's input"
        )
    if num_samples < 1:
        raise DeployError(f"num_samples must be positive, got {num_samples}")
    rep = rep[:num_samples].astype(np.float32)

    from tinynas.tf_runtime import quiet_import

    quiet_import()
    import keras
    import tensorflow as tf

    model = _unroll_recurrent(keras, model)
    try:
        with _calibrated_converter(tf, model, rep) as converter:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
            data = converter.convert()
    except Exception as exc:
        msg = str(exc).strip().splitlines()
        detail = msg[-1] if msg else type(exc).__name__
        raise DeployError(
            f"int8 quantization failed: {detail}. Every op must have an int8 TFLite builtin; "
            "check the model's layers and that the representative data match its input"
        ) from exc
    return bytes(data)


#: An op's int8 output error (RMS, against the same op in float fed with the same inputs) in steps of its
#: int8 scale, above which deploy names it: rounding alone gives 1/sqrt(12), about 0.29 steps, and the ops of
#: models that lose nothing in int8 stay under about 1 (a 1D CNN, a digits CNN, a Dense(1) head measured).
ERROR_STEPS_FLAG = 2.0


def int8_error_ops(model: Any, *, representative: np.ndarray, num_samples: int = 200,
                   top: int = 3) -> list[dict[str, Any]]:
    """The ops whose int8 outputs stray most from float, for a model that loses accuracy in int8.

    TensorFlow's QuantizationDebugger runs the int8 model and, op by op, the float computation fed with the
    same int8 inputs, on the first ``num_samples`` of ``representative`` (which also calibrate it). An op
    whose error is many int8 steps has a value range that one int8 scale cannot hold (LayerNormalization's
    products, a long tail of activations): the op to change, where QAT alone did not help. Up to ``top``
    ops over ERROR_STEPS_FLAG, worst first: ``op`` (the TFLite builtin), ``tensor`` (its output's name,
    which carries the Keras layer's name scope, without the model's) and ``error_steps``.
    """
    import csv
    import re

    from tinynas.tf_runtime import quiet_import

    quiet_import()
    import keras
    import tensorflow as tf

    rep = np.asarray(representative)[:num_samples].astype(np.float32)
    model = _unroll_recurrent(keras, model)
    stats = io.StringIO()
    with _calibrated_converter(tf, model, rep) as converter:
        debugger = tf.lite.experimental.QuantizationDebugger(converter=converter,
                                                             debug_dataset=converter.representative_dataset)
        debugger.run()
        debugger.layer_statistics_dump(stats)
    scope = re.compile(rf"^(?:{re.escape(model.name)}(?:_\d+)?/)+")
    found = []
    for row in csv.DictReader(io.StringIO(stats.getvalue())):
        scale, mse = float(row["scale"]), float(row["mean_squared_error"])
        steps = float(np.sqrt(mse) / scale) if scale > 0 else 0.0
        if steps > ERROR_STEPS_FLAG:
            found.append({"op": row["op_name"], "tensor": scope.sub("", row["tensor_name"].split(";")[0]),
                          "error_steps": round(steps, 1)})
    return sorted(found, key=lambda op: -op["error_steps"])[:top]


def _trained_like_statistics(model: Any, rng: np.random.Generator) -> None:
    """Nonzero biases and BatchNorm statistics, as training leaves them."""
    for layer in model.layers:
        cls = layer.__class__.__name__
        weights = layer.get_weights()
        if cls == "BatchNormalization" and len(weights) == 4:
            g, b, mu, var = weights
            layer.set_weights([rng.uniform(0.5, 1.5, g.shape).astype("float32"),
                               rng.normal(0, 0.1, b.shape).astype("float32"),
                               rng.normal(0, 0.1, mu.shape).astype("float32"),
                               rng.uniform(0.5, 1.5, var.shape).astype("float32")])
        elif cls in ("Conv2D", "DepthwiseConv2D", "Dense") and len(weights) == 2:
            layer.set_weights([weights[0], rng.normal(0, 0.1, weights[1].shape).astype("float32")])


def quantize_untrained(graph: Any, *, seed: int, num_samples: int = 16) -> bytes:
    """The int8 ``.tflite`` of ``graph`` with random weights, as the cost model's ground truth.

    An untrained Keras model has all-zero biases, which the converter drops (and
    it then writes shorter tensor names); the cost model costs trained models, so
    biases and BatchNorm statistics get nonzero values first. The representative
    set is Gaussian noise: only the file's layout matters here, not its accuracy.
    """
    from tinynas.space.keras_builder import build_keras_model

    model = build_keras_model(graph, seed=seed)
    _trained_like_statistics(model, np.random.default_rng(seed))
    rep = np.random.default_rng(seed).normal(size=(num_samples, *graph.input_shape[1:])).astype("float32")
    return quantize_int8(model, representative=rep, num_samples=num_samples)
