"""Keras models written by hand, not drawn from a tinynas space, deployed as a user brings them."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from _deploy_support import digits, make_profile
from tinynas.cli.main import cli
from tinynas.data import load_dataset
from tinynas.deploy.deployer import deploy
from tinynas.errors import DoesNotFitError, ModelFileError


def _rows(x: np.ndarray) -> np.ndarray:
    """Digits as sequences: 8 time steps (the rows) of 8 values."""
    return x.reshape(len(x), 8, 8)


@pytest.mark.slow
def test_a_trained_lstm_deploys_unrolled_with_its_weights(tmp_path):
    """TensorFlow's int8 calibration of an LSTM's loop kills the process (a segmentation fault,
    nothing said, nothing written); unrolled, the trained weights run in TFLite Micro."""
    import keras

    keras.utils.set_random_seed(0)
    ds = digits()
    model = keras.Sequential([keras.Input((8, 8)), keras.layers.LSTM(24), keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    model.fit(_rows(ds.x_train), ds.y_train, epochs=15, batch_size=64, verbose=0)
    src = tmp_path / "lstm.keras"
    model.save(src)

    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["deploy", str(src), "--profile", "nano33ble", "--dataset", "digits",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "gives (8, 8, 1), the model takes (8, 8): the same values, reshaped" in result.output
    assert "resized" not in result.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["float_accuracy"] > 0.85  # the trained weights, not a fresh clone's
    assert abs(m["float_accuracy"] - m["int8_accuracy"]) <= 0.03
    resolver = (out / "op_resolver.h").read_text()
    assert "AddTanh()" in resolver and "AddLogistic()" in resolver and "AddWhile()" not in resolver
    assert (src.read_bytes()[:2] == b"PK") and keras.saving.load_model(src).layers[0].unroll is False  # untouched
    assert m["unrolled"] == [{"layer": "LSTM", "time_steps": 8}]
    # estimate of the deployed file gives deploy's arena: measured in TFLite Micro, where the cost model
    # prices an unrolled LSTM's SPLIT and UNPACK only roughly
    est = CliRunner().invoke(cli, ["estimate", str(out / "model_int8.tflite"), "-p", "nano33ble", "--json"])
    assert est.exit_code == 0, est.output
    est = json.loads(est.output)
    assert est["arena_bytes"] == m["arena_bytes"] != est["arena_predicted_bytes"]
    assert next(c for c in est["checks"] if c["name"] == "sram")["need"] == m["arena_bytes"]

    # Where it does not fit, the message says why a small LSTM needs that much, and what helps.
    with pytest.raises(DoesNotFitError) as refused:
        deploy(model_path=src, profile=make_profile(flash_bytes=100 * 1024), dataset=digits(),
               out_dir=tmp_path / "tight", firmware=False, max_test_samples=20, qat=False)
    assert "recurrent layers run unrolled (LSTM over 8 time steps)" in str(refused.value)
    assert "Fewer time steps" in str(refused.value)


def _layer(kind: str):
    import keras

    return {
        "gru": lambda: keras.layers.GRU(12),
        "simple_rnn": lambda: keras.layers.SimpleRNN(12),
        "bidirectional_lstm": lambda: keras.layers.Bidirectional(keras.layers.LSTM(6)),
    }[kind]()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gru", "simple_rnn", "bidirectional_lstm", "nested"])
def test_recurrent_layers_quantize_and_agree_with_float_in_tflm(kind):
    import keras

    from tinynas.deploy.interpreter import MicroInterpreter
    from tinynas.deploy.quantize import quantize_int8

    keras.utils.set_random_seed(1)
    inp = keras.Input((8, 8))
    if kind == "nested":  # a recurrent layer inside a Sequential inside a functional model
        inner = keras.Sequential([keras.Input((8, 8)), keras.layers.GRU(10, return_sequences=True)])
        h = keras.layers.LSTM(8)(inner(inp))
    else:
        h = _layer(kind)(inp)
    model = keras.Model(inp, keras.layers.Dense(4, activation="softmax")(h))
    x = np.random.default_rng(0).uniform(0, 1, size=(40, 8, 8)).astype("float32")

    data = quantize_int8(model, representative=x, num_samples=40)
    got = MicroInterpreter(data).predict(x[:10])
    np.testing.assert_allclose(got.reshape(10, -1), model.predict(x[:10], verbose=0), atol=0.05)


def _flat_model(*, rescale: float | None):
    import keras

    keras.utils.set_random_seed(0)
    layers = [keras.Input((8, 8, 1))]
    if rescale is not None:
        layers.append(keras.layers.Rescaling(rescale))
    layers += [keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]
    return keras.Sequential(layers)


@pytest.mark.slow
def test_a_rescaling_first_layer_on_scaled_data_is_warned(tmp_path, caplog):
    """Keras's tutorials put Rescaling(1/255) first; on a dataset tinynas already scales, the model
    sees its inputs scaled twice, and its accuracy collapses with nothing said."""
    for name, rescale in (("scaled", 1 / 16), ("plain", None)):
        src = tmp_path / f"{name}.keras"
        _flat_model(rescale=rescale).save(src)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="tinynas.deploy.deployer"):
            deploy(model_path=src, profile=make_profile(), dataset=digits(), out_dir=tmp_path / name,
                   firmware=False, max_test_samples=20, qat=False)
        warned = [r.getMessage() for r in caplog.records if "Rescaling" in r.getMessage()]
        if rescale is None:
            assert warned == []
        else:
            assert len(warned) == 1
            assert "Rescaling(scale=0.0625, offset=0" in warned[0] and "pixels 0..16 divided by 16" in warned[0]
            assert "scaled twice" in warned[0]


def test_a_subclassed_recurrent_model_is_refused_with_the_fix():
    """A subclassed model cannot be rebuilt with its loops unrolled: refused before the converter
    could crash the process, naming what to do."""
    import keras

    from tinynas.deploy.quantize import quantize_int8
    from tinynas.errors import DeployError

    class Tagger(keras.Model):
        def __init__(self):
            super().__init__()
            self.rnn = keras.layers.GRU(4)
            self.head = keras.layers.Dense(3)

        def call(self, x):
            return self.head(self.rnn(x))

    model = Tagger()
    x = np.zeros((2, 5, 3), dtype="float32")
    model(x)
    with pytest.raises(DeployError, match=r"recurrent layers.*unroll=True"):
        quantize_int8(model, representative=x, num_samples=2)


def test_a_subclassed_model_deploys_at_the_shape_it_was_built_with(tmp_path):
    """A subclassed model has no ``inputs`` until it is called: deploy stopped on an AttributeError. Keras keeps
    the shape it was built with, so deploy calls it on a ``keras.Input`` of that shape; one saved before it was
    ever called is refused with the fix."""
    import keras

    @keras.saving.register_keras_serializable("tinynas_subclassed_tests")
    class Classifier(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.flat = keras.layers.Flatten()
            self.head = keras.layers.Dense(10, activation="softmax")

        def call(self, x):
            return self.head(self.flat(x))

    keras.utils.set_random_seed(0)
    model = Classifier()
    model(np.zeros((1, 8, 8, 1), "float32"))
    src, out = tmp_path / "classifier.keras", tmp_path / "out"
    model.save(src)
    result = CliRunner().invoke(cli, ["deploy", str(src), "--profile", "nano33ble", "--dataset", "digits",
                                      "--no-qat", "--out", str(out)])
    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["fits"] and (out / "model_int8.tflite").is_file() and 0.0 <= m["int8_accuracy"] <= 1.0

    with pytest.warns(UserWarning, match="not yet been built"):  # Keras saves it all the same
        Classifier().save(tmp_path / "unbuilt.keras")
    result = CliRunner().invoke(cli, ["deploy", str(tmp_path / "unbuilt.keras"), "--profile", "nano33ble",
                                      "--dataset", "digits", "--out", str(tmp_path / "out2")])
    assert result.exit_code == 1 and isinstance(result.exception, ModelFileError)
    assert "(Classifier) that has no input shape: it was saved before it was called on data" in str(result.exception)
    assert "call the model on one batch of your data before model.save()" in str(result.exception)


def test_a_model_with_two_heads_is_refused_naming_them(tmp_path):
    """Its output shapes are a list, and deploy stopped on a TypeError multiplying None by an int."""
    import keras

    inp = keras.Input((8, 8, 1))
    flat = keras.layers.Flatten()(inp)
    two = keras.Model(inp, [keras.layers.Dense(10, activation="softmax", name="digit")(flat),
                            keras.layers.Dense(2, activation="softmax", name="odd")(flat)])
    two.save(tmp_path / "two.keras")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["deploy", str(tmp_path / "two.keras"), "--profile", "nano33ble", "--dataset",
                                      "digits", "--out", str(out)])
    assert result.exit_code == 1 and isinstance(result.exception, ModelFileError)
    assert "one output, the class scores the firmware reads; this one has 2 (digit (None, 10), odd (None, 2))" in str(
        result.exception) and "keras.Model(model.inputs, model.outputs[i])" in str(result.exception)
    assert not out.exists()


@pytest.mark.slow
def test_a_legacy_h5_model_deploys_and_a_savedmodel_folder_is_refused_with_the_recipe(tmp_path):
    """tf.keras 2 saved .h5 files, and older tutorials still do; a SavedModel folder cannot be
    fine-tuned here, and the refusal says what to pass instead."""
    import warnings

    model = _flat_model(rescale=None)
    h5 = tmp_path / "model.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(h5)
    keras_file = tmp_path / "model.keras"
    model.save(keras_file)
    a = deploy(model_path=h5, profile=make_profile(), dataset=digits(), out_dir=tmp_path / "a", firmware=False,
               max_test_samples=40, qat=False)
    b = deploy(model_path=keras_file, profile=make_profile(), dataset=digits(), out_dir=tmp_path / "b",
               firmware=False, max_test_samples=40, qat=False)
    assert a.metrics["source"]["format"] == "keras" and a.metrics["int8_accuracy"] == b.metrics["int8_accuracy"]
    assert (tmp_path / "a" / "model_int8.tflite").read_bytes() == (tmp_path / "b" / "model_int8.tflite").read_bytes()

    model.export(str(tmp_path / "exported"), verbose=False)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ModelFileError, match=r"exported: a TensorFlow SavedModel folder.*\.keras or \.h5.*TFLITE_BUILTINS_INT8"):
        deploy(model_path=tmp_path / "exported", profile=make_profile(), dataset=digits(), out_dir=tmp_path / "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.slow
def test_a_sequential_model_is_fine_tuned_with_qat(tmp_path):
    """QAT rebuilds the model with fake quantizers through clone_model's call_function, which Keras
    refuses for Sequential models, the kind most users write: before, QAT was skipped (auto) or
    failed (--qat) for them."""
    import keras

    from tinynas.deploy.qat import QATSettings

    keras.utils.set_random_seed(0)
    ds = digits()
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.BatchNormalization(), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(ds.x_train, ds.y_train, epochs=5, verbose=0)
    src = tmp_path / "seq.keras"
    model.save(src)
    result = deploy(model_path=src, profile=make_profile(), dataset=ds, out_dir=tmp_path / "out", firmware=False,
                    qat=True, qat_settings=QATSettings(epochs=2))
    qat = result.metrics["qat"]
    assert qat["applied"] is True and "skipped" not in qat
    assert qat["qat_int8_accuracy"] > 0.8
    assert abs(result.metrics["float_accuracy"] - result.metrics["int8_accuracy"]) <= 0.03


def _activation_model(activation: str):
    import keras

    keras.utils.set_random_seed(0)
    ds = digits()
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation=activation),
                              keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(ds.x_train, ds.y_train, epochs=1, verbose=0)
    return model


@pytest.mark.slow
def test_ops_tflm_cannot_run_are_named_by_deploy_and_estimate(tmp_path):
    """GELU has no TFLite Micro kernel, and softplus's EXP has no int8 one: before, both ended in
    "could not allocate this model with up to 64 MiB", after trying every arena size."""
    from tinynas.deploy.quantize import quantize_int8
    from tinynas.errors import DeployError

    gelu, softplus = tmp_path / "gelu.keras", tmp_path / "softplus.keras"
    _activation_model("gelu").save(gelu)
    _activation_model("softplus").save(softplus)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(DeployError, match=r"gelu.keras \(as int8\): the model uses GELU, which TFLite Micro has no "
                                          r"kernel for; .*relu, relu6, hard_swish"):
        deploy(model_path=gelu, profile=make_profile(), dataset=digits(), out_dir=tmp_path / "a", qat=False)
    with pytest.raises(DeployError, match=r"softplus.keras \(as int8\): TFLite Micro could not allocate .* it says: "
                                          r".*exp.cc.*INT8 != FLOAT32.*Node EXP"):
        deploy(model_path=softplus, profile=make_profile(), dataset=digits(), out_dir=tmp_path / "b", qat=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == before

    import keras

    tflite = tmp_path / "gelu.tflite"
    tflite.write_bytes(quantize_int8(keras.saving.load_model(gelu), representative=digits().x_train[:20],
                                     num_samples=20))
    res = CliRunner().invoke(cli, ["estimate", str(tflite), "-p", "nano33ble"])
    assert res.exit_code == 0, res.output
    assert "fits nano33ble: no (TFLite Micro cannot run it)" in res.output and "uses GELU" in res.output
    mcu, phone = json.loads(CliRunner().invoke(cli, ["estimate", str(tflite), "-p", "nano33ble", "-p", "rpi4",
                                                     "--json"]).output)
    assert mcu["fits"] is False and "GELU" in mcu["tflm_aborts"] and phone["tflm_aborts"] is None


@pytest.mark.slow
def test_a_model_of_any_input_size_is_deployed_at_the_datasets(tmp_path):
    """keras.Input((None, None, 1)), as fully convolutional models are written, crashed deploy with a
    TypeError; a microcontroller runs one fixed size, the data's."""
    import keras

    from tinynas.deploy.qat import QATSettings
    from tinynas.space.tflite_reader import tflite_info

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, activation="softmax")])
    src = tmp_path / "any_size.keras"
    model.save(src)
    result = deploy(model_path=src, profile=make_profile(), dataset=digits(), out_dir=tmp_path / "out",
                    firmware=False, qat=True, qat_settings=QATSettings(epochs=1), max_test_samples=40)
    assert result.metrics["dataset"]["model_input_shape"] == [8, 8, 1]
    assert result.metrics["qat"]["applied"] is True
    assert tflite_info((tmp_path / "out" / "model_int8.tflite").read_bytes()).inputs[0].shape == (1, 8, 8, 1)


def test_a_lambda_layer_is_refused_naming_the_fix(tmp_path):
    import keras

    from tinynas.errors import ModelFileError

    inp = keras.Input((8, 8, 1))
    out = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(keras.layers.Lambda(lambda t: t * 2.0)(inp)))
    src = tmp_path / "lambda.keras"
    keras.Model(inp, out).save(src)
    with pytest.raises(ModelFileError, match=r"lambda.keras: cannot load .*replace the Lambda layer with built-in layers"):
        deploy(model_path=src, profile=make_profile(), dataset=digits(), out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_custom_layer_without_a_config_still_quantizes():
    """Looking for recurrent layers reads each layer's config; a custom layer without one (fine for a
    model built in memory) is not refused for it."""
    import keras

    from tinynas.deploy.quantize import quantize_int8

    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

        def get_config(self):
            raise NotImplementedError

    inp = keras.Input((8,))
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(Doubler()(inp)))
    x = np.random.default_rng(0).uniform(size=(10, 8)).astype("float32")
    assert quantize_int8(model, representative=x, num_samples=10)[4:8] == b"TFL3"


@pytest.mark.slow
def test_an_op_left_in_float_is_said_and_recorded(tmp_path, caplog):
    """The converter leaves an op without an int8 kernel (SIN here; an unrolled LSTM's SPLIT for some weights) in
    float between DEQUANTIZE and QUANTIZE. TFLite Micro runs it, so nothing failed; the engineer is now told, as the
    board runs it with a float kernel and float buffers."""
    import keras

    @keras.saving.register_keras_serializable("tinynas_mcu_tests")
    class Sine(keras.layers.Layer):
        def call(self, x):
            return keras.ops.sin(x)

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    h = Sine()(keras.layers.Dense(16)(keras.layers.Flatten()(inp)))
    src = tmp_path / "sine.keras"
    keras.Model(inp, keras.layers.Dense(10, activation="softmax")(h)).save(src)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="tinynas.deploy.deployer"):
        result = CliRunner().invoke(cli, ["deploy", str(src), "--profile", "nano33ble", "--dataset", "digits",
                                          "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "float ops: SIN (no int8 kernel: they run in float on the board)" in result.output
    assert json.loads((out / "metrics.json").read_text())["float_ops"] == ["SIN"]
    assert "AddSin()" in (out / "op_resolver.h").read_text()
    assert any("computes SIN in float" in r.getMessage() for r in caplog.records)
    # A model that is int8 throughout has no such entry
    plain = tmp_path / "plain.keras"
    _flat_model(rescale=None).save(plain)
    result = CliRunner().invoke(cli, ["deploy", str(plain), "--profile", "nano33ble", "--dataset", "digits",
                                      "--out", str(tmp_path / "plain")])
    assert result.exit_code == 0 and "float ops" not in result.output
    assert "float_ops" not in json.loads((tmp_path / "plain" / "metrics.json").read_text())


@pytest.mark.slow
def test_a_binary_classifier_with_one_score_deploys_as_two_class_scores(tmp_path):
    """A two-class model often ends in Dense(1, sigmoid), or a logit trained with from_logits=True: deploy refused
    it ("the model has 1 outputs but dataset ... has 2 classes"). Its Dense(1) now becomes Dense(2) with softmax
    over (-z/2, z/2), which is (1 - p, p), so the firmware and the int8 checks read the top score as the class,
    as for any model, and that is Keras's p > 0.5."""
    import keras

    from tinynas.deploy.deployer import _two_class_scores
    from tinynas.deploy.interpreter import read_model_io
    from tinynas.deploy.quantize import quantize_int8

    ds = digits()
    data = tmp_path / "odd.npz"  # odd digits against even ones
    np.savez(data, **{f"x_{split}": getattr(ds, f"x_{split}") for split in ("train", "val", "test")},
             **{f"y_{split}": getattr(ds, f"y_{split}") % 2 for split in ("train", "val", "test")})

    def binary(*head) -> keras.Model:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                  keras.layers.Dense(16, activation="relu"), *head])
        logit = not isinstance(head[-1], keras.layers.Activation) and head[-1].activation.__name__ == "linear"
        model.compile("adam", keras.losses.BinaryCrossentropy(from_logits=logit))
        model.fit(ds.x_train, ds.y_train % 2, epochs=15, verbose=0)
        return model

    # A sigmoid in an Activation layer after the Dense(1): the same scores in Keras, Dense(2) after the change.
    model = binary(keras.layers.Dense(1, name="score"), keras.layers.Activation("sigmoid"))
    two, record = _two_class_scores(model, model_path=Path("model.keras"), dataset=load_dataset(data))
    p = model.predict(ds.x_test, verbose=0)[:, 0]
    np.testing.assert_allclose(two.predict(ds.x_test, verbose=0), np.stack([1 - p, p], axis=1), atol=1e-6)
    assert record["layer"] == "score" and record["output"] == "sigmoid probability"
    assert [type(layer).__name__ for layer in two.layers[-2:]] == ["Dense", "Dense"]

    for activation, said in (("sigmoid", "sigmoid probability"), (None, "logit")):
        model = binary(keras.layers.Dense(1, activation=activation, name="score"))
        src, out = tmp_path / f"{activation}.keras", tmp_path / f"out_{activation}"
        model.save(src)
        keras_acc = float(np.mean((model.predict(ds.x_test, verbose=0)[:, 0] > (0.5 if activation else 0.0))
                                  == ds.y_test % 2))
        result = CliRunner().invoke(cli, ["deploy", str(src), "--profile", "nano33ble", "--dataset", str(data),
                                          "--no-qat", "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert (f"output: one {said} for class '1' from layer 'score', deployed as Dense(2) with "
                "softmax(-z/2, z/2) = (1 - p, p)") in result.output
        m = json.loads((out / "metrics.json").read_text())
        assert m["binary_output"] == {"output": said, "layer": "score", "positive_class": "1",
                                      "deployed_as": "Dense(2) with softmax(-z/2, z/2) = (1 - p, p)"}
        assert m["float_accuracy"] == pytest.approx(keras_acc) and keras_acc > 0.8
        assert abs(m["int8_accuracy"] - keras_acc) <= 0.03
        assert read_model_io((out / "model_int8.tflite").read_bytes()).output.shape == (1, 2)

    keras.utils.set_random_seed(0)
    tanh = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(1, activation="tanh", name="score")])
    tanh.save(tmp_path / "tanh.keras")
    (tmp_path / "sigmoid.tflite").write_bytes(
        quantize_int8(keras.saving.load_model(tmp_path / "sigmoid.keras"), representative=ds.x_train[:50]))
    for name, said in (("tanh.keras", "from layer 'score' (Dense, activation tanh)"),
                       ("sigmoid.tflite", "pass the Keras model it was converted from")):
        result = CliRunner().invoke(cli, ["deploy", str(tmp_path / name), "--profile", "nano33ble", "--dataset",
                                          str(data), "--out", str(tmp_path / "refused")])
        assert result.exit_code == 1 and said in str(result.exception), result.output
        assert not (tmp_path / "refused").exists()


def _normalized_motion_model(*, layer_norm: bool, epochs: int = 0):
    """A 1D CNN on BasicMotions' raw accelerometer and gyroscope series, with or without a LayerNormalization
    after its first convolution."""
    import keras

    keras.utils.set_random_seed(0)
    L = keras.layers
    ds = load_dataset("basicmotions")
    model = keras.Sequential([keras.Input(ds.x_train.shape[1:]), L.Conv1D(8, 5, activation="relu"),
                              *([L.LayerNormalization()] if layer_norm else []), L.GlobalAveragePooling1D(),
                              L.Dense(len(ds.class_names), activation="softmax")])
    if epochs:
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(ds.x_train, ds.y_train, epochs=epochs, verbose=0)
    return model, ds


def test_the_ops_int8_gets_wrong_are_named_and_others_are_not():
    """LayerNormalization on raw sensor values computes x * scale and subtracts the mean's product after it:
    two large int8 numbers whose difference is small, hundreds of int8 steps off. Without it no op strays."""
    from tinynas.deploy.quantize import ERROR_STEPS_FLAG, int8_error_ops

    model, ds = _normalized_motion_model(layer_norm=True)
    worst = int8_error_ops(model, representative=ds.x_train)
    assert worst and worst[0]["op"] == "MUL" and worst[0]["tensor"].startswith("layer_normalization")
    assert worst[0]["error_steps"] > 100 and all(op["error_steps"] > ERROR_STEPS_FLAG for op in worst)
    assert [op["error_steps"] for op in worst] == sorted((op["error_steps"] for op in worst), reverse=True)
    model, ds = _normalized_motion_model(layer_norm=False)
    assert int8_error_ops(model, representative=ds.x_train) == []


@pytest.mark.slow
def test_deploy_names_the_ops_that_lose_accuracy_in_int8(tmp_path):
    model, _ = _normalized_motion_model(layer_norm=True, epochs=60)
    model.save(tmp_path / "motion.keras")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["deploy", str(tmp_path / "motion.keras"), "--profile", "nano33ble",
                                      "--dataset", "basicmotions", "--no-qat", "--out", str(out)])
    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["float_accuracy"] - m["int8_accuracy"] > 0.01, result.output
    assert m["int8_error_ops"][0]["tensor"].startswith("layer_normalization"), m["int8_error_ops"]
    assert "int8 error: the ops furthest from float, in int8 steps (rounding alone: 0.3): MUL 'layer_norm" in (
        result.output)
