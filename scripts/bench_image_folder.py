"""How long and how much memory an image folder of full-size photos takes to load and shrink.

A phone's photos are 12 megapixels; a dataset of a few hundred of them, resized with ``-o image_size=N``,
must load in a bounded amount of memory (one photo at a time, not the whole folder) and in about the time
it takes to decode the JPEGs. Writes ``--photos`` random JPEGs of ``--size`` into a temporary folder, loads
it in a child process (so its peak RSS is the loader's alone), twice: the first load decodes the photos,
the second reads the pixels the first cached (a resumed run, a worker process). Prints a table: load,
photos, photo size, seconds, seconds per photo, peak RSS. Usage:

    .venv/bin/python scripts/bench_image_folder.py [--photos 30] [--size 4000x3000] [--image-size 32]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import sys
from pathlib import Path
from tinynas.data.images import load_image_folder
raw = load_image_folder(Path(sys.argv[1]), image_size=int(sys.argv[2]))
assert raw.x.shape[0] == int(sys.argv[3]), raw.x.shape
"""


def write_photos(root: Path, *, photos: int, width: int, height: int) -> None:
    """``photos`` JPEGs in two class folders: one random picture, shifted for each, so every file differs."""
    import numpy as np
    from PIL import Image

    base = np.random.default_rng(0).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    for i in range(photos):
        folder = root / ("a" if i % 2 == 0 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.roll(base, 37 * i, axis=1)).save(folder / f"{i:04d}.jpg", quality=85)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=30)
    parser.add_argument("--size", default="4000x3000", help="photo width x height")
    parser.add_argument("--image-size", type=int, default=32, help="the -o image_size the loader resizes to")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="tinynas_photos_") as tmp:
        photos, home = Path(tmp) / "photos", Path(tmp) / "home"
        write_photos(photos, photos=args.photos, width=width, height=height)
        env = dict(os.environ, TINYNAS_HOME=str(home))
        for load in ("decoded", "cached"):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", CHILD, str(photos), str(args.image_size), str(args.photos)],
                           check=True, env=env)
            # RUSAGE_CHILDREN's peak is the largest child's so far: the first load's is the larger one
            rows.append((load, time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
    header = f"{'load':<8}  {'photos':>6}  {'photo':>9}  {'to':>5}  {'seconds':>7}  {'s/photo':>7}  {'peak RSS MB':>11}"
    sys.stdout.write(header + "\n" + "-" * len(header) + "\n")
    for load, seconds, peak_kb in rows:
        peak = f"{peak_kb / 1024:>11.0f}" if load == "decoded" else f"{'-':>11}"
        sys.stdout.write(f"{load:<8}  {args.photos:>6}  {width}x{height:<4}  {args.image_size:>5}  {seconds:>7.1f}  "
                         f"{seconds / args.photos:>7.2f}  {peak}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
