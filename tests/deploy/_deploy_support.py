"""Shared, process-cached fixtures' work for the deploy tests: one small digits model, trained once."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np

from tinynas.hardware.profile import Ecosystem, HardwareProfile, LatencyModel, SerialSettings

# Removed when the test process exits (TemporaryDirectory's finalizer).
_WORK_DIR = tempfile.TemporaryDirectory(prefix="tinynas_deploy_tests_")
_WORK = Path(_WORK_DIR.name)


def make_profile(*, id: str = "test-board", sram_bytes: int = 256 * 1024, flash_bytes: int = 1024 * 1024,
                 reserved_sram_bytes: int = 16 * 1024, runtime_flash_bytes: int = 96 * 1024,
                 default_template: str = "cmake-cortexm") -> HardwareProfile:
    """A Cortex-M4-class board profile with the budgets a test needs."""
    return HardwareProfile(
        id=id, name=f"Test board {id}", kind="mcu", core="cortex-m4f", clock_hz=64_000_000,
        sram_bytes=sram_bytes, flash_bytes=flash_bytes, reserved_sram_bytes=reserved_sram_bytes,
        runtime_flash_bytes=runtime_flash_bytes, kernel_library="cmsis-nn", runtime="tflm",
        latency=LatencyModel(cycles_per_mac={"default": 4.0}, cycles_per_element={"default": 2.0},
                             op_overhead_cycles=2000.0),
        serial=SerialSettings(), ecosystem=Ecosystem(default_template=default_template, cmake_cpu="cortex-m4"),
    )


@functools.lru_cache(maxsize=None)
def digits():
    from tinynas.data import load_dataset

    return load_dataset("digits", seed=0)


def small_cnn(input_shape, num_classes: int = 10, *, seed: int = 0):
    """Conv+BN+ReLU, max pool, conv, global average pool, dense, softmax: a typical tiny model."""
    import keras

    keras.utils.set_random_seed(seed)
    L = keras.layers
    inp = keras.Input(input_shape)
    x = L.Conv2D(16, 3, padding="same", use_bias=False)(inp)
    x = L.BatchNormalization()(x)
    x = L.ReLU(max_value=6.0)(x)
    x = L.MaxPooling2D()(x)
    x = L.Conv2D(24, 3, padding="same", activation="relu")(x)
    x = L.Flatten()(x)
    x = L.Dense(32, activation="relu")(x)
    x = L.Dense(num_classes)(x)
    out = L.Softmax()(x)
    return keras.Model(inp, out)


@functools.lru_cache(maxsize=None)
def trained_digits_keras() -> Path:
    """model.keras: the small CNN trained on digits (about 96 % test accuracy), saved once per process."""
    ds = digits()
    model = small_cnn(ds.input_shape)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(ds.x_train, ds.y_train, epochs=12, batch_size=32, verbose=0)
    path = _WORK / "digits.keras"
    model.save(path)
    return path


@functools.lru_cache(maxsize=None)
def digits_int8() -> bytes:
    """The PTQ int8 flatbuffer of ``trained_digits_keras``."""
    import keras

    from tinynas.deploy.quantize import quantize_int8

    model = keras.saving.load_model(trained_digits_keras())
    return quantize_int8(model, representative=digits().x_train[:200])


@functools.lru_cache(maxsize=None)
def float_only_tflite() -> bytes:
    """A float32 .tflite of an untrained small model (converted without quantization)."""
    import tensorflow as tf

    model = small_cnn((8, 8, 1))
    return bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())


def float_accuracy(model, x, y) -> float:
    return float(np.mean(np.asarray(model.predict(x, verbose=0)).argmax(axis=1) == y))


def untrained_attention_model(num_classes: int = 10):
    """An untrained one-block tinyformer on digits' 8x8x1 input: a model with BATCH_MATMUL, which the
    Arduino TFLite Micro libraries have no kernel for."""
    from tinynas.space import Arch, get_space
    from tinynas.space.keras_builder import build_keras_model

    space = get_space("tinyformer", input_shape=(8, 8, 1), num_classes=num_classes)
    arch = Arch.from_dict("tinyformer", dict(tokenizer="p4", embed_dim=16, depth=1, heads=1, ffn_ratio=1,
                                             ffn_activation="relu", pooling="mean", positional="none"))
    return build_keras_model(space.graph(arch), seed=0)
