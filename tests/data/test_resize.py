"""tinynas/data/resize.py: the image folder loader's bilinear resize is Pillow's filter with the horizontal pass
first, whichever order the installed Pillow picks; the C front end repeats it (tests/deploy/test_image_frontend.py)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tinynas.data.resize import coefficients, resize_bilinear


def _pillow(a: np.ndarray, width: int, height: int) -> np.ndarray:
    mode = "L" if a.ndim == 2 else "RGB"
    return np.asarray(Image.fromarray(a, mode).resize((width, height), Image.BILINEAR))


@pytest.mark.parametrize("shape, size", [((28, 15), (12, 12)), ((120, 160, 3), (32, 32)), ((9, 13), (16, 16)),
                                         ((48, 16, 3), (8, 20)), ((23, 37), (37, 7))])
def test_the_resize_is_pillows_filter_horizontal_pass_first(shape, size):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, size=shape).astype(np.uint8)
    height, width = size
    got = resize_bilinear(a, height=height, width=width)
    # one axis at a time through Pillow (a single pass has no order), the 8-bit picture between them
    mode = "L" if a.ndim == 2 else "RGB"
    two = Image.fromarray(a, mode).resize((width, shape[0]), Image.BILINEAR).resize((width, height), Image.BILINEAR)
    np.testing.assert_array_equal(got, np.asarray(two))
    # and within two levels of whatever order this Pillow picks for the whole resize
    assert np.abs(got.astype(int) - _pillow(a, width, height).astype(int)).max() <= 2
    assert got.shape == (height, width, *shape[2:]) and got.dtype == np.uint8


def test_one_axis_and_no_change_are_pillows_exactly():
    a = np.random.default_rng(1).integers(0, 256, size=(30, 17, 3)).astype(np.uint8)
    np.testing.assert_array_equal(resize_bilinear(a, height=30, width=8), _pillow(a, 8, 30))
    np.testing.assert_array_equal(resize_bilinear(a, height=11, width=17), _pillow(a, 17, 11))
    np.testing.assert_array_equal(resize_bilinear(a, height=30, width=17), a)


def test_each_output_pixels_weights_sum_to_one_in_fixed_point():
    for in_size, out_size in [(160, 32), (13, 16), (7, 7), (1000, 3)]:
        k = coefficients(in_size, out_size)
        assert np.all(np.abs(k.sum(axis=1) - (1 << 22)) <= k.shape[1])  # each weight rounded once


def test_a_large_photo_resized_a_few_rows_at_a_time_is_pillows_exactly(monkeypatch):
    """A photo's pass runs in chunks of rows (no 288 MB float64 temporary for 12 megapixels): the chunks join
    into Pillow's result. Chunks of 7,000 elements here: 4 rows of 467x3 (81 chunks, the last one short) in the
    horizontal pass, 7 columns of 3x321 in the vertical one."""
    import tinynas.data.resize as resize

    a = np.random.default_rng(2).integers(0, 256, size=(321, 467, 3)).astype(np.uint8)
    monkeypatch.setattr(resize, "_CHUNK", 7000)
    np.testing.assert_array_equal(resize_bilinear(a, height=321, width=24), _pillow(a, 24, 321))
    np.testing.assert_array_equal(resize_bilinear(a, height=17, width=467), _pillow(a, 467, 17))
