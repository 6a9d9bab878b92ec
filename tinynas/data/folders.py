"""The "one sub-folder per class" layout shared by the image and WAV folder loaders, optionally under
split folders (``train/<class>/``, ``test/<class>/``) as Kaggle, Roboflow and Keras's tutorials lay data out."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from tinynas.errors import DatasetError

log = logging.getLogger(__name__)

#: folder names that hold one split of the data, by split (compared in lower case)
SPLIT_FOLDERS = {"train": ("train", "training", "train_set", "training_set"),
                 "val": ("val", "valid", "validation", "dev", "val_set", "validation_set"),
                 "test": ("test", "testing", "test_set", "testing_set")}


#: folders that are never a class: where a zip made on macOS puts its metadata, and the noise recordings
#: Speech Commands keeps beside its word folders (minutes-long clips for mixing in, not a word)
_NOT_CLASSES = ("__MACOSX", "_background_noise_")
#: Speech Commands' split lists at its root: one "<word>/<file>.wav" per line
SPLIT_LISTS = {"val": "validation_list.txt", "test": "testing_list.txt"}
#: what the splits carved from a folder's training files keep whole (the loaders' ``group_by`` option)
GROUPINGS = ("none", "subfolder")


def _class_folders(root: Path) -> list[Path]:
    """The class folders of ``root``, sorted by name: neither hidden nor in ``_NOT_CLASSES``."""
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in _NOT_CLASSES)


def _samples(folder: Path, extensions: tuple[str, ...]) -> Iterator[Path]:
    """The files with one of ``extensions`` in ``folder`` and its sub-folders (recordings kept per session or
    per day), unsorted. Hidden files and folders are not samples: macOS writes ``._name.jpg`` beside every
    picture copied to a FAT or network drive (its metadata, not an image), and ``.git``,
    ``.ipynb_checkpoints`` hold copies."""
    return (f for f in folder.rglob("*") if f.suffix.lower() in extensions and f.is_file()
            and not any(part.startswith(".") for part in f.relative_to(folder).parts))


def files_by_class(root: Path, extensions: tuple[str, ...]) -> dict[str, list[Path]]:
    """Class name -> sorted sample files (``_samples``) in ``root/<class>/``, classes sorted by name."""
    return {sub.name: sorted(_samples(sub, extensions)) for sub in _class_folders(root)}


def has_class_folders(root: Path, extensions: tuple[str, ...]) -> bool:
    """True if ``root`` is a folder whose sub-folders hold files with one of ``extensions`` (stops at the first:
    telling the path's kind does not list a large folder)."""
    if not root.is_dir():
        return False
    return any(next(_samples(sub, extensions), None) is not None for sub in _class_folders(root))


def checked_classes(root: Path, extensions: tuple[str, ...], what: str) -> dict[str, list[Path]]:
    """``files_by_class`` that refuses fewer than two classes or an empty class folder."""
    classes = _nonempty(root, extensions, what)
    if len(classes) < 2:
        only = next(iter(classes), "(none)")
        if len(classes) == 1 and has_class_folders(root / only, extensions):  # a zip unpacked into its own name
            raise DatasetError(f"{root}: found only one class folder ({only!r}), and the classes are inside it: "
                               f"pass {root / only} as the dataset")
        raise DatasetError(
            f"{root}: found only one class folder ({only!r}); a classifier needs at least two: "
            f"put the {what} files of each class in their own sub-folder, e.g. {root}/yes/ and {root}/no/"
        )
    return classes


@dataclass(frozen=True)
class FolderSamples:
    """Every sample file of a class-folder dataset, its label and the split its folder names (a file
    cut into several samples appears once per sample)."""

    class_names: tuple[str, ...]
    files: list[Path]
    labels: list[int]
    splits: list[str]  # "train", "val" or "test" per file; all "train" without split folders
    folders: list[str]  # each file's first sub-folder in its class folder ("alice" for yes/alice/day2/), or ""

    @property
    def given_splits(self) -> str:
        """"; validation and test splits as the folder gives them" (what the source line adds), or ""."""
        held = [name for split, name in (("val", "validation"), ("test", "test")) if split in self.splits]
        if not held:
            return ""
        return f"; {' and '.join(held)} split{'s' if len(held) > 1 else ''} as the folder gives " + (
            "them" if len(held) > 1 else "it")

    def repeated(self, counts: list[int]) -> "FolderSamples":
        """The same samples with file i repeated ``counts[i]`` times (the pieces it was cut into)."""
        pick = [i for i, n in enumerate(counts) for _ in range(n)]
        return FolderSamples(self.class_names, [self.files[i] for i in pick], [self.labels[i] for i in pick],
                             [self.splits[i] for i in pick], [self.folders[i] for i in pick])

    def split_arrays(self, x: np.ndarray, *, groups: str = "none") -> dict[str, np.ndarray | None]:
        """``x`` (one row per file) as RawData's x/y, x_val/y_val and x_test/y_test (None for a split
        the folders do not hold: it is carved from the training data). ``groups`` (GROUPINGS) says what
        the carved splits keep whole: "file" (the rows cut from one recording), "subfolder" (the first
        folder below the class folder: a speaker or a session, the same name in every class folder being
        one group; a file directly in its class folder is a group of its own), or "none"."""
        y, where = np.asarray(self.labels, dtype=np.int64), np.asarray(self.splits)
        out: dict[str, np.ndarray | None] = {"x": x[where == "train"], "y": y[where == "train"]}
        if groups != "none":
            out["groups"] = np.asarray([folder if groups == "subfolder" and folder else str(f)
                                        for f, folder, split in zip(self.files, self.folders, self.splits)
                                        if split == "train"])
        for split, suffix in (("val", "_val"), ("test", "_test")):
            held = where == split
            out["x" + suffix], out["y" + suffix] = (x[held], y[held]) if held.any() else (None, None)
        return out


def split_folders(root: Path, extensions: tuple[str, ...]) -> dict[str, Path]:
    """{"train": root/train, "test": root/test, ...} when every folder of ``root`` names a split (one of them
    the training one) and holds class folders of samples; {} for the plain class-folder layout."""
    found: dict[str, Path] = {}
    for sub in _class_folders(root):
        split = next((s for s, names in SPLIT_FOLDERS.items() if sub.name.lower() in names), None)
        if split is None:
            return {}
        if split in found:
            raise DatasetError(f"{root}: both {found[split].name}/ and {sub.name}/ name the {split} split; "
                               "merge them into one folder")
        found[split] = sub
    if "train" not in found or not all(has_class_folders(p, extensions) for p in found.values()):
        return {}
    return found


def checked_samples(root: Path, extensions: tuple[str, ...], what: str, *, group_by: str = "none") -> FolderSamples:
    """The samples of ``root``'s class folders, or of its split folders' (``checked_classes`` for each):
    classes are the training folder's, and a validation or test class the training data lacks is refused.
    ``group_by`` is the loader's option (GROUPINGS): checked first, and at "none" sub-folders that recur
    across classes are warned about (``_warn_ungrouped``)."""
    if group_by not in GROUPINGS:
        raise DatasetError(f"{what} folder option group_by must be {' or '.join(GROUPINGS)}, got {group_by!r}")
    samples = _folder_samples(root, extensions, what)
    if group_by == "none":
        _warn_ungrouped(root, samples)
    return samples


def _folder_samples(root: Path, extensions: tuple[str, ...], what: str) -> FolderSamples:
    splits = split_folders(root, extensions)
    if not splits:
        classes = checked_classes(root, extensions, what)
        files = [f for group in classes.values() for f in group]
        labels = [label for label, group in enumerate(classes.values()) for _ in group]
        return FolderSamples(tuple(classes), files, labels, _listed_splits(root, files),
                             _sub_folders(root, classes))
    by_split = {split: checked_classes(folder, extensions, what) if split == "train" else
                _nonempty(folder, extensions, what) for split, folder in splits.items()}
    names = tuple(by_split["train"])
    for split, classes in by_split.items():
        unknown = sorted(set(classes) - set(names))
        if unknown:
            raise DatasetError(f"{splits[split]}: class folder(s) {', '.join(map(repr, unknown))} are not in "
                               f"{splits['train']}, which the model learns from; add their training samples there "
                               "or remove them")
    files, labels, split_of, folders = [], [], [], []
    for split in ("train", "val", "test"):
        for name, group in by_split.get(split, {}).items():
            files += group
            labels += [names.index(name)] * len(group)
            split_of += [split] * len(group)
        folders += _sub_folders(splits[split], by_split[split]) if split in by_split else []
    log.info("%s: split folders %s: %s", root, ", ".join(f"{p.name}/" for p in splits.values()),
             "; ".join(f"{split} {split_of.count(split)} {what} files" for split in splits))
    return FolderSamples(names, files, labels, split_of, folders)


def _sub_folders(root: Path, classes: dict[str, list[Path]]) -> list[str]:
    """Each file's first folder below its class folder ``root/<class>/`` ("" for a file directly in it)."""
    return [(f.relative_to(root / name).parts[:-1] or ("",))[0] for name, group in classes.items() for f in group]


def _warn_ungrouped(root: Path, samples: FolderSamples) -> None:
    """Warn when sub-folders of one name sit in several class folders (``yes/alice/``, ``no/alice/``: a
    speaker, a session, a camera) and validation or test is carved from files at random: the test split
    then holds the same speaker's other takes, and its accuracy would not carry over to a new one."""
    if {"val", "test"} <= set(samples.splits):
        return  # nothing is carved
    classes_of: dict[str, set[int]] = {}
    for folder, label, split in zip(samples.folders, samples.labels, samples.splits):
        if folder and split == "train":
            classes_of.setdefault(folder, set()).add(label)
    shared = sorted(name for name, labels in classes_of.items() if len(labels) > 1)
    if shared:
        log.warning("%s: sub-folders %s recur in several class folders (speakers, sessions?), but the validation "
                    "and test splits are drawn from their files at random, so the same speaker or session is in "
                    "training and test, and test accuracy overstates; pass -o group_by=subfolder to keep each "
                    "sub-folder in one split", root,
                    ", ".join(repr(n) for n in shared[:3]) + (f" and {len(shared) - 3} more" if len(shared) > 3 else ""))


def _nonempty(root: Path, extensions: tuple[str, ...], what: str) -> dict[str, list[Path]]:
    """``files_by_class`` that refuses an empty class folder."""
    classes = files_by_class(root, extensions)
    empty = [name for name, files in classes.items() if not files]
    if empty:
        raise DatasetError(f"{root}: class folder(s) {', '.join(repr(e) for e in empty)} hold no {what} files "
                           f"({'/'.join(extensions)}); add samples or remove the folder")
    return classes


def _listed_splits(root: Path, files: list[Path]) -> list[str]:
    """Each file's split as ``root``'s Speech Commands lists (``SPLIT_LISTS``) name it, "train" when no list
    does. Its lists keep each speaker in one split; a random split would put a speaker's other takes of a
    word in the test split and overstate accuracy."""
    split_of = {f.relative_to(root).as_posix(): "train" for f in files}
    for split, name in SPLIT_LISTS.items():
        listing = root / name
        if not listing.is_file():
            continue
        try:
            lines = [line.strip() for line in listing.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{listing}: cannot read this split list ({exc}); fix or remove it") from None
        found = [line for line in lines if line in split_of]
        for line in found:
            if split_of[line] != "train":
                raise DatasetError(f"{listing}: {line} is also in {SPLIT_LISTS[split_of[line]]}; a sample "
                                   "belongs to one split")
            split_of[line] = split
        if lines and not found:
            log.warning("%s names none of the %s files here (its lines are <class>/<file> paths relative to %s): "
                        "ignored", listing, len(files), root)
        else:
            log.info("%s: %d of its %d lines name files here: the %s split", listing, len(found), len(lines),
                     "validation" if split == "val" else split)
    return list(split_of.values())
