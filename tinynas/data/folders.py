"""The "one sub-folder per class" layout shared by the image and WAV folder loaders."""

from __future__ import annotations

from pathlib import Path

from tinynas.errors import DatasetError


def files_by_class(root: Path, extensions: tuple[str, ...]) -> dict[str, list[Path]]:
    """Class name -> sorted files with one of ``extensions`` in ``root/<class>/``, its sub-folders included
    (recordings kept per session or per day), classes sorted by name.

    Hidden files and folders are not samples: macOS writes ``._name.jpg`` beside every picture copied to a
    FAT or network drive (its metadata, not an image), and ``.git``, ``.ipynb_checkpoints`` hold copies. Nor
    is ``__MACOSX``, where a zip made on macOS puts that metadata, a class."""
    out: dict[str, list[Path]] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != "__MACOSX"):
        files = sorted(f for f in sub.rglob("*") if f.suffix.lower() in extensions and f.is_file()
                       and not any(part.startswith(".") for part in f.relative_to(sub).parts))
        out[sub.name] = files
    return out


def has_class_folders(root: Path, extensions: tuple[str, ...]) -> bool:
    """True if ``root`` is a folder whose sub-folders hold files with one of ``extensions``."""
    if not root.is_dir():
        return False
    return any(files for files in files_by_class(root, extensions).values())


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
