import numpy as np
import pytest

from tinynas.data import Dataset, dataset_names, load_dataset
from tinynas.errors import DatasetError


def test_registered_names():
    names = dataset_names()
    for n in ("digits", "mnist1d", "synthetic-image", "synthetic-seq", "mnist", "fashion_mnist", "cifar10"):
        assert n in names


def test_digits_splits_shape_scaling():
    ds = load_dataset("digits")
    assert isinstance(ds, Dataset)
    assert ds.input_shape == (8, 8, 1) and ds.num_classes == 10
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 1797
    assert len(ds.y_val) == pytest.approx(0.15 * 1797, abs=10) and len(ds.y_test) == pytest.approx(0.15 * 1797, abs=10)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() == 1.0
    assert ds.input_scaling.scale == 1 / 16 and "16" in ds.input_scaling.description
    info = ds.to_json()
    assert min(info["counts"]["val"]) >= 25  # stratified: every class in every split
    assert info["fingerprint"] == ds.fingerprint and len(ds.fingerprint) == 40


def test_splits_and_fingerprint_are_deterministic_for_a_seed():
    a, b = load_dataset("digits", seed=5), load_dataset("digits", seed=5)
    assert a.fingerprint == b.fingerprint
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    c = load_dataset("digits", seed=6)
    assert c.fingerprint != a.fingerprint
    assert not np.array_equal(c.y_train, a.y_train)
    d = load_dataset("digits", seed=5, val_fraction=0.2)
    assert d.fingerprint != a.fingerprint


def test_mnist1d_generated_offline_and_cached(tinynas_home):
    ds = load_dataset("mnist1d")
    assert ds.input_shape == (40, 1) and ds.num_classes == 10
    assert len(ds.y_test) == 1000 and len(ds.y_train) + len(ds.y_val) == 4000
    cached = list((tinynas_home / "datasets").glob("mnist1d_*.npz"))
    assert len(cached) == 1
    state = np.random.get_state()[1].copy()
    again = load_dataset("mnist1d")
    assert again.fingerprint == ds.fingerprint
    assert np.array_equal(np.random.get_state()[1], state)


def test_synthetic_sets_are_learnable_shapes():
    img = load_dataset("synthetic-image", image_size=12, channels=3, num_classes=5, num_samples=200)
    assert img.input_shape == (12, 12, 3) and img.num_classes == 5
    seq = load_dataset("synthetic-seq", length=32, channels=2)
    assert seq.input_shape == (32, 2)


def test_unknown_name_and_option_are_clear():
    with pytest.raises(DatasetError, match="unknown dataset 'nope'.*digits"):
        load_dataset("nope")
    with pytest.raises(DatasetError, match="no option 'size'.*image_size"):
        load_dataset("synthetic-image", size=3)
    with pytest.raises(DatasetError, match="val_fraction"):
        load_dataset("digits", val_fraction=0.0)
