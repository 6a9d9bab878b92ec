"""Class folders under train/, val/ (valid/, validation/) and test/ folders, as Kaggle, Roboflow and
Keras's tutorials lay image and audio data out: the splits are the folders', not classes named
"train" and "test"."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import wavfile

from tinynas.data import load_dataset
from tinynas.data.base import PATH_KINDS
from tinynas.errors import DatasetError


def _images(root: Path, counts: dict[str, dict[str, int]]) -> Path:
    """``counts[split][class]`` 12x12 grey PNGs whose brightness tells the class and split apart."""
    for s, (split, classes) in enumerate(counts.items()):
        for name, n in classes.items():
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                value = 20 * sorted(classes).index(name) + 5 * s + i % 3  # labels follow the names' order
                Image.fromarray(np.full((12, 12), value, dtype=np.uint8)).save(root / split / name / f"{i}.png")
    return root


def test_train_and_test_folders_are_the_splits_not_two_classes(tmp_path):
    root = _images(tmp_path / "flowers", {"train": {"rose": 20, "tulip": 20, "daisy": 20},
                                          "test": {"rose": 5, "tulip": 5, "daisy": 5}})
    ds = load_dataset(root, seed=0)
    assert ds.class_names == ("daisy", "rose", "tulip")
    assert len(ds.y_test) == 15 and len(ds.y_train) + len(ds.y_val) == 60
    assert np.bincount(ds.y_test).tolist() == [5, 5, 5]
    # the test split is exactly the test folder's pictures (its brightness: 20 * class + 5 * 1 + i % 3)
    raw = np.round(ds.x_test[:, 0, 0, 0] * 255).astype(int)
    assert sorted(set(raw - 20 * ds.y_test)) == [5, 6, 7]
    assert sorted(set(np.round(ds.x_train[:, 0, 0, 0] * 255).astype(int) - 20 * ds.y_train)) == [0, 1, 2]
    assert "test split as the folder gives it" in ds.source


@pytest.mark.parametrize("train_name, val_name, test_name", [("train", "val", "test"), ("Train", "valid", "Test"),
                                                              ("training_set", "Validation", "test_set")])
def test_a_validation_folder_is_the_validation_split(tmp_path, train_name, val_name, test_name):
    root = _images(tmp_path / "d", {train_name: {"a": 10, "b": 10}, val_name: {"a": 3, "b": 3},
                                    test_name: {"a": 4, "b": 4}})
    ds = load_dataset(root, seed=0)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (20, 6, 8)
    assert sorted(set(np.round(ds.x_val[:, 0, 0, 0] * 255).astype(int) - 20 * ds.y_val)) == [5, 6, 7]
    assert "validation and test splits as the folder gives them" in ds.source
    # the fingerprint follows the given split: the same pictures moved into train/ are another dataset
    assert ds.fingerprint != load_dataset(_images(tmp_path / "e", {"train": {"a": 13, "b": 13},
                                                                     "test": {"a": 4, "b": 4}})).fingerprint


def test_only_a_train_folder_carves_validation_and_test_from_it(tmp_path):
    ds = load_dataset(_images(tmp_path / "d", {"train": {"a": 20, "b": 20}}), seed=0)
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 40 and len(ds.y_test) > 0


def test_plain_class_folders_and_a_class_named_like_a_split_keep_their_meaning(tmp_path):
    """A "train" class (trains against cars) beside a "car" class is not a split layout."""
    ds = load_dataset(_plain(tmp_path / "vehicles", ["car", "train"]), seed=0)
    assert ds.class_names == ("car", "train") and len(ds.y_test) > 0


def _plain(root: Path, classes: list[str]) -> Path:
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(np.full((12, 12), 40 * c + i, dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


def test_a_test_class_the_training_folder_lacks_is_refused(tmp_path):
    root = _images(tmp_path / "d", {"train": {"a": 5, "b": 5}, "test": {"a": 2, "c": 2}})
    with pytest.raises(DatasetError, match=r"test: class folder\(s\) 'c' are not in .*train, which the model learns"):
        load_dataset(root)
    both = _images(tmp_path / "e", {"train": {"a": 5, "b": 5}, "val": {"a": 2, "b": 2}, "valid": {"a": 2, "b": 2}})
    with pytest.raises(DatasetError, match=r"both val/ and valid/ name the val split; merge them"):
        load_dataset(both)


def test_wav_split_folders_and_statistics_from_training_clips(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    for split, n, loud in (("train", 6, 0.5), ("test", 3, 0.05)):
        for name, freq in (("low", 300.0), ("high", 2500.0)):
            (tmp_path / "kws" / split / name).mkdir(parents=True)
            for i in range(n):
                tone = loud * np.sin(2 * np.pi * (freq + 20 * i) * t) + 0.01 * rng.normal(size=t.shape)
                wavfile.write(tmp_path / "kws" / split / name / f"{i}.wav", 16000, (tone * 32767).astype(np.int16))
    ds = load_dataset(tmp_path / "kws", features="logmel")
    assert ds.class_names == ("high", "low") and len(ds.y_test) == 6 and len(ds.y_train) + len(ds.y_val) == 12
    # standardized on the training clips: they average 0, the quieter test clips do not
    train = np.concatenate([ds.x_train, ds.x_val])
    assert abs(float(train.mean())) < 1e-4 and float(ds.x_test.mean()) < -0.1


def test_speech_commands_lists_are_the_splits_and_its_noise_is_not_a_word(tmp_path, caplog):
    """Speech Commands keeps each speaker in one split through validation_list.txt and testing_list.txt,
    and its _background_noise_ folder holds minutes of noise, not a word."""
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    root = tmp_path / "speech_commands"
    for word, freq in (("no", 300.0), ("yes", 2500.0)):
        (root / word).mkdir(parents=True)
        for speaker in range(6):
            tone = 0.5 * np.sin(2 * np.pi * (freq + 30 * speaker) * t) + 0.01 * rng.normal(size=t.shape)
            wavfile.write(root / word / f"spk{speaker}_nohash_0.wav", 16000, (tone * 32767).astype(np.int16))
    (root / "_background_noise_").mkdir()
    noise = (rng.normal(size=16000 * 60) * 3000).astype(np.int16)
    wavfile.write(root / "_background_noise_" / "white.wav", 16000, noise)
    (root / "validation_list.txt").write_text("no/spk4_nohash_0.wav\nyes/spk4_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("no/spk5_nohash_0.wav\nyes/spk5_nohash_0.wav\nyes/gone.wav\n")
    ds = load_dataset(root, seed=0)
    assert ds.class_names == ("no", "yes")
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (8, 2, 2)
    assert sorted(ds.y_test.tolist()) == [0, 1] and "validation and test splits as the folder gives" in ds.source

    (root / "testing_list.txt").write_text("no/spk4_nohash_0.wav\n")
    with pytest.raises(DatasetError, match=r"testing_list.txt: no/spk4_nohash_0.wav is also in validation_list.txt"):
        load_dataset(root)
    (root / "testing_list.txt").write_text("other/dir/x.wav\n")
    with caplog.at_level("WARNING", logger="tinynas.data.folders"):
        ds = load_dataset(root)
    assert "names none of the 12 files here" in caplog.text and len(ds.y_test) > 0


def test_a_folder_holding_the_dataset_in_a_folder_of_its_own_name_points_there(tmp_path):
    """A zip unpacked as flowers/flowers/<class>/: the one "class" holds the classes."""
    _images(tmp_path / "flowers" / "flowers", {"train": {"rose": 4, "tulip": 4}, "test": {"rose": 2, "tulip": 2}})
    with pytest.raises(DatasetError, match=r"flowers: found only one class folder \('flowers'\), and the classes "
                                           r"are inside it: pass .*flowers/flowers as the dataset"):
        load_dataset(tmp_path / "flowers")
    assert load_dataset(tmp_path / "flowers" / "flowers").class_names == ("rose", "tulip")


def test_fingerprints_of_datasets_from_before_the_new_options_stay(tmp_path, monkeypatch):
    """A CSV's window/stride/ignore_columns/group_column and a WAV folder's long_clips and group_by came after
    runs were made: at their defaults they leave the fingerprint as it was, so those runs still resume and their
    cached trainings still match. The CSV's is pinned (computed with commit 2e59a89). A WAV folder's features
    are float MFCCs, whose last bits differ between machines and numpy builds (an AMD EPYC without AVX-512
    and numpy 2.4.6 gave another hash for the same code), so there the hash must move when its new options are counted at their defaults."""
    lines = ["a,b,c,label"] + [f"{i % 7},{(3 * i) % 5},{i % 3},{'up' if i % 2 else 'down'}" for i in range(40)]
    (tmp_path / "w.csv").write_text("\n".join(lines) + "\n")
    t = np.arange(4000) / 16000
    for name, freq in (("low", 300.0), ("high", 2500.0)):
        (tmp_path / "kws" / name).mkdir(parents=True)
        for i in range(6):
            wavfile.write(tmp_path / "kws" / name / f"{i}.wav", 16000,
                          (0.5 * np.sin(2 * np.pi * (freq + 10 * i) * t) * 32767).astype(np.int16))
    assert load_dataset(tmp_path / "w.csv").fingerprint == "c630effbe15f5f0b56ba592797b4e3ba3266734c"
    kws = load_dataset(tmp_path / "kws", clip_ms=250).fingerprint
    assert load_dataset(tmp_path / "kws", clip_ms=250, long_clips="first", group_by="none").fingerprint == kws
    wav = PATH_KINDS.get("wav-folder")
    monkeypatch.setitem(PATH_KINDS._items, "wav-folder", dataclasses.replace(wav, later_options=()))
    assert load_dataset(tmp_path / "kws", clip_ms=250).fingerprint != kws
    assert load_dataset(tmp_path / "w.csv", window=1).fingerprint != "c630effbe15f5f0b56ba592797b4e3ba3266734c"


def test_long_recordings_cut_into_clips_keep_each_file_in_one_split(tmp_path, caplog):
    """Minutes of a machine's sound per file: long_clips=cut takes every whole clip_ms, and a file's clips,
    which resemble each other, stay in one split."""
    rng = np.random.default_rng(1)
    t = np.arange(16000 * 5) / 16000  # 5 s per file: 5 clips of 1 s
    for name, freq in (("normal", 400.0), ("worn", 1800.0)):
        (tmp_path / "motor" / name).mkdir(parents=True)
        for i in range(6):
            hum = 0.4 * np.sin(2 * np.pi * (freq + 25 * i) * t) + 0.02 * rng.normal(size=t.shape)
            wavfile.write(tmp_path / "motor" / name / f"run{i}.wav", 16000, (hum * 32767).astype(np.int16))
    with caplog.at_level("WARNING", logger="tinynas.data.audio"):
        first = load_dataset(tmp_path / "motor")
    assert len(first.y_train) + len(first.y_val) + len(first.y_test) == 12 and "long_clips=cut" in caplog.text
    ds = load_dataset(tmp_path / "motor", long_clips="cut")
    sizes = [len(ds.y_train), len(ds.y_val), len(ds.y_test)]
    assert sum(sizes) == 60 and all(n % 5 == 0 and n > 0 for n in sizes)  # whole files: 5 clips each
    assert "60 clips from 12 files" in ds.source
    with pytest.raises(DatasetError, match="long_clips must be 'first' or 'cut'"):
        load_dataset(tmp_path / "motor", long_clips="all")


def _sessions(root: Path, *, sessions: int = 6, per: int = 4) -> Path:
    """cat/s0..s5 and dog/s0..s5: each image's value tells its class (40 apart) and session (5 apart)."""
    for c, name in enumerate(("cat", "dog")):
        for s in range(sessions):
            (root / name / f"s{s}").mkdir(parents=True)
            for i in range(per):
                Image.fromarray(np.full((6, 6), 40 * c + 5 * s + i % 2, dtype=np.uint8)).save(
                    root / name / f"s{s}" / f"{i}.png")
    return root


def test_group_by_subfolder_keeps_each_session_in_one_split(tmp_path, caplog):
    """cat/alice/ and dog/alice/: the same speaker or camera session in two class folders. Carved at random,
    its other takes sat in training and test; group_by=subfolder keeps each in one split, every class in each."""
    root = _sessions(tmp_path / "pets")
    with caplog.at_level("WARNING", logger="tinynas.data.folders"):
        plain = load_dataset(root)
    assert "sub-folders 's0', 's1', 's2' and 3 more recur in several class folders" in caplog.text
    assert "-o group_by=subfolder" in caplog.text
    # the fingerprint at the default is the one computed before group_by existed (commit fed885f)
    assert plain.fingerprint == "5a5d108fff680e600e4850fd587d4e429a443e30"

    def sessions(x: np.ndarray) -> set[int]:
        return {int(round(v * 255)) % 40 // 5 for v in x[:, 0, 0, 0]}

    caplog.clear()
    with caplog.at_level("WARNING", logger="tinynas.data.folders"):
        ds = load_dataset(root, group_by="subfolder")
    assert "recur" not in caplog.text and ds.fingerprint != plain.fingerprint
    train, val, test = sessions(ds.x_train), sessions(ds.x_val), sessions(ds.x_test)
    assert train | val | test == set(range(6)) and not (train & val or train & test or val & test)
    for y in (ds.y_train, ds.y_val, ds.y_test):
        assert set(y.tolist()) == {0, 1}  # both classes in every split
    assert any(sessions(load_dataset(root, group_by="subfolder", seed=s).x_test) != test for s in range(1, 5))
    with pytest.raises(DatasetError, match="group_by must be none or subfolder, got 'speaker'"):
        load_dataset(root, group_by="speaker")


def test_group_by_subfolder_in_wav_folders_and_files_directly_in_a_class_folder(tmp_path):
    t = np.arange(4000) / 16000
    for c, name in enumerate(("low", "high")):
        for s in range(4):
            (tmp_path / "kws" / name / f"spk{s}").mkdir(parents=True)
            for i in range(3):
                tone = 0.4 * np.sin(2 * np.pi * (300 + 2000 * c + 40 * s + 5 * i) * t)
                wavfile.write(tmp_path / "kws" / name / f"spk{s}" / f"{i}.wav", 16000, (tone * 32767).astype(np.int16))
        wavfile.write(tmp_path / "kws" / name / "loose.wav", 16000, (0.3 * np.sin(2 * np.pi * 900 * t) * 32767)
                      .astype(np.int16))
    from tinynas.data.audio import load_wav_folder

    raw = load_wav_folder(tmp_path / "kws", clip_ms=250, group_by="subfolder")
    # a speaker is one group across both words; a file directly in a class folder is a group of its own
    loose = sorted(str(tmp_path / "kws" / name / "loose.wav") for name in ("high", "low"))
    assert sorted(set(raw.groups.tolist())) == loose + ["spk0", "spk1", "spk2", "spk3"]
    assert raw.groups.tolist().count("spk2") == 6
    ds = load_dataset(tmp_path / "kws", clip_ms=250, group_by="subfolder")
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 26
    for y in (ds.y_train, ds.y_val, ds.y_test):
        assert set(y.tolist()) == {0, 1}
