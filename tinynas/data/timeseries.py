"""UCR/UEA time-series classification sets read from an installed wheel's data files, and ``.ts`` files.

aeon's wheel ships a few archive problems under ``aeon/datasets/data`` (GunPoint,
ArrowHead, ItalyPowerDemand, BasicMotions, JapaneseVowels...). tinynas reads
those ``.ts`` files itself, without importing aeon (its imports pull numba and
pandas) and without any download: ``scripts/setup.sh`` installs the wheel with
``--no-deps`` just for its data. Format: Bagnall et al., the UEA/UCR ``.ts``
file (``@`` header lines, then one case per line: dimensions split by ``:``,
values by ``,``, the class label last).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from tinynas.data.base import RawData, register_dataset, register_path_kind
from tinynas.data.types import InputScaling
from tinynas.errors import DatasetError

#: name -> (aeon folder, file stem, what it is)
ARCHIVE = {
    "gunpoint": ("GunPoint", "GunPoint", "UCR GunPoint: hand motion, sequences 150x1, 2 classes, 50 train + 150 test"),
    "arrowhead": ("ArrowHead", "ArrowHead", "UCR ArrowHead: outline shapes, sequences 251x1, 3 classes, 36 + 175"),
    "italypowerdemand": ("ItalyPowerDemand", "ItalyPowerDemand",
                         "UCR ItalyPowerDemand: daily load, sequences 24x1, 2 classes, 67 + 1,029"),
    "basicmotions": ("BasicMotions", "BasicMotions",
                     "UEA BasicMotions: smart-watch accelerometer + gyroscope, sequences 100x6, 4 classes, 40 + 40"),
    "japanesevowels": ("JapaneseVowels", "JapaneseVowels_eq",
                       "UEA JapaneseVowels: 12 LPC cepstra, sequences 25x12 (equal-length version), 9 classes, 270 + 370"),
}


def aeon_data_dir() -> Path:
    """The ``datasets/data`` folder of the installed aeon wheel (found without importing aeon)."""
    spec = importlib.util.find_spec("aeon")
    if spec is None or spec.origin is None:
        raise DatasetError(
            "the UCR/UEA datasets are read from the aeon wheel's data files, and aeon is not installed; "
            "install it without its dependencies: pip install --no-deps 'aeon>=1.0,<2' (scripts/setup.sh does)")
    return Path(spec.origin).parent / "datasets" / "data"


def read_ts(path: Path, *, class_names: tuple[str, ...] | None = None) -> tuple[np.ndarray, list[str], tuple[str, ...]]:
    """(x (N, L, C) float32, labels as strings, class names from the header) of one ``.ts`` file.

    Cases shorter than the longest are padded at the end with their last value; a
    missing value (``?``) becomes its neighbour's by forward fill. Raises DatasetError
    naming the file and line.
    """
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None
    names: tuple[str, ...] | None = class_names
    cases: list[list[np.ndarray]] = []
    labels: list[str] = []
    in_data = False
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if not in_data:
            low = text.lower()
            if low.startswith("@classlabel"):
                parts = text.split()
                if len(parts) < 2 or parts[1].lower() != "true":
                    raise DatasetError(f"{path}:{number}: @classLabel must be true (a classification problem)")
                names = names or tuple(parts[2:])
            elif low.startswith("@timestamps") and text.split()[-1].lower() == "true":
                raise DatasetError(f"{path}:{number}: series with time stamps are not supported; "
                                   "write the values only (@timeStamps false)")
            elif low.startswith("@data"):
                in_data = True
            continue
        *dims, label = text.split(":")
        if not dims:
            raise DatasetError(f"{path}:{number}: a case needs values and a class label separated by ':'")
        try:
            series = [_values(d) for d in dims]
        except ValueError as exc:
            raise DatasetError(f"{path}:{number}: not a number ({exc})") from None
        if cases and len(series) != len(cases[0]):
            raise DatasetError(f"{path}:{number}: {len(series)} dimensions, earlier cases have {len(cases[0])}")
        cases.append(series)
        labels.append(label.strip())
    if not cases:
        raise DatasetError(f"{path}: no cases after @data")
    length = max(len(s) for case in cases for s in case)
    x = np.empty((len(cases), length, len(cases[0])), dtype=np.float32)
    for i, case in enumerate(cases):
        for c, s in enumerate(case):
            x[i, : len(s), c] = s
            x[i, len(s):, c] = s[-1] if len(s) else 0.0
    return x, labels, names or tuple(sorted(set(labels)))


def _values(text: str) -> np.ndarray:
    raw = [v.strip() for v in text.split(",") if v.strip()]
    vals = np.array([np.nan if v == "?" else float(v) for v in raw], dtype=np.float32)
    if np.isnan(vals).any():  # forward fill, then back fill the start
        idx = np.where(~np.isnan(vals), np.arange(len(vals)), 0)
        np.maximum.accumulate(idx, out=idx)
        vals = vals[idx]
        if np.isnan(vals).any():
            first = vals[~np.isnan(vals)]
            vals = np.where(np.isnan(vals), first[0] if len(first) else 0.0, vals)
    return vals


def load_ts_pair(train: Path, test: Path | None, *, source: str) -> RawData:
    """RawData of a ``_TRAIN.ts`` file and, when given, its ``_TEST.ts`` as the fixed test split."""
    x, labels, names = read_ts(train)
    x_test = y_test = None
    if test is not None:
        x_test, labels_test, _ = read_ts(test, class_names=names)
        if x_test.shape[2] != x.shape[2]:
            raise DatasetError(f"{test}: {x_test.shape[2]} dimensions, {train.name} has {x.shape[2]}")
        if x_test.shape[1] != x.shape[1]:  # pad or cut to the training length, as the model input is fixed
            length = x.shape[1]
            x_test = x_test[:, :length] if x_test.shape[1] > length else np.concatenate(
                [x_test, np.repeat(x_test[:, -1:], length - x_test.shape[1], axis=1)], axis=1)
        y_test = _label_indices(labels_test, names, test)
    y = _label_indices(labels, names, train)
    return RawData(x=x, y=y, x_test=x_test, y_test=y_test, class_names=names, source=source,
                   scaling=InputScaling(description="series values as stored in the .ts file"))


def _label_indices(labels: list[str], names: tuple[str, ...], where: Path) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise DatasetError(f"{where}: class labels {unknown[:5]} are not in the @classLabel list {list(names)}")
    return np.asarray([index[v] for v in labels], dtype=np.int64)


def _register_archive(name: str, folder: str, stem: str, description: str) -> None:
    def load() -> RawData:
        base = aeon_data_dir() / folder
        train, test = base / f"{stem}_TRAIN.ts", base / f"{stem}_TEST.ts"
        if not train.is_file():
            raise DatasetError(f"{train}: not in the installed aeon wheel; reinstall it: "
                               "pip install --no-deps --force-reinstall 'aeon>=1.0,<2'")
        return load_ts_pair(train, test if test.is_file() else None,
                            source=f"{stem} from the aeon wheel's data files ({base}; offline)")

    load.__name__ = f"load_{name}"
    register_dataset(name, kind="built-in", description=description + " (from the aeon wheel, offline)")(load)


for _name, (_folder, _stem, _desc) in ARCHIVE.items():
    _register_archive(_name, _folder, _stem, _desc)


@register_path_kind("ts", matches=lambda p: p.is_file() and p.suffix.lower() == ".ts",
                    description="a UCR/UEA .ts file; a *_TRAIN.ts file takes its *_TEST.ts sibling as the test split")
def load_ts(path: Path) -> RawData:
    test = None
    if path.stem.upper().endswith("_TRAIN"):
        sibling = path.with_name(path.stem[: -len("_TRAIN")] + "_TEST" + path.suffix)
        test = sibling if sibling.is_file() else None
    return load_ts_pair(path, test, source=f"ts file {path}" + (f" with {test.name}" if test else ""))
