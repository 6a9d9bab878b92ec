"""Move a finished, staged output into a user's folder without touching anything else there.

``deploy`` and ``firmware generate`` build their output in a temporary sibling
folder, so a failure leaves nothing half-written. Swapping that folder for
``--out`` would delete whatever else ``--out`` held (a user's model, notes, a
build folder), so the files move in one by one instead: a file tinynas wrote
before may be replaced or removed, any other file is left as it is, and a name
that collides with a file tinynas did not write is refused before anything moves.

While files move, a small journal (``JOURNAL``) in ``--out`` lists every file the
install may have written or may still remove: an interrupted install (Ctrl-C, a full
disk) leaves no marker, so it never looks finished, and the next run reads the journal
to know those files are its own to replace, instead of refusing them as the user's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from tinynas.errors import DeployError

#: Lists the files an install in progress owns; removed when the install is complete.
JOURNAL = ".tinynas-install.json"


def staged_files(staged: Path) -> list[str]:
    """The files under ``staged`` as sorted POSIX paths relative to it."""
    return sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file())


def install_files(*, staged: Path, out_dir: Path, previous: Iterable[str], marker: str,
                  keep: Iterable[Path] = ()) -> list[str]:
    """Move every file of ``staged`` into ``out_dir``; return their relative paths.

    ``previous``: the files an earlier run of the same tool recorded as its own in
    ``out_dir`` (they may be replaced; those it no longer writes are removed).
    ``marker``: the file that says the output is complete (metrics.json, the project
    stamp): the old one goes first and the new one comes last, so an interrupted
    install never looks finished. ``keep``: files that must not be replaced even if
    recorded as ours (the input model). Raises DeployError naming the colliding files,
    before any file has moved.
    """
    out_dir = Path(out_dir)
    # A hand-edited list must not reach outside out_dir: "../x" or "/x" is nobody's output.
    own = {rel for rel in [*previous, *interrupted_files(out_dir)] if _inside(rel)}
    new = staged_files(staged)
    kept = {Path(p).resolve() for p in keep}
    clashes = [rel for rel in new if _clashes(out_dir, rel, own=own, kept=kept)]
    if clashes:
        shown = ", ".join(clashes[:5]) + (f", ... ({len(clashes)} files)" if len(clashes) > 5 else "")
        raise DeployError(
            f"--out {out_dir} already holds {shown}, which tinynas did not write (or which is the input model, "
            "a folder or a link); "
            "it is left as it is: choose another --out or move that file away"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_journal(out_dir, sorted(own | set(new)))
    if marker in own:
        (out_dir / marker).unlink(missing_ok=True)
    for rel in [r for r in new if r != marker] + ([marker] if marker in new else []):
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged / rel, target)
    for rel in sorted(own - set(new)):
        stale = out_dir / rel
        if stale.is_file() and not stale.is_symlink() and stale.resolve() not in kept:
            stale.unlink()
            _remove_empty_parents(stale.parent, stop=out_dir)
    (out_dir / JOURNAL).unlink()
    return new


def interrupted_files(out_dir: Path) -> list[str]:
    """The files an interrupted install into ``out_dir`` may have written ([] when none was interrupted)."""
    try:
        files = json.loads((Path(out_dir) / JOURNAL).read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [f for f in files if isinstance(f, str)]


def _inside(rel: str) -> bool:
    path = Path(rel)
    return bool(rel) and not path.is_absolute() and ".." not in path.parts


def _clashes(out_dir: Path, rel: str, *, own: set[str], kept: set[Path]) -> bool:
    """True when moving ``rel`` into ``out_dir`` would replace the input model or a path that is not ours.

    A folder of the user's (or a file of the user's where a folder is needed) on the way
    is a clash too: refusing it up front beats failing halfway through the move.
    """
    target = out_dir / rel
    if target.resolve() in kept:
        return True
    for parent in list(Path(rel).parents)[:-1]:
        if (out_dir / parent).is_symlink() or (out_dir / parent).exists() and not (out_dir / parent).is_dir():
            return True
    if target.is_symlink() or target.is_dir():
        return True
    return target.exists() and rel not in own


def _write_journal(out_dir: Path, files: list[str]) -> None:
    """Write ``JOURNAL`` whole or not at all (temp file + rename), so a reader never sees half a list."""
    tmp = out_dir / f"{JOURNAL}.tmp"
    tmp.write_text(json.dumps({"tool": "tinynas", "files": files}, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / JOURNAL)


def _remove_empty_parents(folder: Path, *, stop: Path) -> None:
    """Remove ``folder`` and its parents up to ``stop`` while they are empty (never ``stop`` itself)."""
    stop = stop.resolve()
    folder = folder.resolve()
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
