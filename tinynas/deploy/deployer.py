"""``deploy``: a trained model becomes a validated int8 build for one board, in one folder.

The last stage before flashing: quantize (PTQ, QAT when int8 loses accuracy),
validate in TFLite Micro against the board's budgets, then write the int8 model,
the C sources, a firmware project and ``metrics.json``. Used by ``tinynas deploy``
and by the pipeline's deploy stage.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from tinynas.deploy.codegen import FRONT_ENDS, arena_size_with_margin
from tinynas.deploy.interpreter import int8_accuracy
from tinynas.deploy.qat import QATSettings
from tinynas.deploy.validate import MAX_INT8_DROP, ValidationReport, budget_checks, does_not_fit_message
from tinynas.errors import DeployError, DoesNotFitError, ModelFileError
from tinynas.hardware.profile import HardwareProfile

if TYPE_CHECKING:
    from tinynas.deploy.tflite_interface import InterfaceChange

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
MODEL_FILE = "model_int8.tflite"
QAT_MODEL_FILE = "model_qat.keras"
#: Written into metrics.json so a later deploy recognises its own output folder.
TOOL_MARK = "tinynas deploy"

QATMode = Literal["auto"] | bool


@dataclass(frozen=True)
class DeployResult:
    """Where the deploy wrote its files and what it measured (the content of ``metrics.json``)."""

    out_dir: Path
    model_path: Path  # out_dir / model_int8.tflite
    metrics: dict[str, Any]
    files: tuple[str, ...]  # paths relative to out_dir

    @property
    def fits(self) -> bool:
        return bool(self.metrics["fits"])

    @property
    def validation(self) -> ValidationReport:
        return ValidationReport.from_json(self.metrics["validation"])

    def to_json(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "model_path": str(self.model_path), "files": list(self.files),
                "metrics": self.metrics}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "DeployResult":
        return cls(out_dir=Path(data["out_dir"]), model_path=Path(data["model_path"]),
                   metrics=dict(data["metrics"]), files=tuple(data["files"]))

    @classmethod
    def load(cls, out_dir: Path) -> "DeployResult":
        """Read back a finished deploy folder (its ``metrics.json``)."""
        out_dir = Path(out_dir)
        path = out_dir / METRICS_FILE
        try:
            metrics = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DeployError(f"{path}: not a finished deploy output ({exc}); run `tinynas deploy` again") from None
        primary = str(metrics.get("primary") or MODEL_FILE)  # mobile/gpu deploys name their main file
        return cls(out_dir=out_dir, model_path=out_dir / primary, metrics=metrics,
                   files=tuple(metrics.get("files", ())))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _previous_deploy(out_dir: Path) -> dict[str, Any] | None:
    """The metrics.json of an earlier deploy into ``out_dir``, or None."""
    try:
        previous = json.loads((out_dir / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return previous if isinstance(previous, dict) and previous.get("tool") == TOOL_MARK else None


def _check_out_dir(out_dir: Path, *, source_sha256: str, model_path: Path) -> None:
    """Refuse a file as ``--out``, a folder that holds a deploy of another model, and a deploy's own output
    model deployed into its folder again (it would be overwritten while it is the input).

    Other files in the folder are fine: they stay as they are (``outdir.install_files``
    refuses only a name clash), so a model folder can receive its own deploy.
    """
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise DeployError(f"--out {out_dir} exists and is not a folder; choose another --out or remove it")
    previous = _previous_deploy(out_dir)
    if previous is None:
        if (out_dir / METRICS_FILE).exists():
            raise DeployError(f"--out {out_dir} holds a {METRICS_FILE} that tinynas deploy did not write; "
                              "choose another --out")
        return
    if any((out_dir / str(rel)).resolve() == model_path.resolve() for rel in previous.get("files", ())):
        raise DeployError(f"{model_path} is a file of the deploy in --out {out_dir}: deploying it there would "
                          "overwrite the input model; choose another --out")
    if previous.get("source", {}).get("sha256") != source_sha256:
        raise DeployError(
            f"--out {out_dir} holds a deploy of another model ({previous.get('source', {}).get('path')}), "
            "not a deploy of this model; choose another --out or remove that deploy"
        )
    log.info("replacing the previous deploy of the same model in %s", out_dir)


@dataclass(frozen=True)
class _Source:
    """The model file deploy was given: its bytes, and the Keras model or the int8 flatbuffer to deploy."""

    kind: str  # "keras" or "tflite"
    file_bytes: bytes
    keras_model: Any = None
    tflite_bytes: bytes | None = None  # int8 in and out: a float or uint8 interface was removed (interface)
    interface: InterfaceChange | None = None


def _load_source(model_path: Path) -> _Source:
    """The Keras model, or the ``.tflite`` with an int8 interface; ModelFileError otherwise."""
    if (model_path / "saved_model.pb").is_file():
        raise ModelFileError(
            f"{model_path}: a TensorFlow SavedModel folder, which deploy cannot quantize or fine-tune; pass the "
            "Keras model it was exported from (.keras or .h5), or an int8 .tflite converted from it with "
            "tf.lite.TFLiteConverter.from_saved_model, a representative dataset, TFLITE_BUILTINS_INT8 and "
            "inference_input_type/inference_output_type = tf.int8"
        )
    if not model_path.is_file():
        raise ModelFileError(f"{model_path}: no such model file; pass a .keras, .h5 or int8 .tflite file")
    data = model_path.read_bytes()
    suffix = model_path.suffix.lower()
    if suffix == ".tflite":
        from tinynas.deploy.interpreter import read_model_io, require_int8
        from tinynas.deploy.tflite_interface import int8_interface

        int8_bytes, change = data, None
        if not read_model_io(data, source=str(model_path)).is_int8:
            int8_bytes, change = int8_interface(data, source=str(model_path))
            log.info("%s: %s", model_path, change.describe())
        require_int8(int8_bytes, source=str(model_path))
        return _Source(kind="tflite", file_bytes=data, tflite_bytes=int8_bytes, interface=change)
    if suffix in (".keras", ".h5", ".hdf5"):  # .h5: the legacy format of tf.keras 2, read by Keras 3
        from tinynas.tf_runtime import quiet_import

        quiet_import()
        import keras

        import tinynas.space.keras_layers  # noqa: F401  (registers the layers a tinyformer model is made of)

        try:
            model = keras.saving.load_model(model_path, compile=False)
        except Exception as exc:
            fix = ("replace the Lambda layer with built-in layers (Rescaling, Reshape, Activation, ...): Keras does "
                   "not run a Lambda's Python code read from a file" if "safe_mode" in str(exc)
                   else "save it with model.save('model.keras') from Keras 3")
            raise ModelFileError(
                f"{model_path}: cannot load this Keras model ({type(exc).__name__}: {str(exc)[:300]}); {fix}"
            ) from None
        if not hasattr(model, "inputs"):  # subclassed: no graph of layers until it is called on an input
            model = _functional(keras, model, model_path)
        if isinstance(model.inputs, list) and len(model.inputs) != 1:
            raise ModelFileError(f"{model_path}: deploy needs a model with one input, this one has {len(model.inputs)}")
        if isinstance(model.outputs, list) and len(model.outputs) != 1:
            names = list(getattr(model, "output_names", None) or []) or [t.name for t in model.outputs]
            heads = ", ".join(f"{name} {tuple(t.shape)}" for name, t in zip(names, model.outputs))
            raise ModelFileError(
                f"{model_path}: deploy needs a model with one output, the class scores the firmware reads; this one "
                f"has {len(model.outputs)} ({heads}); save the head to deploy as a model of its own: "
                "keras.Model(model.inputs, model.outputs[i]).save('head.keras')")
        return _Source(kind="keras", file_bytes=data, keras_model=model)
    raise ModelFileError(
        f"{model_path}: unknown model format {suffix or '(no suffix)'!r}; pass a .keras, .h5 or .tflite file"
    )


def _functional(keras: Any, model: Any, model_path: Path) -> Any:
    """A subclassed Keras model as a functional one: its call on a ``keras.Input`` of the shape it was built
    with (Keras saves it as the model's build config), so deploy reads its input and output shapes and the
    converter traces it as any model."""
    shape = (model.get_build_config() or {}).get("input_shape") if model.built else None
    if not shape or not all(isinstance(d, int) or d is None for d in shape):
        what = "has no input shape: it was saved before it was called on data" if not shape else (
            f"takes more than one input ({shape})")
        raise ModelFileError(
            f"{model_path}: a subclassed Keras model ({type(model).__name__}) that {what}; deploy needs one input "
            "of a known shape: call the model on one batch of your data before model.save(), or build it with "
            "keras.Input (functional or Sequential)")
    inp = keras.Input(shape=tuple(shape[1:]))
    return keras.Model(inp, model(inp), name=model.name)


def _calibration_inputs(dataset: Any, *, fit: dict[str, Any], n: int, x_train: np.ndarray | None = None) -> np.ndarray:
    """Up to ``n`` samples that set the int8 activation ranges: the training split first, then the
    validation split when training has fewer than ``n`` (UCR/UEA sets train on 20-50 series, and a
    range seen on 40 samples clips more test samples than one seen on 50). Never the test split."""
    x = x_train if x_train is not None else _fit_inputs(dataset.x_train, split="train", **fit)
    if len(x) < n and len(getattr(dataset, "x_val", ())):
        x = np.concatenate([x, _fit_inputs(dataset.x_val, split="val", **fit)])
    return x[:n]


def _fit_inputs(x: np.ndarray, *, model_shape: tuple[int, ...], dataset: Any, split: str,
                model_path: Path) -> np.ndarray:
    """A whole split laid out as the model expects it, exactly as the trainer feeds it
    (same, images resized bilinearly, or sequences reshaped), so int8 accuracy is measured on what training saw."""
    from tinynas.errors import TrainError
    from tinynas.train import fit_inputs

    try:
        return np.asarray(fit_inputs(np.asarray(x, dtype=np.float32), tuple(model_shape), dataset=dataset.name,
                                     fingerprint=str(getattr(dataset, "fingerprint", "")), split=split),
                          dtype=np.float32)
    except TrainError:
        raise DeployError(
            f"{model_path}: the model's input is {tuple(model_shape)} but dataset {dataset.name!r} gives samples "
            f"of {tuple(x.shape[1:])}; deploy with the dataset the model was trained on "
            "(only image height and width may differ)"
        ) from None


def _static_input_shape(model: Any, *, data_shape: tuple[int, ...], model_path: Path) -> tuple[int, ...]:
    """The model's input shape, a free size (``keras.Input((None, None, 1))``) taken from the dataset.

    A microcontroller runs one fixed shape: a fully convolutional model is deployed at
    the size of the data it is checked on, and the firmware feeds that size."""
    shape = tuple(model.input_shape[1:])
    if None not in shape:
        return tuple(int(d) for d in shape)
    if len(shape) != len(data_shape):
        raise DeployError(f"{model_path}: the model's input is {shape} but dataset samples are {data_shape}; "
                          "deploy with the dataset the model was trained on")
    fixed = tuple(data_shape[i] if d is None else int(d) for i, d in enumerate(shape))
    log.info("%s takes inputs of any size %s: deployed at the dataset's %s", model_path, shape, fixed)
    return fixed


def _warn_double_scaling(model: Any, *, dataset: Any, model_path: Path) -> None:
    """Warn when the model rescales its input and the dataset's inputs already come scaled.

    Keras's image tutorials put ``Rescaling(1./255)`` first in the model, and a model
    trained that way on raw pixels, deployed here, sees pixels divided twice: its
    accuracy collapses and nothing else says why. The firmware would do the same,
    since it applies the dataset's scaling before the model's first layer.
    """
    first = next((layer for layer in getattr(model, "layers", ()) if type(layer).__name__ != "InputLayer"), None)
    scaling = getattr(dataset, "input_scaling", None)
    if type(first).__name__ != "Rescaling" or scaling is None or (scaling.scale, scaling.offset) == (1.0, 0.0):
        return
    log.warning(
        "%s: its first layer is Rescaling(scale=%s, offset=%s) and dataset %r gives inputs already scaled (%s). "
        "A model trained on raw values sees them scaled twice, here and in the firmware: drop that layer before "
        "deploying where it does what the dataset's scaling does, or train on the dataset as tinynas loads it "
        "(tinynas train)", model_path, _short(first.scale), _short(first.offset), dataset.name, scaling_text(dataset))


def _short(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


#: Up to this many samples a single-input, single-output model runs op by op rather than through
#: ``keras.Model.predict``, which first traces its generic predict function: on digits' 269 test images
#: an mcunet net took 0.27 s op by op against 1.16 s; at 5,000 images predict wins (1.3 s against 2.2 s).
EAGER_PREDICT_SAMPLES = 1024


def keras_outputs(model: Any, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """The float model's outputs on ``x`` in inference mode, batch by batch."""
    if not 0 < len(x) <= EAGER_PREDICT_SAMPLES or len(model.inputs) != 1 or len(model.outputs) != 1:
        return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    import tensorflow as tf

    return np.concatenate([np.asarray(model(tf.constant(x[i:i + batch_size]), training=False))
                           for i in range(0, len(x), batch_size)])


def _float_accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    pred = keras_outputs(model, x)
    return float(np.mean(pred.reshape(len(y), -1).argmax(axis=1) == np.asarray(y).reshape(-1)))


def _output_units(kind: str, model: Any, model_bytes: bytes) -> int:
    if kind == "keras":
        return int(np.prod([d for d in model.output_shape[1:] if d is not None]))
    from tinynas.deploy.interpreter import read_model_io

    return int(np.prod(read_model_io(model_bytes).output.shape[1:]))


def _two_class_scores(model: Any, *, model_path: Path, dataset: Any) -> tuple[Any, dict[str, str]]:
    """A binary classifier's one score as two class scores, and what was done, for metrics.json.

    The score comes from a Dense(1) layer: a logit z, or p = sigmoid(z) (in the layer or an Activation after
    it). That layer becomes Dense(2) with softmax and the weights negated and halved in the first column:
    softmax(-z/2, z/2) is exactly (1 - p, p), at the cost of one more column of weights and no other op.
    The firmware, TFLite Micro validation and the phone and GPU runners then take the class as the top score,
    as for every other model; the top of (1 - p, p) is Keras's ``p > 0.5``.
    """
    keep = "end the model in Dense(2) with softmax"
    if model is None:  # an int8 .tflite: its graph is not rewritten
        raise DeployError(
            f"{model_path}: the model has one output score but deploy reads one score per class of "
            f"{dataset.name!r} (2); pass the Keras model it was converted from (deploy turns a Dense(1) "
            f"sigmoid or logit output into the two class scores (1 - p, p)), or {keep}")
    import keras

    def producer(tensor: Any) -> Any:
        history = getattr(tensor, "_keras_history", None)
        return history.operation if history is not None else None

    def activation_of(layer: Any) -> str | None:
        return getattr(getattr(layer, "activation", None), "__name__", None)

    layer = producer(model.outputs[0])
    output = activation_of(layer)
    dense = layer
    if isinstance(layer, keras.layers.Activation) and output == "sigmoid":
        dense = producer(layer.input)
        if activation_of(dense) != "linear":
            dense = None
    if not isinstance(dense, keras.layers.Dense) or output not in ("sigmoid", "linear"):
        what = (f"layer {layer.name!r} ({type(layer).__name__}, activation {output})" if layer is not None
                else "a layer deploy cannot trace")
        raise DeployError(
            f"{model_path}: the model has one output score for the 2 classes of {dataset.name!r}, from {what}; "
            "deploy widens a binary classifier's Dense(1) with a sigmoid or no activation (a logit) to the two "
            f"class scores: end the model so, or {keep}")
    kernel, *bias = dense.get_weights()
    head = keras.layers.Dense(2, activation="softmax", use_bias=bool(bias), name=f"{dense.name}_two_class")
    scores = head(dense.input)
    head.set_weights([np.concatenate([-kernel, kernel], axis=-1) / 2,
                      *(np.concatenate([-b, b]) / 2 for b in bias)])
    record = {"output": "sigmoid probability" if output == "sigmoid" else "logit", "layer": dense.name,
              "deployed_as": "Dense(2) with softmax(-z/2, z/2) = (1 - p, p)",
              "positive_class": str(dataset.class_names[1])}
    log.info("%s: one %s output of class %s, deployed as %s", model_path, record["output"],
             record["positive_class"], record["deployed_as"])
    return keras.Model(model.inputs, scores, name=model.name), record


def deploy(
    *,
    model_path: Path,
    profile: HardwareProfile,
    dataset: Any,
    out_dir: Path,
    template: str | None = None,
    qat: QATMode = "auto",
    model_id: str | None = None,
    representative_samples: int = 200,
    max_test_samples: int | None = None,
    qat_settings: QATSettings = QATSettings(),
    firmware: bool = True,
) -> DeployResult:
    """Quantize, validate and write a deployable int8 build of ``model_path`` for ``profile``.

    ``model_path``: a ``.keras`` model (quantized here, full-integer PTQ with the
    first ``representative_samples`` training samples, topped up from the validation split
    when training has fewer) or a quantized ``.tflite`` (used as it is, but for a float or uint8
    interface, which ``tflite_interface`` removes). ``qat``: True fine-tunes with QAT, "auto" only when int8
    loses more than 1 point against float on the validation split, or the model has attention
    and that split is too small to tell (under 100 samples), False never; the int8 model that
    is better on the validation split is kept (test accuracy is only reported). ``model_id``: the Arch id, else the first 12 hex digits of the int8
    model's SHA-1. ``out_dir`` gets ``model_int8.tflite``, ``model_data.h``,
    ``model_data.cc``, ``op_resolver.h``, ``firmware/<template>/`` (unless
    ``firmware`` is False or the profile has no template), ``model_qat.keras``
    (the fine-tuned float model, when QAT won) and ``metrics.json``; all are written in a temporary
    sibling folder and moved into place only when complete. Other files in ``out_dir`` (the
    user's model, notes, an earlier build) are never moved, replaced or deleted.

    A ``mobile`` or ``gpu`` profile gets its runtime's artifacts instead
    (``runtime_deploy.deploy_runtime``: int8/fp16 ``.tflite`` checked in LiteRT plus
    runners, or fp32/fp16 ONNX checked in ONNX Runtime plus the ``trtexec``
    command; no C sources, no firmware, no QAT); it needs the ``.keras`` model.

    Raises ModelFileError (missing, corrupt or float-only model), DeployError
    (shape or class mismatch, ``out_dir`` holding a deploy of another model or a
    file of the same name as an output, a failed step;
    nothing is left behind) and DoesNotFitError when the model exceeds the
    board's SRAM or flash budget: then the complete output is still written,
    with ``"fits": false`` in metrics.json, and the message names the folder.
    """
    from tinynas.deploy.interpreter import read_model_io
    from tinynas.deploy.validate import validate_int8

    model_path = Path(model_path)
    out_dir = Path(out_dir).resolve()
    if qat not in ("auto", True, False):
        raise DeployError(f"qat must be 'auto', True or False, got {qat!r}")
    if firmware:
        from tinynas.deploy.firmware import check_board_template

        check_board_template(profile, template)  # before quantizing: a bad --template costs nothing
    dataset.require_splits("test", needed_for="deploy (it measures float and int8 accuracy on it)")
    source = _load_source(model_path)
    kind, keras_model = source.kind, source.keras_model
    source_sha = _sha256(source.file_bytes)
    _check_out_dir(out_dir, source_sha256=source_sha, model_path=model_path)

    data_shape = tuple(int(d) for d in dataset.x_test.shape[1:])
    if kind == "keras":
        model_shape = _static_input_shape(keras_model, data_shape=data_shape, model_path=model_path)
    else:
        model_shape = read_model_io(source.tflite_bytes).input.shape[1:]
    units = _output_units(kind, keras_model, source.tflite_bytes)
    binary = None
    if units == 1 and len(dataset.class_names) == 2:
        keras_model, binary = _two_class_scores(keras_model, model_path=model_path, dataset=dataset)
        units = 2
    if units != len(dataset.class_names):
        raise DeployError(
            f"{model_path}: the model has {units} outputs but dataset {dataset.name!r} has "
            f"{len(dataset.class_names)} classes; deploy with the dataset the model was trained on"
        )
    if kind == "keras":
        _warn_double_scaling(keras_model, dataset=dataset, model_path=model_path)
    fit = dict(model_shape=model_shape, dataset=dataset, model_path=model_path)
    x_test = _fit_inputs(dataset.x_test, split="test", **fit)
    y_test = np.asarray(dataset.y_test).reshape(-1)
    if max_test_samples is not None:
        x_test, y_test = x_test[:max_test_samples], y_test[:max_test_samples]
    test_view = _Split(x_test=x_test, y_test=y_test)
    if profile.kind != "mcu":
        return _deploy_runtime(kind=kind, keras_model=keras_model, model_path=model_path, profile=profile,
                               dataset=dataset, out_dir=out_dir, x_test=x_test, y_test=y_test, fit=fit, qat=qat,
                               model_id=model_id, source_sha=source_sha, data_shape=data_shape,
                               model_shape=model_shape, representative_samples=representative_samples,
                               binary=binary)

    qat_record: dict[str, Any] = {"requested": qat, "applied": False, "used": False}
    strays: list[dict[str, Any]] | None = None  # the ops int8 gets most wrong, when it loses accuracy
    tuned_model = None  # the QAT fine-tuned float model, when it is the one deployed
    unrolled: list[tuple[str, int | None]] = []
    if kind == "keras":
        from tinynas.deploy.quantize import quantize_int8, recurrent_layers

        unrolled = recurrent_layers(keras_model)

        x_train = _fit_inputs(dataset.x_train, split="train", **fit)
        x_rep = _calibration_inputs(dataset, fit=fit, n=representative_samples, x_train=x_train)
        float_acc = _float_accuracy(keras_model, x_test, y_test)
        model_bytes, names_saved = _flash_ready(
            quantize_int8(keras_model, representative=x_rep, num_samples=representative_samples), source=model_path)
        if firmware:  # before validation and QAT: fine-tuning changes no op
            _check_template_kernels(model_bytes, profile=profile, template=template, model_path=model_path)
        report = validate_int8(model_bytes, dataset=test_view, profile=profile, float_accuracy=float_acc,
                               source=f"{model_path} (as int8)")
        qat_record["ptq_int8_accuracy"] = report.int8_accuracy
        # Whether to fine-tune, and which int8 model to keep, is decided on the validation
        # split: choosing on the test split would make the reported test accuracy optimistic.
        x_val, y_val = _selection_split(dataset, fit=fit, fallback=(x_test, y_test))
        ptq_val = int8_accuracy(model_bytes, x=x_val, y=y_val)
        drop = _float_accuracy(keras_model, x_val, y_val) - ptq_val
        qat_record["ptq_val_int8_accuracy"] = ptq_val
        tuned = None
        reason = _qat_reason(qat, drop=drop, val_samples=len(y_val), attention=_attention_layers(keras_model))
        if reason:
            from tinynas.deploy.qat import qat_finetune

            qat_record["reason"] = reason
            log.info("fine-tuning with QAT: %s", reason)
            try:
                tuned = qat_finetune(keras_model, x_train=x_train, y_train=dataset.y_train, settings=qat_settings)
            except DeployError as exc:
                if qat is True:
                    raise
                log.warning("QAT skipped, keeping the PTQ model: %s", exc)  # "auto": PTQ stands
                qat_record["skipped"] = str(exc)
                tuned = None
        if tuned is not None:
            qat_bytes, qat_names_saved = _flash_ready(
                quantize_int8(tuned, representative=x_rep, num_samples=representative_samples), source=model_path)
            qat_val = int8_accuracy(qat_bytes, x=x_val, y=y_val)
            qat_report = validate_int8(qat_bytes, dataset=test_view, profile=profile, float_accuracy=float_acc)
            qat_record.update(applied=True, qat_int8_accuracy=qat_report.int8_accuracy, qat_val_int8_accuracy=qat_val,
                              settings=qat_settings.to_json(), epoch_passes=qat_settings.epoch_passes(len(x_train)))
            # A tie keeps the fine-tuned model: a small validation split mostly ties, and that is
            # where fine-tuning runs because validation cannot tell (see _qat_reason).
            if qat_val >= ptq_val:
                model_bytes, report, tuned_model, names_saved = qat_bytes, qat_report, tuned, qat_names_saved
                qat_record["used"] = True
            else:
                log.warning("QAT did not beat PTQ on validation (%.4f < %.4f): keeping the PTQ model",
                            qat_val, ptq_val)
        if report.accuracy_drop > MAX_INT8_DROP:
            # 100 samples tell the ops apart; on a 96x96 mcunet 200 took 12.6 s, 64 took 7.6 s
            strays = _int8_error_ops(tuned_model or keras_model, representative=x_rep,
                                     num_samples=min(representative_samples, 100), model_path=model_path)
    else:
        if qat is True:
            raise DeployError(
                f"{model_path}: --qat needs the float .keras model; an int8 .tflite cannot be fine-tuned"
            )
        model_bytes, names_saved = _flash_ready(source.tflite_bytes, source=model_path)
        if firmware:
            _check_template_kernels(model_bytes, profile=profile, template=template, model_path=model_path)
        report = validate_int8(model_bytes, dataset=test_view, profile=profile, float_accuracy=None,
                               source=str(model_path))

    model_id = model_id or hashlib.sha1(model_bytes).hexdigest()[:12]
    floats = _float_ops_warning(model_bytes, source=model_path)
    metrics = {
        "tool": TOOL_MARK,
        "model_id": model_id,
        "source": {"path": str(model_path.resolve()), "format": kind, "sha256": source_sha,
                   **({"interface_removed": source.interface.to_json()} if source.interface else {})},
        "profile_id": profile.id,
        "dataset": {"name": dataset.name, "fingerprint": getattr(dataset, "fingerprint", None),
                    "input_shape": list(data_shape), "model_input_shape": list(model_shape),
                    "adapted_to_model": tuple(model_shape) != tuple(data_shape)},
        "float_accuracy": report.float_accuracy,
        "int8_accuracy": report.int8_accuracy,
        "accuracy_drop": report.accuracy_drop,
        "num_test_samples": report.num_test_samples,
        "arena_bytes": report.arena_bytes,
        "flash_bytes": report.flash_bytes,
        "tensor_names_stripped_bytes": names_saved,
        "sram_budget_bytes": profile.sram_budget_bytes,
        "flash_budget_bytes": profile.flash_budget_bytes,
        "fits": report.fits,
        "qat": qat_record,
        **({"binary_output": binary} if binary else {}),
        **({"int8_error_ops": strays} if strays is not None else {}),
        **({"unrolled": [{"layer": name, "time_steps": steps} for name, steps in unrolled]} if unrolled else {}),
        **({"float_ops": floats} if floats else {}),
        "validation": report.to_json(),
        "int8_sha256": _sha256(model_bytes),
    }
    result = _write_outputs(out_dir=out_dir, model_bytes=model_bytes, metrics=metrics, profile=profile,
                            dataset=dataset, template=template, firmware=firmware, tuned_model=tuned_model,
                            keep=(model_path,))
    if not report.fits:
        from tinynas.deploy.quantize import unrolled_hint

        raise DoesNotFitError(does_not_fit_message(report, profile=profile, where=str(out_dir),
                                                   why=unrolled_hint(unrolled)))
    return result


def _float_ops_warning(model_bytes: bytes, *, source: Path) -> list[str]:
    """The ops the int8 model still computes in float, with a warning: the converter leaves an op it has no int8
    kernel for in float between DEQUANTIZE and QUANTIZE, which TFLite Micro runs, but with float kernels (slow on a
    Cortex-M without an FPU) and float buffers in the arena: the engineer should know before flashing it."""
    from tinynas.deploy.litert import float_ops

    floats = float_ops(model_bytes, source=f"{source} (as int8)")
    if floats:
        log.warning("%s: the int8 model computes %s in float (no int8 kernel in the converter): TFLite Micro runs it, "
                    "slower than int8 kernels and with float buffers in the arena",
                    source, ", ".join(floats))
    return floats


def _flash_ready(model_bytes: bytes, *, source: Path) -> tuple[bytes, int]:
    """The int8 model as the board's flash holds it: tensor names emptied (``strip_tensor_names``); and the
    bytes that saved."""
    from tinynas.deploy.flatbuffer import strip_tensor_names

    stripped, saved = strip_tensor_names(model_bytes, source=str(source))
    if saved:
        log.info("%s: tensor names stripped from the int8 model, %d of %d bytes", source, saved, len(model_bytes))
    return stripped, saved


def _deploy_runtime(*, kind: str, keras_model: Any, model_path: Path, profile: HardwareProfile, dataset: Any,
                    out_dir: Path, x_test: np.ndarray, y_test: np.ndarray, fit: dict[str, Any], qat: QATMode,
                    model_id: str | None, source_sha: str, data_shape: tuple[int, ...],
                    model_shape: tuple[int, ...], representative_samples: int,
                    binary: dict[str, str] | None) -> DeployResult:
    """A ``mobile`` or ``gpu`` profile: LiteRT or ONNX artifacts (``tinynas.deploy.runtime_deploy``)."""
    from tinynas.deploy.runtime_deploy import deploy_runtime

    if kind != "keras":
        raise ModelFileError(
            f"{model_path}: a {profile.kind} deploy ({profile.id}) converts the float model itself; "
            "pass the trained .keras model, not a .tflite"
        )
    x_rep = _calibration_inputs(dataset, fit=fit, n=representative_samples)
    metrics: dict[str, Any] = {
        "tool": TOOL_MARK,
        "model_id": model_id,
        "source": {"path": str(model_path.resolve()), "format": kind, "sha256": source_sha},
        "profile_id": profile.id,
        "dataset": {"name": dataset.name, "fingerprint": getattr(dataset, "fingerprint", None),
                    "input_shape": list(data_shape), "model_input_shape": list(model_shape),
                    "adapted_to_model": tuple(model_shape) != tuple(data_shape)},
        "qat": {"requested": qat},
        **({"binary_output": binary} if binary else {}),
    }
    return deploy_runtime(keras_model=keras_model, model_path=model_path, profile=profile, dataset=dataset,
                          out_dir=out_dir, x_test=x_test, y_test=y_test, x_rep=x_rep, metrics=metrics,
                          keep=(model_path,), representative_samples=representative_samples)


def redeploy(earlier: DeployResult, *, profile: HardwareProfile, dataset: Any, out_dir: Path,
             template: str | None = None, source: Path | None = None, firmware: bool = True) -> DeployResult:
    """``earlier`` (a deploy of the same model for another board) redone for ``profile``.

    The int8 model, its TFLM accuracy, arena and C sources depend on the trained
    model, not on the board, so they are reused; the budget checks, metrics.json
    and the firmware are the board's own. ``metrics["reused_from"]`` names the
    earlier folder. Raises DoesNotFitError (outputs written) like ``deploy``.
    """
    metrics = json.loads(json.dumps(earlier.metrics))
    old = ValidationReport.from_json(metrics["validation"])
    report = dataclasses.replace(old, profile_id=profile.id, checks=budget_checks(
        arena_bytes=old.arena_bytes, flash_bytes=old.flash_bytes, profile=profile))
    metrics.update(profile_id=profile.id, sram_budget_bytes=profile.sram_budget_bytes,
                   flash_budget_bytes=profile.flash_budget_bytes, fits=report.fits, validation=report.to_json(),
                   reused_from=str(earlier.out_dir))
    if source is not None:
        metrics["source"]["path"] = str(Path(source).resolve())
    tuned = earlier.out_dir / QAT_MODEL_FILE
    result = _write_outputs(out_dir=Path(out_dir).resolve(), model_bytes=earlier.model_path.read_bytes(),
                            metrics=metrics, profile=profile, dataset=dataset, template=template,
                            firmware=firmware, tuned_model_file=tuned if tuned.is_file() else None,
                            keep=(source,) if source is not None else ())
    if not report.fits:
        raise DoesNotFitError(does_not_fit_message(report, profile=profile, where=str(out_dir)))
    return result


def _int8_error_ops(model: Any, *, representative: np.ndarray, num_samples: int,
                    model_path: Path) -> list[dict[str, Any]] | None:
    """``quantize.int8_error_ops`` for the deployed model; None, with a warning, when the debugger fails: it
    explains a loss, and must not stop a deploy that is otherwise complete."""
    from tinynas.deploy.quantize import int8_error_ops

    try:
        return int8_error_ops(model, representative=representative, num_samples=num_samples)
    except Exception as exc:  # noqa: BLE001 - TensorFlow's debugger raises many kinds
        log.warning("%s: could not tell which ops lose accuracy in int8 (%s: %s)", model_path,
                    type(exc).__name__, str(exc)[:200])
        return None


def _qat_reason(qat: QATMode, *, drop: float, val_samples: int, attention: list[str]) -> str | None:
    """Why deploy fine-tunes with QAT, or None when it does not.

    "auto" fine-tunes when int8 loses more than ``MAX_INT8_DROP`` on the validation split, and
    also when the model has attention (``attention``: its BATCH_MATMUL layers) and that split
    is too small to see such a loss (fewer than 1 / MAX_INT8_DROP samples: one sample is more
    than a point). UCR/UEA sets validate on 8-10 series; there, measured on the test splits
    (issue 14, 3 seeds x 2 boards x GunPoint and BasicMotions), post-training quantization
    lost 1.3-2.7 points on half of the tinyformer winners and never on a dscnn winner, while
    fine-tuning a fragile dscnn on 42 series once cost it 6 points.
    """
    if qat is True:
        return "requested (--qat)"
    if qat != "auto":
        return None
    if drop > MAX_INT8_DROP:
        return f"int8 loses {100 * drop:.2f} points against float on the validation split"
    if attention and val_samples * MAX_INT8_DROP < 1:
        return (f"the model has attention ({', '.join(attention[:3])}), where int8 rounding costs accuracy, "
                f"and the validation split ({val_samples} samples) is too small to see a loss of "
                f"{100 * MAX_INT8_DROP:g} point")
    return None


def _check_template_kernels(model_bytes: bytes, *, profile: HardwareProfile, template: str | None,
                            model_path: Path) -> None:
    """DeployError, before the costly steps, when the firmware template's TFLite Micro lacks a kernel the
    int8 model needs (generate_firmware would refuse it at the end)."""
    from tinynas.deploy.firmware import check_board_template
    from tinynas.space.tflite_reader import tflite_info

    check_board_template(profile, template, op_kinds=tflite_info(model_bytes).op_kinds, used_by=str(model_path))


def _attention_layers(model: Any) -> list[str]:
    """Names of the model's BATCH_MATMUL layers (tinyformer's attention scores and mixing)."""
    return [layer.name for layer in model.layers if type(layer).__name__ == "BatchMatMul"]


def _selection_split(dataset: Any, *, fit: dict[str, Any],
                     fallback: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The validation split as the model sees it; the test split only when a dataset has no validation split."""
    x_val = getattr(dataset, "x_val", None)
    if x_val is None or len(x_val) == 0:
        return fallback
    return _fit_inputs(x_val, split="val", **fit), np.asarray(dataset.y_val).reshape(-1)


@dataclass(frozen=True)
class _Split:
    """The test split as validate_int8 reads it (resized to the model's input when needed)."""

    x_test: np.ndarray
    y_test: np.ndarray


def scaling_text(dataset: Any) -> str | None:
    scaling = getattr(dataset, "input_scaling", None)
    if scaling is None:
        return None
    if isinstance(scaling, str):
        return scaling
    try:
        text = f"{scaling.formula()} ({scaling.description})"
    except AttributeError:
        return str(scaling)
    preprocessing = getattr(dataset, "preprocessing", "")
    return f"{preprocessing}; then {text}" if preprocessing else text


def _write_front_end(*, out_dir: Path, model_bytes: bytes, dataset: Any, model_id: str,
                     room_bytes: int | None, board: str) -> tuple[list[Path], dict[str, Any] | None]:
    """The C front end that turns the board's raw samples into the model's int8 input as training did:
    ``audio_frontend.h/.c`` for a WAV folder's features (from microphone samples), ``image_frontend.h/.c`` for
    an image folder's colour mode and resize (from camera frames). Its static RAM comes beside the tensor arena,
    so it must fit the ``room_bytes`` the board's SRAM budget leaves (None: no limit); the image front end's
    buffers are sized for the largest camera frame that fits. Returns the files written and what the front end
    takes (none when the dataset has no front end or the model's input is not what it makes: the log says why)."""
    audio = getattr(dataset, "audio_front_end", None)
    image = getattr(dataset, "image_front_end", None)
    if audio is None and image is None:
        return [], None
    from tinynas.space.tflite_reader import tflite_info

    inp = tflite_info(model_bytes).inputs[0]
    what = "audio" if audio is not None else "image"
    if inp.dtype != "int8":
        log.warning("no %s front end written: the model's input is %s, not int8", what, inp.dtype)
        return [], None
    common = {"out_dir": out_dir, "scaling": dataset.input_scaling, "input_scale": float(inp.scale),
              "input_zero_point": int(inp.zero_point), "input_shape": tuple(inp.shape), "model_id": model_id}
    try:
        if audio is not None:
            from tinynas.deploy.audio_frontend import static_ram_bytes, write_audio_frontend

            files = write_audio_frontend(front_end=audio, **common)
            record = {"static_ram_bytes": static_ram_bytes(audio), "max_source": None}
        else:
            from tinynas.deploy.image_frontend import MAX_SOURCE, fit_max_source, write_image_frontend

            source, ram, fits = fit_max_source(height=image.height, width=image.width, channels=image.channels,
                                               room_bytes=room_bytes, model_size=tuple(inp.shape[1:3]))
            sizing = "" if room_bytes is None else (
                f"{board}'s SRAM budget leaves {room_bytes} bytes beside the tensor arena"
                + ("" if source == MAX_SOURCE else f"; {MAX_SOURCE[0]}x{MAX_SOURCE[1]} frames would take more")
                + ("." if fits else ": not even this fits, so it comes out of the firmware's reserve.")
                + " Define TINYNAS_IMG_MAX_SOURCE_WIDTH/HEIGHT for your camera's frame size.")
            files = write_image_frontend(front_end=image, max_source=source, sizing=sizing, **common)
            record = {"static_ram_bytes": ram, "max_source": list(source)}
    except DeployError as exc:
        log.warning("no %s front end written: %s", what, exc)
        return [], None
    record.update(file=files[-1].name, room_bytes=room_bytes,
                  fits=room_bytes is None or record["static_ram_bytes"] <= room_bytes)
    if not record["fits"]:
        log.warning("the %s front end's %d bytes of static RAM do not fit the %d bytes %s's SRAM budget leaves "
                    "beside the tensor arena: they come out of the firmware's reserve", what,
                    record["static_ram_bytes"], room_bytes, board)
    return files, record


def _resized_from(record: dict[str, Any]) -> tuple[int, ...] | None:
    """The data's sample shape where training resized it to the model's height and width (mcunet's
    resolution), from metrics' ``dataset`` record: the header then gets ``ResizeRawInput``."""
    from tinynas.train.inputs import check_input_shape

    given, taken = tuple(record.get("input_shape") or ()), tuple(record.get("model_input_shape") or ())
    if not given or not taken or given == taken:
        return None
    return given if check_input_shape(given, taken, dataset=str(record.get("name"))) == "resize" else None


def _write_outputs(*, out_dir: Path, model_bytes: bytes, metrics: dict[str, Any], profile: HardwareProfile,
                   dataset: Any, template: str | None, firmware: bool, tuned_model: Any = None,
                   tuned_model_file: Path | None = None, keep: tuple[Path, ...] = ()) -> DeployResult:
    """Write everything into a sibling temp folder, then move its files into ``out_dir``.

    Only this tool's own files in ``out_dir`` (those the earlier metrics.json lists) are
    replaced or removed; metrics.json moves last, so it marks a complete output.
    """
    from tinynas.deploy.codegen import write_model_sources
    from tinynas.deploy.outdir import install_files, staged_files

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        (tmp / MODEL_FILE).write_bytes(model_bytes)
        if tuned_model is not None:  # the float weights the int8 model came from, for later retraining
            tuned_model.save(tmp / QAT_MODEL_FILE)
        elif tuned_model_file is not None:
            shutil.copy2(tuned_model_file, tmp / QAT_MODEL_FILE)
        class_names = [str(c) for c in dataset.class_names]
        scaling = scaling_text(dataset)
        raw = getattr(dataset, "input_scaling", None)
        raw_scaling = (float(raw.scale), float(raw.offset)) if hasattr(raw, "scale") else None
        # the budget the run set part of aside for the front end is the room's too
        room = None if profile.kind != "mcu" else max(0, profile.sram_budget_bytes + profile.front_end_reserve_bytes
                                                      - arena_size_with_margin(int(metrics["arena_bytes"])))
        front_end, metrics["front_end"] = _write_front_end(out_dir=tmp, model_bytes=model_bytes, dataset=dataset,
                                                           model_id=str(metrics["model_id"]), room_bytes=room,
                                                           board=profile.id)
        if front_end:
            source = front_end[-1].name
            scaling = f"{scaling}; {source} computes this input from {FRONT_ENDS[source][1]}"
        raw_shape = None if front_end or raw_scaling is None else _resized_from(metrics.get("dataset") or {})
        if raw_shape is not None:
            metrics["dataset"]["resized_by"] = "ResizeRawInput (model_data.h)"
        write_model_sources(model_bytes=model_bytes, out_dir=tmp, class_names=class_names,
                            arena_bytes=int(metrics["arena_bytes"]), model_id=str(metrics["model_id"]),
                            input_scaling=scaling, raw_scaling=raw_scaling, raw_shape=raw_shape)
        metrics["template"] = None
        name = template or profile.ecosystem.default_template
        if name == "none":  # mobile and GPU profiles: no firmware ecosystem (tinynas.hardware.schema.NO_TEMPLATE)
            name = ""
        if firmware and not name:
            log.warning("profile %s names no default firmware template and none was given: no firmware/ written",
                        profile.id)
        elif firmware:
            from tinynas.deploy.firmware import generate_firmware

            generate_firmware(template=name, model_bytes=model_bytes, profile=profile,
                              out_dir=tmp / "firmware" / name, class_names=class_names,
                              arena_bytes=int(metrics["arena_bytes"]), model_id=str(metrics["model_id"]),
                              input_scaling=scaling, raw_scaling=raw_scaling, raw_shape=raw_shape,
                              extra_sources=front_end)
            metrics["template"] = name
        metrics["files"] = staged_files(tmp) + [METRICS_FILE]
        (tmp / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
        previous = _previous_deploy(out_dir) if out_dir.is_dir() else None
        install_files(staged=tmp, out_dir=out_dir, previous=(previous or {}).get("files", ()),
                      marker=METRICS_FILE, keep=keep)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("deploy written to %s", out_dir)
    return DeployResult(out_dir=out_dir, model_path=out_dir / MODEL_FILE, metrics=metrics,
                        files=tuple(metrics["files"]))
