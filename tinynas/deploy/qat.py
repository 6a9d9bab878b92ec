"""Quantization-aware fine-tuning for Keras 3, where tensorflow-model-optimization does not work.

Deploy runs it when int8 post-training quantization loses more than a point of
accuracy (or, for attention, the validation split is too small to tell): the float model is
fine-tuned with simulated int8 rounding towards its own float predictions, then
the normal PTQ (``quantize.quantize_int8``) converts the fine-tuned float weights.
Scheme: Jacob et al. 2018 ("Quantization and Training of Neural Networks for
Efficient Integer-Arithmetic-Only Inference", sec. 3): weights fake-quantized
per output channel, symmetric, as TFLite's int8 spec does; activations
fake-quantized (asymmetric, 8 bit) at the tensors TFLite quantizes, with ranges
from an exponential moving average; gradients pass straight through rounding
(Bengio et al. 2013, straight-through estimator).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinynas.errors import DeployError
from tinynas.train.budget import MIN_EPOCH_SAMPLES, passes_to_draw

log = logging.getLogger(__name__)

# Layers the TFLite converter folds into the producing CONV_2D / DEPTHWISE_CONV_2D /
# FULLY_CONNECTED / ADD: their input is never an int8 tensor, so it gets no fake-quant.
_FUSED_FOLLOWERS = ("BatchNormalization", "ReLU")
# Layers whose output TFLite quantizes with a fixed or inherited range (or that are no op);
# TRANSPOSE and STRIDED_SLICE (tinyformer's head split, class-token pick) move int8 values as they are.
_NO_OUTPUT_QUANT = ("Softmax", "InputLayer", "Dropout", "Transpose", "TakeToken")
# tinyformer's own layers that QAT simulates (keras_layers); the rest of that module (LayerNorm
# written out, gcn's fixed propagation) is refused by name.
_SIMULATED_CUSTOM = ("BatchMatMul", "Transpose", "Mean", "ClassToken", "TakeToken", "AddConstant")
_WEIGHTED = ("Conv2D", "DepthwiseConv2D", "Dense")


@dataclass(frozen=True)
class QATSettings:
    """Fine-tuning budget: a few epochs at a low learning rate on the training split.

    20 epochs distilling the float model. At 1e-3 fine-tuning left the trained solution and int8
    fell up to 12 points (issue 14); 1e-4 was chosen there for epochs of one pass over 30-50
    series (20-40 steps). Epochs now draw ``min_epoch_samples`` (640 steps on GunPoint), and at
    that length 3e-5 did best: on 24 tinyformers trained on GunPoint and BasicMotions, mean int8
    test accuracy 91.40 % against 91.04 % at 1e-4, float 91.28 %, post-training quantization
    90.66 % (scripts/bench_qat_small.py); on the digits model whose outlier weights cost PTQ 10
    points, both rates recover the same 95.5 % at 20 epochs.
    """

    epochs: int = 20
    learning_rate: float = 3e-5
    batch_size: int = 32
    ema_momentum: float = 0.99
    calibration_samples: int = 200
    seed: int = 0
    #: Weight of the float model's own predictions in the fine-tuning target (Hinton et al. 2015's
    #: distillation, teacher = the model before QAT); the rest is the labels. Deploy's question is
    #: "does int8 behave like float", and matching float's outputs asks it directly; labels alone let
    #: a model that fits its 30-50 training series drift to another solution (issue 14: one
    #: BasicMotions model went from 92.5 to 90.0 % int8 with labels only).
    distill: float = 1.0
    #: The fewest samples one epoch draws: a smaller training set is passed over several times per
    #: epoch, as training does (``TrainBudget.on_train_set``). 20 single passes over GunPoint's 42
    #: training series were 40 steps, too few to adapt to int8 rounding: on the 24 tinyformers above,
    #: QAT that way was worse than post-training quantization alone (90.58 %).
    min_epoch_samples: int = MIN_EPOCH_SAMPLES

    def to_json(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "learning_rate": self.learning_rate, "batch_size": self.batch_size,
                "ema_momentum": self.ema_momentum, "calibration_samples": self.calibration_samples,
                "seed": self.seed, "distill": self.distill, "min_epoch_samples": self.min_epoch_samples}

    def epoch_passes(self, train_samples: int) -> int:
        """How many times one fine-tuning epoch passes over a training set of ``train_samples``."""
        return passes_to_draw(self.min_epoch_samples, pass_samples=train_samples)


def _fake_quant_layers() -> tuple[type, type]:
    """The two Keras layers of the scheme, defined on first use so importing this module stays light."""
    import keras
    import tensorflow as tf

    class ActivationFakeQuant(keras.layers.Layer):
        """8-bit asymmetric fake-quant of a tensor, range = EMA of observed batch min/max (0 included).

        ``calibrating``: pass the tensor through and record the plain min/max, like
        PTQ's calibration, so fine-tuning starts from the ranges PTQ would use.
        """

        def __init__(self, *, momentum: float = 0.99, **kw: Any) -> None:
            super().__init__(**kw)
            self.momentum = float(momentum)
            self.calibrating = False

        def build(self, input_shape: Any) -> None:
            self.range_min = self.add_weight(name="range_min", shape=(), initializer="zeros", trainable=False)
            self.range_max = self.add_weight(name="range_max", shape=(), initializer="zeros", trainable=False)
            self.seen = self.add_weight(name="seen", shape=(), initializer="zeros", trainable=False)

        def call(self, x: Any, training: bool | None = None) -> Any:
            # The zero point must be representable, so every range includes 0 (TFLite does the same).
            bmin = tf.minimum(tf.reduce_min(x), 0.0)
            bmax = tf.maximum(tf.reduce_max(x), 0.0)
            if self.calibrating:
                first = tf.equal(self.seen, 0.0)
                self.range_min.assign(tf.where(first, bmin, tf.minimum(self.range_min, bmin)))
                self.range_max.assign(tf.where(first, bmax, tf.maximum(self.range_max, bmax)))
                self.seen.assign_add(1.0)
                return x
            if training:
                m = self.momentum
                self.range_min.assign(m * self.range_min + (1.0 - m) * bmin)
                self.range_max.assign(m * self.range_max + (1.0 - m) * bmax)
            lo = tf.minimum(self.range_min, 0.0)
            hi = tf.maximum(self.range_max, lo + 1e-6)
            # fake_quant_with_min_max_vars nudges the range so 0 is exact and passes gradients
            # straight through inside the range.
            return tf.quantization.fake_quant_with_min_max_vars(x, lo, hi, num_bits=8, narrow_range=False)

    class WeightFakeQuant(keras.layers.Layer):
        """Runs a Conv2D / DepthwiseConv2D / Dense with its kernel fake-quantized to int8.

        Symmetric, narrow range [-127, 127], one scale per output channel (the
        TFLite int8 spec); the wrapped layer keeps its float variables, so the
        fine-tuned weights stay in the original model. Per-channel symmetric
        rounding commutes with a per-channel BatchNormalization scale after the
        layer, so quantizing the unfolded kernel equals quantizing the folded one.
        A BatchNormalization in front of a Dense (``input_scale``: its per-input
        scale, gamma / sqrt(var + eps)) scales the kernel's rows instead, which
        does not commute: the folded kernel is quantized and unfolded again.
        """

        def __init__(self, inner: Any, *, input_scale: Any = None, **kw: Any) -> None:
            super().__init__(name=inner.name + "_qat", **kw)
            self.inner = inner
            self.input_scale = input_scale  # a function, so Keras does not track the norm layer twice
            kind = type(inner).__name__
            # Axes that share one scale: all but the output-channel axis.
            self.kind = kind
            if kind == "Dense":
                self.reduce_axes = (0,)
            elif kind == "DepthwiseConv2D":
                self.reduce_axes = (0, 1)  # kernel (kh, kw, in, mult): channel = (in, mult)
            else:
                self.reduce_axes = (0, 1, 2)  # Conv2D kernel (kh, kw, in, out)

        def _quantized_kernel(self) -> Any:
            w = self.inner.kernel
            rows = None
            if self.input_scale is not None:
                rows = tf.stop_gradient(self.input_scale())[:, None]
                rows = tf.where(tf.abs(rows) > 1e-12, rows, tf.ones_like(rows))
            folded = w if rows is None else w * rows
            scale = tf.stop_gradient(tf.reduce_max(tf.abs(folded), axis=self.reduce_axes, keepdims=True) / 127.0)
            scale = tf.maximum(scale, 1e-12)
            q = tf.clip_by_value(tf.round(folded / scale), -127.0, 127.0) * scale
            if rows is not None:
                q = q / rows
            return w + tf.stop_gradient(q - w)  # straight-through estimator

        def call(self, x: Any) -> Any:
            layer = self.inner
            k = self._quantized_kernel()
            if self.kind == "Dense":
                y = keras.ops.matmul(x, k)
            elif self.kind == "DepthwiseConv2D":
                y = keras.ops.depthwise_conv(x, k, strides=layer.strides, padding=layer.padding,
                                             dilation_rate=layer.dilation_rate, data_format=layer.data_format)
            else:
                y = layer.convolution_op(x, k)
            if layer.use_bias:
                y = y + layer.bias
            return layer.activation(y) if layer.activation is not None else y

    return ActivationFakeQuant, WeightFakeQuant


def _consumers(model: Any) -> dict[str, list[str]]:
    """Class names of the layers that consume each layer's output, from the functional graph."""
    out: dict[str, list[str]] = {}
    for layer in model.layers:
        names = []
        for node in getattr(layer, "_outbound_nodes", []):
            op = getattr(node, "operation", None)
            if op is not None:
                names.append(type(op).__name__)
        out[layer.name] = names
    return out


def _fine_tuning_target(model: Any, *, x: np.ndarray, y: np.ndarray, distill: float, batch_size: int) -> np.ndarray:
    """One-hot labels mixed with the float model's predicted probabilities, ``distill`` of the latter."""
    if not 0.0 <= distill <= 1.0:
        raise DeployError(f"QAT distill weight must be in [0, 1], got {distill}")
    units = int(model.output_shape[-1])
    if int(y.max()) >= units or int(y.min()) < 0:
        raise DeployError(f"QAT labels must be class indices in [0, {units}), got {int(y.min())}..{int(y.max())}")
    target = np.eye(units, dtype=np.float32)[y.astype(np.int64)]
    if distill == 0.0:
        return target
    out = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)
    if not _output_is_probability(model):
        out = np.exp(out - out.max(axis=-1, keepdims=True))
        out /= out.sum(axis=-1, keepdims=True)
    return (1.0 - distill) * target + distill * out


def _output_is_probability(model: Any) -> bool:
    last = model.layers[-1]
    if type(last).__name__ == "Softmax":
        return True
    act = getattr(last, "activation", None)
    return getattr(act, "__name__", "") == "softmax"


def _input_norms(model: Any) -> dict[str, Any]:
    """Dense layer name -> the BatchNormalization in front of it that the converter folds into its
    weights (tinyformer's pre-norms): one whose input no conv or Dense produced (that one would
    fold backwards, into its producer)."""
    def producer(tensor: Any) -> Any:
        history = getattr(tensor, "_keras_history", None)
        return history[0] if history is not None else None

    out: dict[str, Any] = {}
    for layer in model.layers:
        if type(layer).__name__ != "Dense":
            continue
        for node in getattr(layer, "_inbound_nodes", []):
            for tensor in getattr(node, "input_tensors", []):
                norm = producer(tensor)
                if type(norm).__name__ != "BatchNormalization":
                    continue
                before = [type(producer(t)).__name__ for n in norm._inbound_nodes for t in n.input_tensors]
                if not any(kind in _WEIGHTED for kind in before):
                    out[layer.name] = norm
    return out


def _norm_scale(norm: Any) -> Any:
    """gamma / sqrt(moving variance + epsilon) of a BatchNormalization, read when called."""
    import keras

    def scale() -> Any:
        inv = keras.ops.rsqrt(norm.moving_variance + norm.epsilon)
        return inv * norm.gamma if norm.gamma is not None else inv

    return scale


def _as_functional(keras: Any, model: Any) -> Any:
    """A Sequential model as the functional model of the same layers (shared, not copied).

    Why: rebuilding with fake quantizers goes through ``clone_model``'s ``call_function``,
    which Keras refuses for Sequential models, and a Sequential model is what most users
    write.
    """
    if not isinstance(model, keras.Sequential):
        return model
    inp = keras.Input(shape=model.input_shape[1:], dtype=model.inputs[0].dtype)
    x = inp
    for layer in model.layers:
        x = layer(x)
    return keras.Model(inp, x, name=model.name)


def build_qat_model(model: Any, *, momentum: float = 0.99) -> tuple[Any, list[Any]]:
    """A model that shares ``model``'s variables and simulates int8 inference; plus its activation quantizers.

    Functional (or Sequential) Keras models of Conv2D, DepthwiseConv2D, Dense,
    shape/pooling/activation layers and tinyformer's attention layers are
    supported; anything else raises DeployError naming the layer.
    """
    import keras

    model = _as_functional(keras, model)
    ActivationFakeQuant, WeightFakeQuant = _fake_quant_layers()
    consumers = _consumers(model)
    input_norms = _input_norms(model)
    folded_norms = {id(norm) for norm in input_norms.values()}
    fqs: list[Any] = []
    input_fq: dict[int, Any] = {}
    wrapped_to_original: dict[str, str] = {}

    def clone_function(layer: Any) -> Any:
        kind = type(layer).__name__
        if type(layer).__module__ == "tinynas.space.keras_layers" and kind not in _SIMULATED_CUSTOM:
            # LayerNorm written out and gcn's fixed propagation: where TFLite quantizes inside these
            # layers, and what it folds into the FULLY_CONNECTED after them, is not modelled
            raise DeployError(
                f"QAT does not model layer {layer.name} ({kind}, a LayerNorm or graph op) yet; "
                "deploy this model with post-training quantization (without --qat)"
            )
        if kind in _WEIGHTED:
            if kind == "Conv2D" and getattr(layer, "groups", 1) != 1:
                raise DeployError(f"QAT does not support grouped Conv2D (layer {layer.name})")
            norm = input_norms.get(layer.name)
            wrapper = WeightFakeQuant(layer, input_scale=_norm_scale(norm) if norm is not None else None)
            wrapped_to_original[wrapper.name] = layer.name
            return wrapper
        if kind == "BatchNormalization":
            # Frozen: inference-mode statistics, as the converter folds them.
            layer.trainable = False
        return layer  # shared, not copied: fine-tuning updates the caller's variables

    def new_fq(name: str) -> Any:
        fq = ActivationFakeQuant(momentum=momentum, name=name)
        fqs.append(fq)
        return fq

    def call_function(layer: Any, *args: Any, **kwargs: Any) -> Any:
        args = tuple(_quantize_inputs(a) for a in args)
        out = layer(*args, **kwargs)
        name = wrapped_to_original.get(layer.name, layer.name)
        kind = type(layer.inner).__name__ if hasattr(layer, "inner") else type(layer).__name__
        followers = consumers.get(name, [])
        # a BatchNormalization folds backwards only into a conv or Dense (tinyformer's final norm after a
        # residual ADD is a MUL and an ADD of its own, reading the ADD's int8 output)
        fused = followers and all(f in _FUSED_FOLLOWERS for f in followers) and (
            kind in _WEIGHTED or "BatchNormalization" not in followers)
        if kind in _NO_OUTPUT_QUANT or fused:
            return out
        if id(layer) in folded_norms:  # folded into the Dense layers after it: no int8 tensor of its own
            return out
        return new_fq(f"{name}_act_fq")(out)

    def _quantize_inputs(a: Any) -> Any:
        if isinstance(a, (list, tuple)):
            return type(a)(_quantize_inputs(v) for v in a)
        history = getattr(a, "_keras_history", None)
        if history is not None and type(history[0]).__name__ == "InputLayer":
            if id(a) not in input_fq:
                input_fq[id(a)] = new_fq(f"input_fq_{len(input_fq)}")(a)
            return input_fq[id(a)]
        return a

    try:
        qat_model = keras.models.clone_model(model, clone_function=clone_function, call_function=call_function)
    except DeployError:
        raise
    except Exception as exc:
        raise DeployError(
            f"QAT cannot rebuild this model ({type(exc).__name__}: {exc}); it needs a functional Keras model "
            "of standard layers; deploy it without --qat"
        ) from exc
    return qat_model, fqs


def qat_finetune(
    model: Any,
    *,
    x_train: np.ndarray,
    y_train: np.ndarray,
    settings: QATSettings = QATSettings(),
) -> Any:
    """A float copy of ``model`` fine-tuned under simulated int8 inference; ``model`` is left unchanged.

    Feed the result to ``quantize_int8`` as usual. The activation ranges start
    from PTQ-style calibration on the first ``calibration_samples`` training
    samples, then follow an EMA while the weights adapt to int8 rounding.
    Raises DeployError for an unsupported model or mismatched data.
    """
    import keras

    x = np.asarray(x_train, dtype=np.float32)
    y = np.asarray(y_train).reshape(-1)
    want = tuple(model.input_shape[1:])
    if len(x.shape[1:]) != len(want) or any(d is not None and int(d) != n for d, n in zip(want, x.shape[1:])):
        raise DeployError(f"QAT data have samples of shape {x.shape[1:]}, the model expects {want}")
    if len(x) != len(y) or len(x) == 0:
        raise DeployError(f"QAT needs matching, non-empty inputs and labels, got {len(x)} and {len(y)}")

    keras.utils.set_random_seed(int(settings.seed))
    float_model = keras.models.clone_model(model)
    float_model.set_weights(model.get_weights())
    qat_model, fqs = build_qat_model(float_model, momentum=settings.ema_momentum)

    for fq in fqs:
        fq.calibrating = True
    calib = x[: settings.calibration_samples]
    for start in range(0, len(calib), settings.batch_size):
        qat_model(calib[start : start + settings.batch_size], training=False)
    for fq in fqs:
        fq.calibrating = False

    target = _fine_tuning_target(model, x=x, y=y, distill=settings.distill, batch_size=settings.batch_size)
    passes = settings.epoch_passes(len(x))
    if passes > 1:  # fit shuffles the copies together: each sample is drawn ``passes`` times an epoch
        x, target = np.concatenate([x] * passes), np.concatenate([target] * passes)
    # cross-entropy is linear in its target, so one soft target mixes label and teacher losses
    loss = keras.losses.CategoricalCrossentropy(from_logits=not _output_is_probability(model))
    qat_model.compile(optimizer=keras.optimizers.Adam(learning_rate=settings.learning_rate), loss=loss,
                      metrics=["categorical_accuracy"], jit_compile=False)
    history = qat_model.fit(x, target, epochs=settings.epochs, batch_size=settings.batch_size, shuffle=True,
                            verbose=0)
    for layer in float_model.layers:  # BatchNormalization was frozen only for fine-tuning
        if type(layer).__name__ == "BatchNormalization":
            layer.trainable = True
    log.info("QAT fine-tuning: %d epochs of %d pass(es), final loss %.4f, accuracy (simulated int8) %.4f",
             settings.epochs, passes, history.history["loss"][-1], history.history["categorical_accuracy"][-1])
    return float_model
