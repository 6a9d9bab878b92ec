"""``glyphs``: digits rendered offline from matplotlib's fonts, distorted; seeded, cached, and harder than digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tinynas.cli.main import cli
from tinynas.data import load_dataset
from tinynas.data.glyphs import CLASSES, FONT_FILES, SIZE, SUPER, _templates, generate_glyphs
from tinynas.errors import DatasetError


def test_every_font_draws_every_digit_with_its_holes_open():
    t = _templates()
    assert t.shape == (len(FONT_FILES), 10, SIZE * SUPER, SIZE * SUPER)
    ink = t.mean(axis=(2, 3))
    assert (ink > 0.05).all() and (ink < 0.5).all()  # a glyph, not an empty or filled square
    centre = SIZE * SUPER // 2
    zero, eight = CLASSES.index("0"), CLASSES.index("8")
    plain = [i for i, f in enumerate(FONT_FILES) if "Mono" not in f]  # DejaVu Sans Mono dots its zero
    assert (t[plain, zero, centre, centre] == 0).all()  # the counter of a 0 is background
    assert (t[:, eight].mean(axis=(1, 2)) < 0.45).all()


def test_generation_is_seeded_balanced_and_in_range():
    a_x, a_y = generate_glyphs(num_samples=120, seed=3)
    b_x, b_y = generate_glyphs(num_samples=120, seed=3)
    c_x, _ = generate_glyphs(num_samples=120, seed=4)
    assert np.array_equal(a_x, b_x) and np.array_equal(a_y, b_y) and not np.array_equal(a_x, c_x)
    assert a_x.shape == (120, 28, 28, 1) and a_x.dtype == np.float32
    assert a_x.min() >= 0.0 and a_x.max() <= 1.0
    assert np.bincount(a_y, minlength=10).tolist() == [12] * 10


def test_distortion_makes_it_harder():
    """A linear classifier separates clean glyphs far better than distorted ones (fit and scored on fresh samples)."""
    from sklearn.linear_model import LogisticRegression

    scores = {}
    for difficulty in (0.0, 1.0):
        x, y = generate_glyphs(num_samples=800, seed=0, difficulty=difficulty)
        clf = LogisticRegression(max_iter=300).fit(x[:600].reshape(600, -1), y[:600])
        scores[difficulty] = clf.score(x[600:].reshape(200, -1), y[600:])
    assert scores[0.0] > 0.9 and scores[1.0] < scores[0.0] - 0.2, scores


def test_the_loader_caches_and_splits(tinynas_home):
    ds = load_dataset("glyphs", num_samples=300)
    assert ds.input_shape == (28, 28, 1) and ds.num_classes == 10 and ds.class_names == CLASSES
    assert len(ds.y_test) == 50 and len(ds.y_train) + len(ds.y_val) == 250
    cached = list((tinynas_home / "datasets").glob("glyphs_v1_n300_d1_s0.npz"))
    assert cached
    mtime = cached[0].stat().st_mtime_ns
    again = load_dataset("glyphs", num_samples=300)
    assert again.fingerprint == ds.fingerprint and cached[0].stat().st_mtime_ns == mtime


@pytest.mark.parametrize("options, message", [
    ({"num_samples": 10}, "num_samples must be at least 100"),
    ({"difficulty": 3.0}, "difficulty must be between 0 and 2"),
])
def test_bad_options_say_the_bound(options, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset("glyphs", **options)


def test_listed_and_inspected_through_the_cli():
    listed = CliRunner().invoke(cli, ["datasets", "list"])
    assert listed.exit_code == 0 and "glyphs" in listed.output
    shown = CliRunner().invoke(cli, ["datasets", "inspect", "glyphs", "-o", "num_samples=200"])
    assert shown.exit_code == 0, shown.output
    assert "(28, 28, 1)" in shown.output


def test_a_matplotlib_without_every_font_is_refused_not_rendered_with_fewer(tmp_path, monkeypatch):
    """matplotlib 3.10 (what pip picks on Python 3.10) lacks cmti10.ttf; 20 fonts would be another dataset."""
    import matplotlib

    fonts = tmp_path / "fonts" / "ttf"
    fonts.mkdir(parents=True)
    shipped = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    for name in FONT_FILES:
        if name != "cmti10.ttf":
            (fonts / name).symlink_to(shipped / name)
    monkeypatch.setattr(matplotlib, "get_data_path", lambda: str(tmp_path))
    with pytest.raises(DatasetError, match=r"lacks cmti10\.ttf \(3\.11\.2 has them all\): pip install -U "
                                           r"'matplotlib>=3\.11'"):
        _templates()
