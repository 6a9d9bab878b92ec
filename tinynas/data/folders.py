"""The "one sub-folder per class" layout shared by the image and WAV folder loaders."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from tinynas.errors import DatasetError


def _class_folders(root: Path) -> list[Path]:
    """The class folders of ``root``, sorted by name: not hidden, and not ``__MACOSX``, where a zip made on
    macOS puts its metadata."""
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != "__MACOSX")


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
    classes = files_by_class(root, extensions)
    empty = [name for name, files in classes.items() if not files]
    if empty:
        raise DatasetError(
            f"{root}: class folder(s) {', '.join(repr(e) for e in empty)} hold no {what} files "
            f"({'/'.join(extensions)}); add samples or remove the folder"
        )
    if len(classes) < 2:
        only = next(iter(classes), "(none)")
        raise DatasetError(
            f"{root}: found only one class folder ({only!r}); a classifier needs at least two: "
            f"put the {what} files of each class in their own sub-folder, e.g. {root}/yes/ and {root}/no/"
        )
    return classes
