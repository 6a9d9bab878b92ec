"""Datasets fetched through ``keras.datasets`` for users with the internet: mnist, fashion_mnist, cifar10.

Keras keeps the downloaded files in its own cache (``$KERAS_HOME`` or
``~/.keras/datasets``), so the second load is offline. Without the internet and
without a cached copy the loader fails within seconds and says how to pass
local files instead.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

import numpy as np

from tinynas.data.base import RawData, register_dataset
from tinynas.data.types import InputScaling
from tinynas.errors import DatasetError

log = logging.getLogger(__name__)

# Where each download comes from (host, port) and the file keras leaves in its cache.
# Tests point the hosts at a closed local port to exercise the offline path for real.
DOWNLOAD_HOSTS: dict[str, tuple[str, int]] = {
    "mnist": ("storage.googleapis.com", 443),
    "fashion_mnist": ("storage.googleapis.com", 443),
    "cifar10": ("www.cs.toronto.edu", 443),
}
_CACHED_FILES = {
    "mnist": "datasets/mnist.npz",
    "fashion_mnist": "datasets/fashion-mnist/t10k-images-idx3-ubyte.gz",
    "cifar10": "datasets/cifar-10-batches-py-target",
}
CONNECT_TIMEOUT_S = 3.0

_CLASSES = {
    "mnist": tuple(str(i) for i in range(10)),
    "fashion_mnist": ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                      "ankle-boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}


def keras_cache_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser()


def _is_cached(name: str) -> bool:
    return (keras_cache_dir() / _CACHED_FILES[name]).exists()


def _check_reachable(name: str) -> None:
    host, port = DOWNLOAD_HOSTS[name]
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            return
    except OSError as exc:
        raise DatasetError(
            f"dataset {name!r} needs the internet to download from {host} the first time ({exc}); "
            "offline, pass local files instead: tinynas train ARCH.json --dataset path/to/folder_or.npz "
            "(a folder with one sub-folder of images per class, or a .npz with x, y, x_test, y_test)"
        ) from None


def _download(name: str) -> Any:
    if not _is_cached(name):
        _check_reachable(name)
        log.info("downloading %s through keras.datasets into %s", name, keras_cache_dir())
    import keras

    loader = {"mnist": keras.datasets.mnist, "fashion_mnist": keras.datasets.fashion_mnist,
              "cifar10": keras.datasets.cifar10}[name]
    try:
        return loader.load_data()
    except Exception as exc:  # network errors surface as several exception types
        raise DatasetError(
            f"downloading {name!r} failed ({type(exc).__name__}: {exc}); check the connection or pass local files: "
            "--dataset path/to/folder_or.npz"
        ) from None


def _as_raw(name: str, data: Any) -> RawData:
    (x, y), (x_test, y_test) = data
    x = np.asarray(x)
    x_test = np.asarray(x_test)
    if x.ndim == 3:  # grey images come without a channel axis
        x, x_test = x[..., None], x_test[..., None]
    scaling = InputScaling(scale=1.0 / 255.0, offset=0.0, description="pixels 0..255 divided by 255")
    return RawData(x=scaling.apply(x), y=np.asarray(y).reshape(-1), x_test=scaling.apply(x_test),
                   y_test=np.asarray(y_test).reshape(-1), class_names=_CLASSES[name], scaling=scaling,
                   source=f"keras.datasets.{name} (cached in {keras_cache_dir() / 'datasets'})")


@register_dataset("mnist", kind="download", description="MNIST digits 28x28x1, 10 classes (downloads once via Keras)")
def load_mnist() -> RawData:
    return _as_raw("mnist", _download("mnist"))


@register_dataset("fashion_mnist", kind="download",
                  description="Fashion-MNIST 28x28x1, 10 classes (downloads once via Keras)")
def load_fashion_mnist() -> RawData:
    return _as_raw("fashion_mnist", _download("fashion_mnist"))


@register_dataset("cifar10", kind="download", description="CIFAR-10 32x32x3, 10 classes (downloads once via Keras)")
def load_cifar10() -> RawData:
    return _as_raw("cifar10", _download("cifar10"))
