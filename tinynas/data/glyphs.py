"""``glyphs``: a harder built-in image set, 28x28x1, rendered offline from the fonts matplotlib ships.

digits (8x8) and mnist1d saturate: every architecture search ties on them
within a test sample or two. ``glyphs`` draws the ten digits from 21 font
faces (DejaVu Sans/Serif/Mono, STIX and Computer Modern, each regular, bold and
italic where shipped) and distorts every sample the way handwriting and cheap
cameras do: a random affine map (rotation, anisotropic scale, shear, shift),
stroke width (grey dilation or erosion), clutter (stray strokes and a fragment
of another glyph at the border) and sensor noise. At the default difficulty a
small CNN reaches well under 100 %, so architectures differ by points.

Generation is seeded and takes seconds; the arrays are cached under
``tinynas_home()/datasets`` like mnist1d's. Fonts are rasterized with
matplotlib's ``TextPath`` (no window system, no download).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from tinynas.data.base import RawData, register_dataset
from tinynas.data.cache import save_npz_atomic, tinynas_home
from tinynas.data.types import InputScaling
from tinynas.errors import DatasetError

log = logging.getLogger(__name__)

#: the output size and the supersampling factor used for anti-aliasing
SIZE = 28
SUPER = 4
#: matplotlib font files with all ten digits drawn as ordinary glyphs (not symbol or display faces)
FONT_FILES = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
    "cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmti10.ttf", "cmtt10.ttf",
)
CLASSES = tuple("0123456789")
#: generator version: bump when the rendering changes, so cached arrays stop matching
VERSION = 1


def _templates() -> np.ndarray:
    """Every (font, class) glyph as a centred float mask of SIZE*SUPER pixels a side, ``[font, class, h, w]``."""
    from matplotlib import get_data_path
    from matplotlib.font_manager import FontProperties
    from matplotlib.path import Path as MplPath
    from matplotlib.textpath import TextPath

    hi = SIZE * SUPER
    box = 20 * SUPER  # glyphs fit a 20x20 box in the 28x28 frame, as MNIST's do
    grid = (np.stack(np.meshgrid(np.arange(hi), np.arange(hi)), axis=-1).reshape(-1, 2) + 0.5).astype(np.float64)
    folder = Path(get_data_path()) / "fonts" / "ttf"
    missing = [name for name in FONT_FILES if not (folder / name).is_file()]
    if missing:  # rendering the others would give another dataset under the same name and seed
        import matplotlib

        raise DatasetError(f"glyphs is rendered from {len(FONT_FILES)} fonts that matplotlib ships, and this "
                           f"matplotlib ({matplotlib.__version__}) lacks {', '.join(missing)} (3.11.2 has them all): "
                           "pip install -U 'matplotlib>=3.11' (it needs Python 3.11 or later)")
    out = np.zeros((len(FONT_FILES), len(CLASSES), hi, hi), dtype=np.float32)
    for f, name in enumerate(FONT_FILES):
        prop = FontProperties(fname=str(folder / name))
        for c, char in enumerate(CLASSES):
            polygons = TextPath((0, 0), char, size=100, prop=prop).to_polygons(closed_only=True)
            points = np.concatenate(polygons)
            lo, hi_xy = points.min(axis=0), points.max(axis=0)
            scale = box / max(hi_xy - lo)
            inside = np.zeros(len(grid), dtype=bool)
            for poly in polygons:  # even-odd over the contours: the holes of 0, 4, 6, 8, 9 stay open
                xy = (poly - (lo + hi_xy) / 2) * scale + hi / 2
                xy[:, 1] = hi - xy[:, 1]  # font y grows upwards, image rows downwards
                inside ^= MplPath(xy).contains_points(grid)
            out[f, c] = inside.reshape(hi, hi)
    return out


def _affine(rng: np.random.Generator, *, difficulty: float) -> tuple[np.ndarray, np.ndarray]:
    """A random map of output to input pixel coordinates about the centre (scipy's convention)."""
    angle = np.deg2rad(rng.uniform(-20, 20) * difficulty)
    shear = rng.uniform(-0.3, 0.3) * difficulty
    sx, sy = np.exp(rng.uniform(-0.25, 0.15, size=2) * difficulty)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    forward = rot @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([sy, sx])
    inverse = np.linalg.inv(forward)
    centre = np.full(2, SIZE * SUPER / 2)
    shift = rng.uniform(-3, 3, size=2) * SUPER * difficulty
    offset = centre - inverse @ (centre + shift)
    return inverse, offset


def _clutter(canvas: np.ndarray, rng: np.random.Generator, others: np.ndarray, *, difficulty: float) -> None:
    """Stray strokes and, sometimes, a piece of another glyph cut by the frame's edge (in place)."""
    from scipy import ndimage

    hi = canvas.shape[0]
    for _ in range(rng.poisson(1.2 * difficulty)):
        (r0, c0), (r1, c1) = rng.uniform(0, hi, size=(2, 2))
        n = int(max(abs(r1 - r0), abs(c1 - c0))) + 1
        rows = np.clip(np.linspace(r0, r1, n).astype(int), 0, hi - 1)
        cols = np.clip(np.linspace(c0, c1, n).astype(int), 0, hi - 1)
        line = np.zeros_like(canvas)
        line[rows, cols] = 1.0
        width = int(rng.integers(1, 2 * SUPER))
        canvas[:] = np.maximum(canvas, rng.uniform(0.3, 1.0) * ndimage.grey_dilation(line, size=(width, width)))
    if rng.random() < 0.5 * difficulty:
        piece = others[rng.integers(len(others))]
        dr, dc = rng.choice([-1, 1], size=2) * rng.integers(int(0.55 * hi), int(0.8 * hi), size=2)
        canvas[:] = np.maximum(canvas, rng.uniform(0.4, 1.0) * np.roll(piece, (dr, dc), axis=(0, 1)) *
                               _edge_mask(hi, dr, dc))


def _edge_mask(hi: int, dr: int, dc: int) -> np.ndarray:
    """Keep only the part of a rolled glyph that did not wrap around (it enters from one edge)."""
    mask = np.ones((hi, hi), dtype=np.float32)
    if dr > 0:
        mask[:dr] = 0
    else:
        mask[hi + dr:] = 0
    if dc > 0:
        mask[:, :dc] = 0
    else:
        mask[:, hi + dc:] = 0
    return mask


def generate_glyphs(*, num_samples: int, seed: int, difficulty: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``num_samples`` distorted glyphs (float32 ``[n, 28, 28, 1]`` in 0..1) and their labels, balanced."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    templates = _templates()
    flat = templates.reshape(-1, *templates.shape[2:])
    y = np.arange(num_samples) % len(CLASSES)
    rng.shuffle(y)
    x = np.empty((num_samples, SIZE, SIZE, 1), dtype=np.float32)
    for i in range(num_samples):
        glyph = templates[rng.integers(len(FONT_FILES)), y[i]]
        matrix, offset = _affine(rng, difficulty=difficulty)
        canvas = ndimage.affine_transform(glyph, matrix, offset=offset, order=1, mode="constant")
        stroke = int(rng.integers(-2, 4) * difficulty)  # hi-res pixels: thinner (<0) or bolder (>0)
        if stroke > 0:
            canvas = ndimage.grey_dilation(canvas, size=(stroke + 1, stroke + 1))
        elif stroke < 0:
            canvas = ndimage.grey_erosion(canvas, size=(1 - stroke, 1 - stroke))
        canvas = canvas * rng.uniform(0.6, 1.0)  # ink contrast
        _clutter(canvas, rng, flat, difficulty=difficulty)
        small = canvas.reshape(SIZE, SUPER, SIZE, SUPER).mean(axis=(1, 3))
        small = small + rng.normal(scale=rng.uniform(0.02, 0.15) * difficulty, size=small.shape)
        x[i, :, :, 0] = np.clip(small, 0.0, 1.0)
    return x, y.astype(np.int64)


@register_dataset("glyphs", kind="built-in",
                  description="digits rendered from 21 matplotlib fonts with affine distortion, stroke width, "
                              "clutter and noise: 28x28x1, 10 classes, 12,000 samples (generated offline)")
def load_glyphs(*, num_samples: int = 12000, difficulty: float = 1.0, generator_seed: int = 0) -> RawData:
    """10,000 train + 2,000 test samples by default; ``difficulty`` scales every distortion (0: clean glyphs)."""
    if num_samples < 100:
        raise DatasetError(f"glyphs option num_samples must be at least 100, got {num_samples}")
    if not 0.0 <= difficulty <= 2.0:
        raise DatasetError(f"glyphs option difficulty must be between 0 and 2, got {difficulty}")
    n_test = num_samples // 6
    path = tinynas_home() / "datasets" / f"glyphs_v{VERSION}_n{num_samples}_d{difficulty:g}_s{generator_seed}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as f:
            x, y = f["x"], f["y"]
    else:
        x, y = generate_glyphs(num_samples=num_samples, seed=generator_seed, difficulty=difficulty)
        save_npz_atomic(path, x=x, y=y)
        log.info("generated glyphs into %s", path)
    return RawData(x=x[n_test:], y=y[n_test:], x_test=x[:n_test], y_test=y[:n_test], class_names=CLASSES,
                   scaling=InputScaling(description="ink intensity 0..1 (0 = background)"),
                   source=f"glyphs v{VERSION}: matplotlib's fonts rendered offline (generator seed {generator_seed}, "
                          f"difficulty {difficulty:g}, cached in {path})")
