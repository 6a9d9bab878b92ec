"""UCR/UEA sets from the aeon wheel's data files (no download, aeon never imported) and user .ts files."""

import sys

import numpy as np
import pytest

from tinynas.data import load_dataset
from tinynas.errors import DatasetError, SpaceError


@pytest.mark.parametrize("name, shape, classes, test_size", [
    ("gunpoint", (150, 1), 2, 150),
    ("arrowhead", (251, 1), 3, 175),
    ("italypowerdemand", (24, 1), 2, 1029),
    ("basicmotions", (100, 6), 4, 40),  # multivariate
    ("japanesevowels", (25, 12), 9, 370),  # multivariate
])
def test_archive_sets_load_offline_with_their_test_split(name, shape, classes, test_size):
    ds = load_dataset(name)
    assert ds.input_shape == shape and ds.num_classes == classes and len(ds.y_test) == test_size
    assert ds.structure_json() == {"kind": "sequence", "length": shape[0], "channels": shape[1]}
    assert np.isfinite(ds.x_train).all() and ds.x_train.std() > 0.1
    assert "aeon" not in sys.modules  # read from the wheel's files, aeon (numba, pandas) never imported


def _ts(path, body, header="@problemName T\n@univariate false\n@classLabel true a b\n@data\n"):
    path.write_text(header + body)
    return path


def test_ts_pair_unequal_lengths_and_missing_values(tmp_path):
    _ts(tmp_path / "X_TRAIN.ts", "1,2,3:4,5,6:a\n1,?,3,4:4,5,6,7:b\n" * 4)
    _ts(tmp_path / "X_TEST.ts", "1,2:3,4:b\n1,2,3,4,5:1,1,1,1,1:a\n")
    ds = load_dataset(tmp_path / "X_TRAIN.ts", val_fraction=0.25)
    assert ds.input_shape == (4, 2) and ds.class_names == ("a", "b") and len(ds.y_test) == 2
    x = np.concatenate([ds.x_train, ds.x_val])
    assert np.all(x[:, 3, :] == np.where(x[:, 3, 0:1] == 3, [[3, 6]], [[4, 7]]))  # padded with the last value
    assert not np.isnan(x).any()  # '?' filled from its neighbour
    assert ds.x_test[0, :, 0].tolist() == [1, 2, 2, 2]  # test cases fitted to the training length


@pytest.mark.parametrize("body, header, message", [
    ("1,2:a\n", "@classLabel true a b\n", r"no cases after @data"),
    ("1,2:3,4:a\n1,2:b\n", None, r"bad.ts:6: 1 dimensions, earlier cases have 2"),
    ("1,x:3,4:a\n", None, r"bad.ts:5: not a number"),
    ("1,2:3,4:c\n", None, r"class labels \['c'\] are not in the @classLabel list"),
    ("1,2:3,4:a\n", "@timeStamps true\n@classLabel true a b\n@data\n", r"time stamps are not supported"),
    ("1,2\n", "@classLabel false\n@data\n", r"@classLabel must be true"),
])
def test_bad_ts_files_name_file_and_line(tmp_path, body, header, message):
    path = tmp_path / "bad.ts"
    if header is None:
        _ts(path, body)
    else:
        path.write_text(header + body)
    with pytest.raises(DatasetError, match=message):
        load_dataset(path)


def test_a_sequence_shorter_than_every_tokenizer_stride_is_refused_clearly():
    from tinynas.space import get_space

    ds = load_dataset("italypowerdemand")
    get_space("tinyformer", input_shape=ds.input_shape, num_classes=ds.num_classes)  # 24 samples: k2s2..k8s8 fit
    with pytest.raises(SpaceError, match=r"sequence of 3 samples.*use a sequence of at least 4 samples"):
        get_space("tinyformer", input_shape=(3, 1), num_classes=2)
