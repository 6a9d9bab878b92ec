"""Offline datasets that need no files: scikit-learn's digits, generated mnist1d, synthetic sets.

They let a user try tinynas without data and let tests train on real, small
tasks. mnist1d is generated with the package's own generator (never its
download) and cached under ``tinynas_home()``.
"""

from __future__ import annotations

import logging

import numpy as np

from tinynas.data.base import RawData, register_dataset
from tinynas.data.cache import save_npz_atomic, tinynas_home
from tinynas.data.types import InputScaling
from tinynas.errors import DatasetError

log = logging.getLogger(__name__)

_DIGIT_NAMES = tuple(str(i) for i in range(10))


@register_dataset("digits", kind="built-in",
                  description="scikit-learn's 8x8 handwritten digits: 1,797 grey images 8x8x1, 10 classes")
def load_digits() -> RawData:
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    raw = bunch.images.astype(np.float32)[..., None]  # 0..16 ink levels
    scaling = InputScaling(scale=1.0 / 16.0, offset=0.0, description="pixels 0..16 divided by 16")
    return RawData(x=scaling.apply(raw), y=bunch.target.astype(np.int64), class_names=_DIGIT_NAMES,
                   scaling=scaling, source="sklearn.datasets.load_digits (offline, bundled with scikit-learn)")


@register_dataset("mnist1d", kind="built-in",
                  description="MNIST-1D (Greydanus 2020) generated offline: sequences 40x1, 10 classes, "
                              "4,000 train + 1,000 test")
def load_mnist1d(*, num_samples: int = 5000, generator_seed: int = 42) -> RawData:
    if num_samples < 100:
        raise DatasetError(f"mnist1d option num_samples must be at least 100, got {num_samples}")
    path = tinynas_home() / "datasets" / f"mnist1d_n{num_samples}_s{generator_seed}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in ("x", "y", "x_test", "y_test")}
    else:
        data = _generate_mnist1d(num_samples, generator_seed)
        save_npz_atomic(path, **data)
        log.info("generated mnist1d into %s", path)
    return RawData(
        x=data["x"][..., None].astype(np.float32), y=data["y"].astype(np.int64),
        x_test=data["x_test"][..., None].astype(np.float32), y_test=data["y_test"].astype(np.int64),
        class_names=_DIGIT_NAMES,
        scaling=InputScaling(description="mnist1d signal, already standardized by its generator (mean 0, std 1)"),
        source=f"mnist1d.data.make_dataset (generated offline, seed {generator_seed}, cached in {path})",
    )


def _generate_mnist1d(num_samples: int, generator_seed: int) -> dict[str, np.ndarray]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = int(num_samples)
    args.seed = int(generator_seed)
    # make_dataset seeds numpy's global generator; give the caller's state back.
    state = np.random.get_state()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(state)
    return {"x": data["x"].astype(np.float32), "y": data["y"].astype(np.int64),
            "x_test": data["x_test"].astype(np.float32), "y_test": data["y_test"].astype(np.int64)}


@register_dataset("synthetic-image", kind="synthetic",
                  description="random class templates plus noise, images image_size x image_size x channels")
def load_synthetic_image(*, num_samples: int = 600, image_size: int = 16, channels: int = 1,
                         num_classes: int = 4, noise: float = 0.5, generator_seed: int = 0) -> RawData:
    """Each class is a smooth random template; samples add Gaussian noise and a small shift."""
    if num_samples < 2 * num_classes or image_size < 4 or channels < 1 or num_classes < 2:
        raise DatasetError(
            "synthetic-image needs num_samples >= 2*num_classes, image_size >= 4, channels >= 1, num_classes >= 2"
        )
    rng = np.random.default_rng(generator_seed)
    coarse = rng.normal(size=(num_classes, 4, 4, channels))
    reps = -(-image_size // 4)
    templates = np.repeat(np.repeat(coarse, reps, axis=1), reps, axis=2)[:, :image_size, :image_size, :]
    y = np.arange(num_samples) % num_classes
    shifts = rng.integers(-1, 2, size=(num_samples, 2))
    x = np.empty((num_samples, image_size, image_size, channels), dtype=np.float32)
    for i in range(num_samples):
        x[i] = np.roll(templates[y[i]], tuple(shifts[i]), axis=(0, 1))
    x += rng.normal(scale=noise, size=x.shape).astype(np.float32)
    return RawData(x=x, y=y, class_names=tuple(f"class{c}" for c in range(num_classes)),
                   scaling=InputScaling(description="synthetic float values, used as they are"),
                   source=f"synthetic-image (generator seed {generator_seed})")


@register_dataset("synthetic-seq", kind="synthetic",
                  description="noisy sine waves whose frequency depends on the class, sequences length x channels")
def load_synthetic_seq(*, num_samples: int = 600, length: int = 64, channels: int = 3, num_classes: int = 4,
                       noise: float = 0.3, generator_seed: int = 0) -> RawData:
    if num_samples < 2 * num_classes or length < 8 or channels < 1 or num_classes < 2:
        raise DatasetError("synthetic-seq needs num_samples >= 2*num_classes, length >= 8, channels >= 1, num_classes >= 2")
    rng = np.random.default_rng(generator_seed)
    y = np.arange(num_samples) % num_classes
    t = np.arange(length, dtype=np.float32)[None, :, None]
    freq = (1.0 + y[:, None, None]) / length * 2.0
    phase = rng.uniform(0, 2 * np.pi, size=(num_samples, 1, channels))
    x = np.sin(2 * np.pi * freq * t + phase) + rng.normal(scale=noise, size=(num_samples, length, channels))
    return RawData(x=x.astype(np.float32), y=y, class_names=tuple(f"class{c}" for c in range(num_classes)),
                   scaling=InputScaling(description="synthetic float values, used as they are"),
                   source=f"synthetic-seq (generator seed {generator_seed})")
