"""The dataset registry and ``load_dataset``: one entry point for named and file datasets.

A source is a function returning ``RawData`` (features already scaled, labels,
class names, optional fixed test split). ``load_dataset`` validates it, splits
it deterministically for a seed and fingerprints it, so every loader gets the
same splits, checks and fingerprint for free.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import logging
import typing
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from tinynas.data.features import AudioFrontEnd, ImageFrontEnd
from tinynas.data.splits import group_split, stratified_split
from tinynas.data.types import Dataset, InputScaling, fingerprint_arrays
from tinynas.errors import DatasetError
from tinynas.registry import Registry

log = logging.getLogger(__name__)


@dataclass
class RawData:
    """What a loader returns before splitting: float32 features (scaled) and int labels."""

    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]
    scaling: InputScaling
    source: str
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    # a fixed validation split (a folder's val/ or valid/); None: carved from x, y
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    # the group of each sample of x (a subject, a session): splits carved from x keep groups whole
    groups: np.ndarray | None = None
    # a fixed graph the samples live on: (nodes, nodes) weights, x is then (N, nodes, features)
    adjacency: np.ndarray | None = None
    # with an adjacency: each sample asks about the node its last feature marks (a node task)
    node_task: bool = False
    # what the loader did to each raw sample before ``scaling`` that firmware must do too
    # (resizing, colour to grey); "" when nothing. Not in the fingerprint: the options that cause it are.
    preprocessing: str = ""
    # a WAV folder's feature front end (firmware computes it from microphone samples); not in the fingerprint either
    audio_front_end: AudioFrontEnd | None = None
    # an image folder's colour mode and resize (firmware repeats them on camera frames); not in the fingerprint
    image_front_end: ImageFrontEnd | None = None


@dataclass(frozen=True)
class DatasetSource:
    """A registered loader. Named sources take only keyword options; path kinds take the path first."""

    name: str
    load: Callable[..., RawData]
    kind: str  # "built-in", "synthetic", "download" or "path"
    description: str
    matches: Callable[[Path], bool] | None = None
    # options added after datasets were fingerprinted: at their default they leave the fingerprint as it
    # was, so runs and caches made before them still match
    later_options: tuple[str, ...] = ()

    def option_types(self) -> dict[str, Any]:
        """Keyword options of the loader with their annotated types (what ``-o key=value`` may set)."""
        hints = typing.get_type_hints(self.load)
        params = inspect.signature(self.load).parameters
        return {n: hints.get(n, str) for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}

    def option_defaults(self) -> dict[str, Any]:
        params = inspect.signature(self.load).parameters
        return {n: p.default for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "options": {k: v for k, v in self.option_defaults().items()},
        }


DATASETS: Registry[DatasetSource] = Registry("dataset", error=DatasetError)
PATH_KINDS: Registry[DatasetSource] = Registry("dataset path kind", error=DatasetError)

_BUILTIN_MODULES = ("builtin", "glyphs", "downloads", "images", "audio", "tabular", "graphs", "timeseries")


def register_dataset(name: str, *, kind: str, description: str) -> Callable[[Callable[..., RawData]], Callable[..., RawData]]:
    """Decorator: register a named loader ``f(*, option=default, ...) -> RawData``."""

    def deco(fn: Callable[..., RawData]) -> Callable[..., RawData]:
        DATASETS.add(name, DatasetSource(name=name, load=fn, kind=kind, description=description))
        return fn

    return deco


def register_path_kind(
    name: str, *, matches: Callable[[Path], bool], description: str, later_options: tuple[str, ...] = ()
) -> Callable[[Callable[..., RawData]], Callable[..., RawData]]:
    """Decorator: register a loader ``f(path, *, option=default, ...) -> RawData`` for paths ``matches`` accepts.

    ``later_options``: options added after the kind's datasets were first fingerprinted (DatasetSource)."""

    def deco(fn: Callable[..., RawData]) -> Callable[..., RawData]:
        PATH_KINDS.add(name, DatasetSource(name=name, load=fn, kind="path", description=description, matches=matches,
                                           later_options=later_options))
        return fn

    return deco


def _load_builtin_sources() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(f"tinynas.data.{module}")


def dataset_names() -> list[str]:
    """Names of the registered datasets (not the path kinds)."""
    _load_builtin_sources()
    return DATASETS.names()


def dataset_sources() -> list[DatasetSource]:
    """Every named source, then every path kind (what ``tinynas datasets list`` shows)."""
    _load_builtin_sources()
    return [DATASETS.get(n) for n in DATASETS.names()] + [PATH_KINDS.get(n) for n in PATH_KINDS.names()]


def resolve_source(name_or_path: str | Path) -> tuple[DatasetSource, Path | None]:
    """The source for a registered name, or the path kind that reads an existing path (a URL downloaded and
    an archive unpacked first: ``tinynas.data.remote``)."""
    _load_builtin_sources()
    text = str(name_or_path)
    if text in DATASETS:
        return DATASETS.get(text), None
    from tinynas.data.remote import local_path

    path = local_path(text)
    if path.exists():
        for kind in PATH_KINDS.names():
            src = PATH_KINDS.get(kind)
            assert src.matches is not None
            if src.matches(path):
                return src, path
        packed = next((s for s in (".rar", ".7z", ".tar.bz2", ".tar.xz") if path.name.lower().endswith(s)), None)
        raise DatasetError(
            f"{path}: not a dataset tinynas can read; "
            + (f"it is an archive ({packed}): unpack it and pass the folder it holds; " if packed else "")
            + "pass a folder with one sub-folder of images or "
            "WAV files per class, a .npz file with arrays x and y (and adjacency for a graph), a .csv file "
            "with a label column, a UCR/UEA .ts file, or a .zip, .tar or .tar.gz of one of these"
        )
    raise DatasetError(
        f"unknown dataset {text!r} and no such file or folder; known datasets: {', '.join(DATASETS.names())}; "
        "or pass a path or an https:// URL to an image/WAV folder's archive, a .npz, .csv or .ts file"
    )


def coerce_options(source: DatasetSource, options: Mapping[str, str]) -> dict[str, Any]:
    """Turn ``key=value`` strings (from the CLI) into the loader's typed options."""
    types = source.option_types()
    out: dict[str, Any] = {}
    for key, text in options.items():
        key = key.replace("-", "_")
        if key not in types:
            raise DatasetError(_unknown_option(source, key))
        ann = types[key]
        args = [a for a in typing.get_args(ann) if a is not type(None)] or [ann]
        target = args[0]
        if text.lower() in ("none", "") and type(None) in typing.get_args(ann):
            out[key] = None
            continue
        try:
            if target is bool:
                if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(text)
                out[key] = text.lower() in ("1", "true", "yes")
            else:
                out[key] = target(text)
        except (TypeError, ValueError):
            raise DatasetError(
                f"dataset option {key!r} of {source.name!r} must be of type {getattr(target, '__name__', target)}, got {text!r}"
            ) from None
    return out


def _unknown_option(source: DatasetSource, key: str) -> str:
    known = ", ".join(f"{k}={v!r}" for k, v in source.option_defaults().items()) or "(none)"
    return f"dataset {source.name!r} has no option {key!r}; its options: {known}"


def _check_raw(raw: RawData, where: str) -> None:
    for xs, ys, split in ((raw.x, raw.y, "x/y"), (raw.x_test, raw.y_test, "x_test/y_test"),
                          (raw.x_val, raw.y_val, "x_val/y_val")):
        if xs is None:
            continue
        if ys is None or len(xs) != len(ys):
            raise DatasetError(f"{where}: {split} have different lengths ({len(xs)} vs {None if ys is None else len(ys)})")
        if xs.ndim not in (3, 4):
            raise DatasetError(
                f"{where}: features must be images (N,H,W,C) or sequences (N,L,C), got shape {xs.shape}"
            )
        if not np.all(np.isfinite(xs)):
            raise DatasetError(f"{where}: features contain NaN or infinite values; clean or impute them first")
        if len(ys) and (ys.min() < 0 or ys.max() >= len(raw.class_names)):
            raise DatasetError(f"{where}: labels must lie in 0..{len(raw.class_names) - 1}")
    for xs, name in ((raw.x_test, "x_test"), (raw.x_val, "x_val")):
        if xs is not None and xs.shape[1:] != raw.x.shape[1:]:
            raise DatasetError(f"{where}: {name} samples have shape {xs.shape[1:]}, x has {raw.x.shape[1:]}")
    present = np.unique(raw.y)
    if len(raw.class_names) < 2 or len(present) < 2:
        raise DatasetError(
            f"{where}: a classifier needs at least 2 classes, found {len(present)} "
            f"({', '.join(raw.class_names[int(c)] for c in present)}); add samples of another class"
        )


def load_dataset(
    name_or_path: str | Path,
    *,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    **options: Any,
) -> Dataset:
    """Load a registered dataset or a file/folder and split it deterministically for ``seed``.

    Without a fixed test split the data is split stratified into
    train / validation / test by ``val_fraction`` and ``test_fraction``; with
    one (``x_test`` in a .npz, mnist1d, downloads) only validation is carved from
    the training data. ``options`` are the loader's own keyword options (see
    ``tinynas datasets list``). Raises DatasetError naming the file or option.
    """
    if not (0.0 < val_fraction < 1.0 and 0.0 <= test_fraction < 1.0 and val_fraction + test_fraction < 1.0):
        raise DatasetError(
            f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must be in (0, 1) and sum below 1"
        )
    source, path = resolve_source(name_or_path)
    allowed = source.option_types()
    for key in options:
        if key not in allowed:
            raise DatasetError(_unknown_option(source, key))
    raw = source.load(path, **options) if path is not None else source.load(**options)
    where = str(path) if path is not None else source.name
    raw.x = np.ascontiguousarray(raw.x, dtype=np.float32)
    raw.y = np.asarray(raw.y, dtype=np.int64)
    if raw.x_test is not None:
        raw.x_test = np.ascontiguousarray(raw.x_test, dtype=np.float32)
        raw.y_test = np.asarray(raw.y_test, dtype=np.int64)
    if raw.x_val is not None:
        raw.x_val = np.ascontiguousarray(raw.x_val, dtype=np.float32)
        raw.y_val = np.asarray(raw.y_val, dtype=np.int64)
    _check_raw(raw, where)
    if raw.adjacency is not None:
        from tinynas.data.graph_checks import checked_adjacency

        raw.adjacency = checked_adjacency(raw.adjacency, where=where, field="adjacency", nodes=raw.x.shape[1])

    # carve from x, y what the loader did not give as a split of its own
    carved = [f for f, given in ((test_fraction, raw.x_test), (val_fraction, raw.x_val)) if given is None]
    if not carved:
        parts = [np.arange(len(raw.y))]
    elif raw.groups is not None:
        parts = group_split(raw.groups, tuple(carved), y=raw.y, seed=seed)
    else:
        parts = stratified_split(raw.y, tuple(carved), seed=seed)
    splits = _splits_text(raw, carved=parts, seed=seed,
                          fractions={"test": test_fraction, "validation": val_fraction})
    train_idx = parts.pop()
    if raw.x_test is None:
        test_idx = parts.pop(0)
        x_test, y_test = raw.x[test_idx], raw.y[test_idx]
    else:
        x_test, y_test = raw.x_test, raw.y_test
    if raw.x_val is None:
        val_idx = parts.pop(0)
        x_val, y_val = raw.x[val_idx], raw.y[val_idx]
    else:
        x_val, y_val = raw.x_val, raw.y_val
    arrays = {"x": raw.x, "y": raw.y}
    if raw.x_test is not None:
        arrays.update(x_test=raw.x_test, y_test=raw.y_test)
    if raw.x_val is not None:  # only then, so the fingerprints of datasets without one stay as they were
        arrays.update(x_val=raw.x_val, y_val=raw.y_val)
    if raw.adjacency is not None:
        arrays.update(adjacency=raw.adjacency)
    defaults = source.option_defaults()
    used = {**defaults, **options}
    meta = {
        "loader": source.name,
        "options": {k: v for k, v in used.items() if not (k in source.later_options and v == defaults[k])},
        "seed": int(seed),
        "val_fraction": float(val_fraction) if raw.x_val is None else None,
        "test_fraction": float(test_fraction) if raw.x_test is None else None,
        "class_names": list(raw.class_names),
        "scaling": raw.scaling.to_json(),
    }
    if raw.node_task:
        meta["node_task"] = True
    if raw.groups is not None:  # the splits follow the groups, which the arrays do not hold
        meta["groups"] = hashlib.sha1(np.asarray(raw.groups).astype(str).astype("U").tobytes()).hexdigest()
        meta["group_split"] = "by class"  # groups are carved by class too: an older run's splits differ
    fingerprint = fingerprint_arrays(arrays, meta=meta)
    name, where_from = source.name if path is None else path.name, raw.source
    if path is not None and Path(str(name_or_path)).expanduser() != path:  # a URL or an archive, read from the cache
        name = Path(urllib.parse.urlsplit(str(name_or_path)).path).name or str(name_or_path)
        where_from = f"{raw.source}, from {name_or_path}"
    ds = Dataset(
        name=name,
        x_train=raw.x[train_idx], y_train=raw.y[train_idx],
        x_val=x_val, y_val=y_val,
        x_test=x_test, y_test=y_test,
        class_names=tuple(raw.class_names),
        input_scaling=raw.scaling,
        source=where_from,
        fingerprint=fingerprint,
        options={k: v for k, v in used.items()},
        adjacency=raw.adjacency,
        node_task=raw.node_task,
        preprocessing=raw.preprocessing,
        audio_front_end=raw.audio_front_end,
        image_front_end=raw.image_front_end,
        splits=splits,
    )
    log.info("dataset %s: %d train / %d val / %d test, shape %s, fingerprint %s",
             ds.name, len(ds.y_train), len(ds.y_val), len(ds.y_test), ds.input_shape, fingerprint[:12])
    return ds


def _splits_text(raw: RawData, *, carved: list[np.ndarray], seed: int, fractions: dict[str, float]) -> str:
    """How validation and test were made, for ``datasets inspect`` and the run's record: given by the
    source, or carved from the training data (by class, or by whole groups: how many went where)."""
    given = [name for name, x in (("validation", raw.x_val), ("test", raw.x_test)) if x is not None]
    cut = [name for name in ("test", "validation") if name not in given]  # the order of ``carved``
    texts = [f"{' and '.join(given)} as the source gives {'them' if len(given) > 1 else 'it'}"] if given else []
    rest = "the training data" if given else "the data"
    if cut and raw.groups is not None:
        groups = np.asarray(raw.groups).astype(str)
        counts = [len(np.unique(groups[idx])) for idx in carved]
        where = ", ".join(f"{n} {name}" for n, name in zip(counts, [*cut, "train"]))
        texts.append(f"{' and '.join(cut)} carved from {rest} as whole groups ({len(np.unique(groups))} "
                     f"groups: {where}), each class in each as far as the groups allow (seed {seed})")
    elif cut:
        shares = " and ".join(f"{name} {100 * fractions[name]:g} %" for name in cut)
        texts.append(f"{shares} of each class carved from {rest} at random (seed {seed})")
    return "; ".join(texts)


def inspect_dataset(name_or_path: str | Path, *, seed: int = 0, **options: Any) -> dict[str, Any]:
    """Sizes, shape, classes, counts per class, scaling and fingerprint of a dataset, as JSON."""
    return load_dataset(name_or_path, seed=seed, **options).to_json()
