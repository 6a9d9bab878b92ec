"""Array files a user hands in: ``.npz`` (x, y, optional x_test, y_test, x_val, y_val) and ``.csv`` sensor windows.

``.npz`` is read with ``allow_pickle=False``; a CSV holds one window per row,
its feature columns in time-major order, and a label column.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import numpy as np

from tinynas.data.base import RawData, register_path_kind
from tinynas.data.types import InputScaling
from tinynas.errors import DatasetError

log = logging.getLogger(__name__)


def _labels(y: np.ndarray, where: str, class_names: tuple[str, ...] | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Integer labels and class names from ints or strings (strings become sorted class names)."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise DatasetError(f"{where}: labels must be one class per sample (shape (N,)), got shape {y.shape}; "
                           "for one-hot labels store y.argmax(axis=1)")
    if y.dtype.kind in "US":
        names = class_names or tuple(sorted(set(y.astype(str).tolist())))
        index = {n: i for i, n in enumerate(names)}
        unknown = sorted(set(y.astype(str).tolist()) - set(index))
        if unknown:
            raise DatasetError(f"{where}: labels {unknown[:5]} are not among class_names {list(names)}")
        return np.asarray([index[v] for v in y.astype(str).tolist()], dtype=np.int64), names
    if y.dtype.kind not in "iub" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
        raise DatasetError(f"{where}: labels must be integers or strings, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if len(y) and y.min() < 0:
        raise DatasetError(f"{where}: labels must be 0..K-1, found {int(y.min())}")
    k = int(y.max()) + 1 if len(y) else 0
    return y, class_names or tuple(str(i) for i in range(k))


def _integer_scaling(x: np.ndarray) -> InputScaling:
    """Integer features to about 0..1 (or -1..1): pixels 0..255 divided by 255; a wider unsigned range (an ADC's
    12 or 16 bits) by the full range of the bits its largest value needs; signed values (raw IMU or audio
    samples) by half the range of theirs. The firmware applies the same factor to the raw values."""
    lo, hi = int(np.min(x)), int(np.max(x))
    if 0 <= lo and hi <= 255:
        return InputScaling(scale=1.0 / 255.0, description="integer values 0..255 divided by 255")
    if lo >= 0:
        top = 2 ** hi.bit_length() - 1
        return InputScaling(scale=1.0 / top, description=f"unsigned {hi.bit_length()}-bit integer values "
                                                         f"0..{top} divided by {top}")
    bits = max(hi.bit_length(), (-lo - 1).bit_length()) + 1
    half = 2 ** (bits - 1)
    return InputScaling(scale=1.0 / half, description=f"signed {bits}-bit integer values {-half}..{half - 1} "
                                                      f"divided by {half}")


def _features(x: np.ndarray, where: str, key: str, *, images: bool = False) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "iuf b":
        raise DatasetError(f"{where}: {key} must be numeric, got dtype {x.dtype}")
    if images:
        if x.ndim != 3:
            raise DatasetError(f"{where}: images=true is for grey images of shape (N, H, W), but {key} has shape "
                               f"{x.shape}; leave the option out for (N, H, W, C) images or (N, L, C) sequences")
        return x[..., None]
    if x.ndim == 2:  # flat feature vectors -> sequences of one channel
        x = x[..., None]
    if x.ndim not in (3, 4):
        raise DatasetError(
            f"{where}: {key} must have shape (N,H,W,C) for images or (N,L,C) for sequences, got {x.shape}"
        )
    return x


@register_path_kind("npz", matches=lambda p: p.is_file() and p.suffix.lower() == ".npz",
                    description="a .npz with x (N,H,W,C or N,L,C; N,H,W grey images with images=true), y (or "
                                "x_train, y_train), optional x_test/y_test, x_val/y_val, class_names and groups "
                                "(a subject per sample: splits keep them whole); "
                                "with adjacency (nodes,nodes) a graph dataset, x (N,nodes,features), and "
                                "node_task=True a node task (x's last feature marks the node asked about)")
def load_npz(path: Path, *, images: bool = False) -> RawData:
    """Integer features are scaled by their bit range (``_integer_scaling``); floats are used as they are.

    ``images``: x (and x_test, x_val) of shape (N, H, W) are grey images, not (N, L, C) sequences: a channel axis is
    added, so the image spaces take them."""
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (ValueError, OSError) as exc:
        raise DatasetError(f"{path}: not a readable .npz file ({exc}); save it with numpy.savez(x=..., y=...)") from None
    for short, long in (("x", "x_train"), ("y", "y_train")):  # as keras.datasets name their arrays
        if long in data:
            if short in data:
                raise DatasetError(f"{path}: holds both {short} and {long}; keep one (the training data)")
            data[short] = data.pop(long)
    missing = [k for k in ("x", "y") if k not in data]
    if missing:
        raise DatasetError(f"{path}: missing array(s) {missing}; found {sorted(data)}; "
                           "save it with numpy.savez(path, x=features, y=labels[, x_test=..., y_test=..., "
                           "x_val=..., y_val=...])")
    for split in ("test", "val"):
        if (f"x_{split}" in data) != (f"y_{split}" in data):
            raise DatasetError(f"{path}: x_{split} and y_{split} must be given together; found {sorted(data)}")
    names = tuple(str(s) for s in data["class_names"].tolist()) if "class_names" in data else None
    adjacency = None
    if "adjacency" in data:
        from tinynas.data.graph_checks import checked_adjacency

        for key in ("x", "x_test", "x_val"):
            if key in data and data[key].ndim not in (2, 3):
                raise DatasetError(f"{path}: with an adjacency, {key} must be (N, nodes) or (N, nodes, features) "
                                   f"node features, got shape {data[key].shape}")
        nodes = data["x"].shape[1] if data["x"].ndim >= 2 else None
        adjacency = checked_adjacency(data["adjacency"], where=str(path), field="adjacency", nodes=nodes)
    node_task = bool(np.asarray(data["node_task"]).reshape(-1)[0]) if "node_task" in data else False
    if node_task and adjacency is None:
        raise DatasetError(f"{path}: node_task needs an adjacency array (the graph the nodes belong to)")
    if images and adjacency is not None:
        raise DatasetError(f"{path}: images=true is for grey images, but the file holds a graph (adjacency); "
                           "leave the option out")
    if not images and adjacency is None and data["x"].ndim == 3 and data["x"].dtype == np.uint8:
        log.warning("%s: x of shape %s (uint8) is read as %d sequences of %d steps x %d channels; if these are grey "
                    "images, pass images=true (-o images=true) or save x[..., None]", path, data["x"].shape,
                    *data["x"].shape)
    x = _features(data["x"], str(path), "x", images=images)
    y, names = _labels(data["y"], str(path), names)
    held: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # the splits the file gives: test, val
    for split in ("test", "val"):
        if f"x_{split}" in data:
            xs = _features(data[f"x_{split}"], str(path), f"x_{split}", images=images)
            ys, names_s = _labels(data[f"y_{split}"], str(path), names)
            if len(names_s) > len(names):
                names = names_s
            held[split] = (xs, ys)
    if data["x"].dtype.kind in "iu":
        scaling = _integer_scaling(np.concatenate([x.ravel(), *(xs.ravel() for xs, _ in held.values())]))
    else:
        scaling = InputScaling(description=f"values as stored in {path.name}, used as they are")
    if node_task:
        from tinynas.data.graph_checks import check_node_marker

        for key, arr in (("x", x), *((f"x_{split}", xs) for split, (xs, _) in held.items())):
            check_node_marker(arr, where=str(path), field=key)
    given = {f"{axis}_{split}": scaling.apply(pair[0]) if axis == "x" else pair[1]
             for split, pair in held.items() for axis in ("x", "y")}
    groups = None
    if "groups" in data:  # a subject or session per sample of x: the carved splits keep them whole
        groups = np.asarray(data["groups"])
        if groups.shape != (len(x),):
            raise DatasetError(f"{path}: groups must hold one subject or session id per sample of x "
                               f"(shape ({len(x)},)), got shape {groups.shape}")
    return RawData(x=scaling.apply(x), y=y, **given, groups=groups,
                   class_names=names, scaling=scaling, adjacency=adjacency, node_task=node_task,
                   source=f"npz file {path}" + (" (graph: x on the nodes of adjacency)" if adjacency is not None else ""))


def _whole_numbers(labels: list[str]) -> list[int] | None:
    """Labels that are all whole numbers as ints ("3", and "3.0" as pandas writes an int column that held a
    missing value), else None: read as text, "10.0" would sort before "2.0" as a class name."""
    try:
        values = [float(v) for v in labels]
    except ValueError:
        return None
    return [int(v) for v in values] if all(v.is_integer() for v in values) else None


def _delimiter(header: str) -> str:
    """The field separator: whichever of comma, semicolon (spreadsheets in locales whose decimal mark is a comma)
    and tab the header line holds most of."""
    return max((",", ";", "\t"), key=header.count)


@register_path_kind("csv", matches=lambda p: p.is_file() and p.suffix.lower() == ".csv",
                    description="a .csv of sensor windows: one window per row, feature columns and a label column, "
                                "or with window=N a log of one time step per row cut into windows of N rows; "
                                "group_column=NAME splits by subject or session "
                                "(comma, semicolon with decimal commas, or tab separated); a *train.csv file takes "
                                "its *test.csv sibling, when that has labels, as the test split",
                    later_options=("window", "stride", "ignore_columns", "group_column"))
def load_csv(path: Path, *, label_column: str = "label", channels: int = 1, normalize: bool = True, window: int = 0,
             stride: int = 0, ignore_columns: str = "", group_column: str = "") -> RawData:
    """Rows become sequences ``(features // channels, channels)`` (columns in time-major order); with
    ``window`` > 0 each row is one time step of a log, its feature columns the channels, and runs of
    consecutive rows with one label are cut into windows of ``window`` rows every ``stride`` rows
    (``window`` when 0). ``ignore_columns`` (comma-separated names: a timestamp) are not features.
    ``group_column`` (a subject or session id) is not a feature either: the validation and test
    splits carved from the file take whole groups, and no window spans two.

    With ``normalize`` the features are standardized with one global mean and
    std, recorded in ``input_scaling`` for the firmware. They are taken over the
    training file's rows, which include the validation and test splits carved from it
    later (not a test sibling's): two scalars over every value, which say nothing of labels.
    """
    if channels < 1:
        raise DatasetError(f"csv option channels must be a positive integer, got {channels}")
    if window < 0 or stride < 0:
        raise DatasetError(f"csv options window and stride must be 0 or positive, got {window} and {stride}")
    if window and channels != 1:
        raise DatasetError("csv option channels does not apply with window: each row is one time step, and its "
                           "feature columns are the channels; leave channels out")
    ignore = tuple(c.strip() for c in ignore_columns.split(",") if c.strip())
    group_column = group_column.strip()
    read = dict(label_column=label_column, channels=1 if window else channels, ignore=ignore, group=group_column)
    header, values, labels, groups = _read_csv(path, **read)
    test, n_test = _test_sibling(path, label_column=label_column), 0
    if test is not None:
        test_header, test_values, test_labels, _ = _read_csv(test, **read)
        if test_header != header:
            raise DatasetError(f"{test}: its columns {test_header[:8]}... are not those of {path.name} "
                               f"({header[:8]}...); the test split must hold the same columns in the same order")
    if window:
        if 0 < stride < window and test is None and groups is None:
            log.warning("%s: windows every %d rows overlap (window %d), and the random split puts neighbours, "
                        "which share rows, in training and test: test accuracy will read high. Name a subject or "
                        "session column (group_column=NAME) so splits take whole ones, give a test file recorded "
                        "apart (*test.csv beside a *train.csv), or leave stride out", path, stride, window)
        cut = dict(window=window, stride=stride or window)
        values, labels, groups = _windows(values, labels, groups, where=path, **cut)
        if test is not None:
            test_values, test_labels, _ = _windows(test_values, test_labels, None, where=test, **cut)
    else:
        _warn_if_a_log(values, labels, where=path)
    if test is not None:
        n_test = len(test_labels)
        labels, values = labels + test_labels, np.concatenate([values, test_values])
    numbers = _whole_numbers(labels)
    y, names = _labels(np.asarray(labels if numbers is None else numbers), str(path))
    raw = values if window else values.reshape(len(values), -1, channels)
    train = len(raw) - n_test
    if normalize:
        mean, std = float(raw[:train].mean()), float(raw[:train].std()) or 1.0
        scaling = InputScaling(scale=1.0 / std, offset=-mean / std,
                               description=f"sensor values, then (x - {mean:.6g}) / {std:.6g}")
    else:
        scaling = InputScaling(description="sensor values used as they are")
    x = scaling.apply(raw)
    features = [h for h in header if h not in (label_column, group_column, *ignore)]
    # what the firmware must assemble from its sensor: which values, in which order
    layout = (f"one input is {window} consecutive samples (rows) of {', '.join(features)}, in that order"
              if window else "")
    return RawData(x=x[:train], y=y[:train], class_names=names, scaling=scaling, preprocessing=layout,
                   groups=None if groups is None else np.asarray(groups),
                   x_test=None if test is None else x[train:], y_test=None if test is None else y[train:],
                   source=f"csv file {path} ({train} windows of {raw.shape[1]}x{raw.shape[2]}, label column "
                          f"{label_column!r}" + (f"; test split {test.name}, {n_test} windows)" if test else ")"))


def _windows(values: np.ndarray, labels: list[str], groups: list[str] | None, *, window: int, stride: int,
             where: Path) -> tuple[np.ndarray, list[str], list[str] | None]:
    """Windows of ``window`` consecutive rows, every ``stride`` rows, within each run of one label and group (a
    window across a change of activity or subject would hold two): (windows, window rows, features), their
    labels and groups."""
    keys = labels if groups is None else [f"{g}\0{label}" for g, label in zip(groups, labels)]
    starts, run = [], 0
    for i in range(1, len(keys) + 1):
        if i == len(keys) or keys[i] != keys[run]:
            starts += range(run, i - window + 1, stride)
            run = i
    if not starts:
        raise DatasetError(f"{where}: no run of {window} consecutive rows has one label; give a smaller "
                           "window (-o window=N)")
    log.info("%s: %d rows cut into %d windows of %d rows every %d", where, len(keys), len(starts), window, stride)
    return (np.stack([values[s:s + window] for s in starts]), [labels[s] for s in starts],
            None if groups is None else [groups[s] for s in starts])


def _warn_if_a_log(values: np.ndarray, labels: list[str], *, where: Path) -> None:
    """Warn when the rows look like time steps of a log (few columns, the same label over long runs of
    rows) rather than one window each: each row alone would then be a sample of a few values."""
    if len(labels) < 100 or values.shape[1] > 12:
        return
    runs = 1 + sum(a != b for a, b in zip(labels, labels[1:]))
    if len(labels) / runs >= 10:
        log.warning("%s: each row looks like one time step of a log (%d feature columns; one label over runs of "
                    "%.0f rows on average), not a window: pass window=N (-o window=50) to cut consecutive rows "
                    "into windows, and ignore_columns=NAME for a time or subject column", where, values.shape[1],
                    len(labels) / runs)


def _test_sibling(path: Path, *, label_column: str) -> Path | None:
    """``har_test.csv`` beside ``har_train.csv`` (``TEST`` for ``TRAIN``, and so on), when it holds the label
    column; Kaggle's test.csv does not (its labels are the competition's secret), and is then not used."""
    stem = path.stem
    if not stem.lower().endswith("train"):
        return None
    tail = stem[-5:]
    test_word = "TEST" if tail.isupper() else "Test" if tail[0].isupper() else "test"
    sibling = path.with_name(stem[:-5] + test_word + path.suffix)
    if not sibling.is_file():
        return None
    try:
        with open(sibling, newline="", encoding="utf-8-sig") as fh:
            first = fh.readline()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{sibling}: cannot read the CSV file beside {path.name} ({exc}); save it as UTF-8 CSV "
                           "or move it away") from None
    if label_column not in [h.strip() for h in next(csv.reader([first], delimiter=_delimiter(first)), [])]:
        log.info("%s has no label column %r: not used as the test split", sibling, label_column)
        return None
    return sibling


def _read_csv(path: Path, *, label_column: str, channels: int, ignore: tuple[str, ...] = (),
              group: str = "") -> tuple[list[str], np.ndarray, list[str], list[str] | None]:
    """(header, feature values (rows, features), labels, the ``group`` column's cells or None) of one CSV
    file, the ``ignore`` and ``group`` columns left out of the features; DatasetError naming line and column."""
    try:
        # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark, which would stick to the first column's name
        with open(path, newline="", encoding="utf-8-sig") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the CSV file ({exc}); save it as UTF-8 CSV") from None
    delimiter = _delimiter(text.split("\n", 1)[0])
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise DatasetError(f"{path}: needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    if label_column not in header:
        raise DatasetError(
            f"{path}: no label column {label_column!r}; columns are {header[:12]}{' ...' if len(header) > 12 else ''}; "
            f"name the column that holds the class with label_column=NAME (-o label_column=NAME) or add a "
            f"'{label_column}' column"
        )
    unknown = [c for c in ignore if c not in header]
    if unknown:
        raise DatasetError(f"{path}: ignore_columns names {unknown}, which are not columns; columns are "
                           f"{header[:12]}{' ...' if len(header) > 12 else ''}")
    if group and group not in header:
        raise DatasetError(f"{path}: no group column {group!r}; columns are {header[:12]}"
                           f"{' ...' if len(header) > 12 else ''}")
    li = header.index(label_column)
    feature_cols = [i for i in range(len(header)) if i != li and header[i] not in (*ignore, group)]
    if not feature_cols or len(feature_cols) % channels:
        raise DatasetError(f"{path}: {len(feature_cols)} feature columns cannot be split into {channels} channels")
    values = np.empty((len(rows) - 1, len(feature_cols)), dtype=np.float32)
    labels: list[str] = []
    for r, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DatasetError(f"{path}: line {r} has {len(row)} fields, the header has {len(header)}")
        if not row[li].strip():  # it would become a class named ""
            raise DatasetError(f"{path}: line {r} has no label in column {label_column!r}; fill it in or remove the row")
        labels.append(row[li].strip())
        for j, c in enumerate(feature_cols):
            try:
                # with ";" between fields, a spreadsheet set to a European locale writes 1,5 for 1.5
                values[r - 2, j] = float(row[c].replace(",", ".") if delimiter == ";" else row[c])
            except ValueError:
                raise DatasetError(f"{path}: line {r}, column {header[c]!r}: {row[c]!r} is not a number") from None
    groups = [row[header.index(group)].strip() for row in rows[1:]] if group else None
    return header, values, labels, groups
