"""Move a finished, staged output into a user's folder without touching anything else there.

``deploy`` and ``firmware generate`` build their output in a temporary sibling
folder, so a failure leaves nothing half-written. Swapping that folder for
``--out`` would delete whatever else ``--out`` held (a user's model, notes, a
build folder), so the files move in one by one instead: a file tinynas wrote
before may be replaced or removed, any other file is left as it is, and a name
that collides with a file tinynas did not write is refused before anything moves.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from tinynas.errors import DeployError


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
    own = set(previous)
    new = staged_files(staged)
    kept = {Path(p).resolve() for p in keep}
    clashes = [rel for rel in new
               if (out_dir / rel).resolve() in kept
               or ((out_dir / rel).exists() or (out_dir / rel).is_symlink()) and rel not in own]
    if clashes:
        shown = ", ".join(clashes[:5]) + (f", ... ({len(clashes)} files)" if len(clashes) > 5 else "")
        raise DeployError(
            f"--out {out_dir} already holds {shown}, which tinynas did not write (or is the input model); "
            "it is left as it is: choose another --out or move that file away"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    if marker in own:
        (out_dir / marker).unlink(missing_ok=True)
    for rel in [r for r in new if r != marker] + ([marker] if marker in new else []):
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged / rel, target)
    for rel in sorted(own - set(new)):
        stale = out_dir / rel
        if stale.is_file() and stale.resolve() not in kept:
            stale.unlink()
            _remove_empty_parents(stale.parent, stop=out_dir)
    return new


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
