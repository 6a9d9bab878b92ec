"""Fit a dataset's features to a graph's input shape before training.

A graph may take another resolution than the dataset gives (mcunet's
resolution decision): images are then resized once per (dataset, split,
resolution) with bilinear interpolation (``tf.image.resize``, no antialiasing,
as a camera pipeline's scaler would) and memoized. Sequences may be fed to a
graph that holds them as (L, 1, C) images: same values, only the layout names
differ, so they are reshaped. Anything else is a clear TrainError.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import numpy as np

from tinynas.errors import TrainError

log = logging.getLogger(__name__)

_MEMO: "OrderedDict[tuple[str, str, tuple[int, ...]], np.ndarray]" = OrderedDict()
_MEMO_ENTRIES = 12


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def check_input_shape(data_shape: tuple[int, ...], model_shape: tuple[int, ...], *, dataset: str) -> str:
    """How to feed ``data_shape`` samples to a model taking ``model_shape``: "same", "reshape" or "resize".

    Raises TrainError naming both shapes and the fix.
    """
    data_shape, model_shape = tuple(data_shape), tuple(model_shape)
    if data_shape == model_shape:
        return "same"
    if len(data_shape) == 3 and len(model_shape) == 3:
        if data_shape[2] != model_shape[2]:
            raise TrainError(
                f"model input {model_shape} has {model_shape[2]} channels but dataset {dataset!r} gives "
                f"{data_shape} with {data_shape[2]}; build the architecture for the dataset's input shape "
                f"{data_shape} (e.g. get_space(name, input_shape={data_shape}, ...))"
            )
        return "resize"
    if _squeezed(data_shape) == _squeezed(model_shape):
        return "reshape"
    raise TrainError(
        f"model input shape {model_shape} does not match dataset {dataset!r} samples of shape {data_shape}; "
        f"build the architecture for input shape {data_shape} or pick a dataset with samples of shape {model_shape}"
    )


def fit_inputs(x: np.ndarray, model_shape: tuple[int, ...], *, dataset: str, fingerprint: str, split: str) -> np.ndarray:
    """``x`` laid out for ``model_shape`` (resized or reshaped as ``check_input_shape`` says)."""
    how = check_input_shape(tuple(x.shape[1:]), tuple(model_shape), dataset=dataset)
    if how == "same":
        return x
    if how == "reshape":
        return x.reshape((len(x), *model_shape))
    key = (fingerprint, split, tuple(model_shape))
    if key in _MEMO:
        _MEMO.move_to_end(key)
        return _MEMO[key]
    import tensorflow as tf

    log.info("resizing %s/%s from %s to %s (bilinear)", dataset, split, x.shape[1:], model_shape)
    out = np.empty((len(x), *model_shape), dtype=np.float32)
    for start in range(0, len(x), 4096):  # chunks bound the memory of large sets
        out[start:start + 4096] = tf.image.resize(x[start:start + 4096], model_shape[:2], method="bilinear").numpy()
    _MEMO[key] = out
    while len(_MEMO) > _MEMO_ENTRIES:
        _MEMO.popitem(last=False)
    return out
