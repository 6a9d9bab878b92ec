"""The ``Dataset`` record every later stage reads: splits, input shape, classes, scaling.

Loaders (``tinynas.data.sources``) produce it; the trainer trains on it, deploy
writes its ``input_scaling`` into the firmware header, and caches key results
on its ``fingerprint``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from tinynas.data.features import AudioFrontEnd, ImageFrontEnd
from tinynas.errors import DatasetError


@dataclass(frozen=True)
class InputScaling:
    """How a raw sensor/pixel value becomes the model's float input: ``x = raw * scale + offset``.

    The firmware applies the same affine map before quantizing into the int8
    input tensor, so ``description`` is written into the generated header.
    """

    scale: float = 1.0
    offset: float = 0.0
    description: str = "values used as they are"

    def apply(self, raw: np.ndarray) -> np.ndarray:
        return (np.asarray(raw, dtype=np.float32) * np.float32(self.scale) + np.float32(self.offset)).astype(np.float32)

    def formula(self, spec: str = "") -> str:
        """``x = raw * scale + offset`` as a reader writes it: a negative offset as ``- 0.75``, not ``+ -0.75``;
        ``spec`` formats the numbers (default: every digit, as the firmware header needs them)."""
        def number(value: float) -> str:
            return format(float(value), spec) if spec else repr(float(value))

        return f"x = raw * {number(self.scale)} {'-' if self.offset < 0 else '+'} {number(abs(self.offset))}"

    def to_json(self) -> dict[str, Any]:
        return {"scale": float(self.scale), "offset": float(self.offset), "description": self.description}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "InputScaling":
        try:
            return cls(scale=float(data["scale"]), offset=float(data["offset"]), description=str(data["description"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"input_scaling needs scale, offset and description, got {data!r} ({exc})") from None


def _counts(y: np.ndarray, num_classes: int) -> list[int]:
    return np.bincount(y.astype(np.int64), minlength=num_classes).tolist() if len(y) else [0] * num_classes


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train/validation/test splits of one classification task.

    Features are float32, images NHWC ``(N, H, W, C)`` and sequences ``(N, L, C)``;
    labels are int64 class indices into ``class_names``. ``fingerprint`` is the
    SHA-1 of the arrays, the split seed and the loader options: equal
    fingerprints mean equal data, on any machine.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    input_scaling: InputScaling
    source: str
    fingerprint: str
    options: dict[str, Any] = field(default_factory=dict)
    # graph datasets: the fixed (nodes, nodes) adjacency every sample's (nodes, features) rows live on
    adjacency: np.ndarray | None = None
    # a node task: each sample asks about one node, marked 1 in its last feature (else a graph task)
    node_task: bool = False
    # what the loader did to each raw sample before input_scaling (resize, colour to grey), "" when nothing
    preprocessing: str = ""
    # the features' front end when they were computed from audio (a WAV folder), for firmware to repeat
    audio_front_end: AudioFrontEnd | None = None
    # the colour mode and resize of an image folder's pictures, for firmware to repeat on camera frames
    image_front_end: ImageFrontEnd | None = None
    # how the validation and test splits were made (given by the source, or carved and how), "" when unknown
    splits: str = ""

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 3

    @property
    def is_graph(self) -> bool:
        return self.adjacency is not None

    def require_splits(self, *splits: str, needed_for: str) -> None:
        """DatasetError when one of ``splits`` ("train", "val", "test") holds no sample.

        A dataset of a few samples splits into empty validation or test sets (15 % each,
        rounded per class), and what needs them would fail late: a search after its
        trainings, on a mean of nothing.
        """
        sizes = {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}
        empty = [{"train": "training", "val": "validation"}.get(name, name) for name in splits if sizes[name] == 0]
        if empty:
            raise DatasetError(
                f"{self.name}: {sum(sizes.values())} samples split into {sizes['train']} train / {sizes['val']} "
                f"validation / {sizes['test']} test; {needed_for} needs {' and '.join(empty)} samples. Add samples "
                "(15 % of each class go to validation and 15 % to test), or give splits of your own "
                "(x_test/y_test and x_val/y_val in a .npz; test/ and val/ folders beside train/ in an image or "
                "WAV folder)"
            )

    def structure_json(self) -> dict[str, Any]:
        """What the input is made of: a graph (nodes, edges, degree range), a sequence or an image."""
        shape = self.input_shape
        if self.adjacency is not None:
            a = np.asarray(self.adjacency)
            off = (a != 0) & ~np.eye(len(a), dtype=bool)
            degree = off.sum(axis=1)
            symmetric = bool(np.array_equal(off, off.T))
            edges = int(off.sum() // 2) if symmetric else int(off.sum())
            return {"kind": "graph", "task": "node" if self.node_task else "graph",
                    "nodes": int(len(a)), "edges": edges, "directed": not symmetric,
                    "self_loops": int(np.count_nonzero(np.diag(a))),
                    "degree_range": [int(degree.min()), int(degree.max())], "node_features": int(shape[1])}
        if len(shape) == 2:
            return {"kind": "sequence", "length": int(shape[0]), "channels": int(shape[1])}
        return {"kind": "image", "height": int(shape[0]), "width": int(shape[1]), "channels": int(shape[2])}

    def to_json(self) -> dict[str, Any]:
        """Everything but the arrays: what ``tinynas datasets inspect --json`` prints and runs record."""
        k = self.num_classes
        x = self.x_train
        return {
            "name": self.name,
            "source": self.source,
            "input_shape": list(self.input_shape),
            "structure": self.structure_json(),
            "num_classes": k,
            "class_names": list(self.class_names),
            "sizes": {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)},
            "counts": {
                "train": _counts(self.y_train, k),
                "val": _counts(self.y_val, k),
                "test": _counts(self.y_test, k),
            },
            "value_range": [float(x.min()), float(x.max())] if x.size else [0.0, 0.0],
            "input_scaling": self.input_scaling.to_json(),
            "preprocessing": self.preprocessing,
            "splits": self.splits,
            "audio_front_end": None if self.audio_front_end is None else self.audio_front_end.to_json(),
            "image_front_end": None if self.image_front_end is None else self.image_front_end.to_json(),
            "fingerprint": self.fingerprint,
            "options": dict(self.options),
        }


def fingerprint_arrays(arrays: Mapping[str, np.ndarray], *, meta: Mapping[str, Any]) -> str:
    """SHA-1 over each array's dtype, shape and bytes plus canonical JSON of ``meta``.

    ``meta`` holds the loader name, its options and the split seed, so the same
    file split differently has another fingerprint.
    """
    h = hashlib.sha1()
    h.update(json.dumps(dict(meta), sort_keys=True, default=str).encode())
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()
