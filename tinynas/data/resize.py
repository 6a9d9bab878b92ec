"""Bilinear resizing of 8-bit pictures, one fixed algorithm: Pillow's antialiased bilinear filter (the triangle
widened to the scale factor when shrinking), horizontal pass first, each pass in 22-bit fixed point and rounded
to 8 bits, as Pillow up to 12 computes it for every picture.

Why not call ``Image.resize``: Pillow 12.3 always resizes horizontally first; Pillow 13.0 gives, for some shapes
(e.g. 15x28 to 12x12), what the vertical pass first gives, and the rounding between the passes then differs by a
level or two. The same folder would give other training data (and fingerprints) under another Pillow, and
firmware could not know which to repeat. The image folder loader resizes with this, and the C
front end (``tinynas.deploy.image_frontend``) does the same arithmetic on camera frames.
"""

from __future__ import annotations

import numpy as np

#: Pillow's fixed-point precision for 8-bit resampling (32 - 8 - 2)
PRECISION_BITS = 22


def coefficients(in_size: int, out_size: int) -> np.ndarray:
    """``(out_size, in_size)`` integer weights: Pillow's ``precompute_coeffs`` for the bilinear filter (in
    double, in its order of operations), then ``normalize_coeffs_8bpc``."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = filterscale  # the triangle's support is 1
    ss = 1.0 / filterscale
    out = np.zeros((out_size, in_size), dtype=np.int64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        weights = [_triangle((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        total = 0.0
        for w in weights:  # one by one, as C adds them (sum() compensates from Python 3.12)
            total += w
        for x, w in enumerate(weights):
            w = w / total if total != 0.0 else w
            out[xx, xmin + x] = int(0.5 + w * (1 << PRECISION_BITS))
    return out


def _triangle(t: float) -> float:
    t = -t if t < 0.0 else t
    return 1.0 - t if t < 1.0 else 0.0


#: float64 elements converted at a time in a pass (8 MB): a whole photo's worth (12 megapixels x 3) is a
#: 288 MB temporary whose fresh pages cost seconds here
_CHUNK = 1 << 20


def _pass(pixels: np.ndarray, weights: np.ndarray, axis: int) -> np.ndarray:
    """One pass along ``axis`` (0: rows, 1: columns) of an (H, W, C) uint8 array, rounded to 8 bits.

    The sums are float64 products, a BLAS call (an int64 one is not: 1.6 s against 0.2 s for a 12-megapixel
    photo), and still exact: pixel x weight < 2^30 and every sum of them stays far below 2^53."""
    moved = np.moveaxis(pixels, axis, -1)  # (lead, ..., in)
    wt = weights.T.astype(np.float64)
    out = np.empty(moved.shape[:-1] + (weights.shape[0],), dtype=np.uint8)
    step = max(1, _CHUNK // max(1, moved[0].size))
    for i in range(0, moved.shape[0], step):
        total = (moved[i:i + step].astype(np.float64) @ wt).astype(np.int64) + (1 << (PRECISION_BITS - 1))
        out[i:i + step] = np.clip(total >> PRECISION_BITS, 0, 255)
    return np.moveaxis(out, -1, axis)


def resize_bilinear(pixels: np.ndarray, *, height: int, width: int) -> np.ndarray:
    """``pixels`` (H, W) or (H, W, C) uint8 resized to ``height`` x ``width``: the horizontal pass, then the
    vertical one, each only where that axis changes size."""
    a = np.asarray(pixels, dtype=np.uint8)
    grey = a.ndim == 2
    if grey:
        a = a[..., None]
    if a.shape[1] != width:
        a = _pass(a, coefficients(a.shape[1], width), axis=1)
    if a.shape[0] != height:
        a = _pass(a, coefficients(a.shape[0], height), axis=0)
    return a[..., 0] if grey else a
