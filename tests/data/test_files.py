"""Each user-data loader on files the test writes: image folders, .npz, .csv."""

import numpy as np
import pytest
from PIL import Image

from tinynas.data import load_dataset
from tinynas.errors import DatasetError


def _image_folder(root, classes=("cat", "dog"), n=6, size=(10, 8), mode="L"):
    rng = np.random.default_rng(0)
    for ci, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for i in range(n):
            shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
            a = (rng.integers(0, 60, size=shape) + 150 * ci).astype(np.uint8)
            Image.fromarray(a, mode=None).save(root / c / f"{i}.png")
    return root


def test_image_folder_grey(tmp_path):
    root = _image_folder(tmp_path / "imgs")
    ds = load_dataset(root)
    assert ds.input_shape == (8, 10, 1)  # H, W, C
    assert ds.class_names == ("cat", "dog")
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 12
    assert ds.x_train.max() <= 1.0 and ds.input_scaling.scale == pytest.approx(1 / 255)
    # pixel values survive: class 'dog' images are bright
    all_x = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
    all_y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    assert all_x[all_y == 1].min() >= 150 / 255 - 1e-6
    assert load_dataset(root).fingerprint == ds.fingerprint
    assert ds.preprocessing == ""  # grey images of one size: firmware has nothing to repeat


def test_image_folder_rgb_resized(tmp_path):
    root = _image_folder(tmp_path / "imgs", classes=("a", "b", "c"), mode="RGB")
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(root / "a" / "big.png")
    with pytest.raises(DatasetError, match=r"big.png: image is 20x20 .* image_size=N"):
        load_dataset(root)
    ds = load_dataset(root, image_size=16)
    assert ds.input_shape == (16, 16, 3) and ds.num_classes == 3
    # what the loader did, which firmware must repeat on a camera frame, reaches model_data.h with the scaling
    from tinynas.deploy.deployer import scaling_text

    assert ds.preprocessing == "resized to 16x16 (bilinear)"
    grey = load_dataset(root, image_size=16, color_mode="grayscale")
    assert grey.preprocessing == ("colour turned to grey as PIL does (L = 0.299 R + 0.587 G + 0.114 B), "
                                  "then resized to 16x16 (bilinear)")
    assert scaling_text(grey).startswith(grey.preprocessing + "; then x = raw * 0.00392156")
    assert grey.to_json()["preprocessing"] == grey.preprocessing


@pytest.mark.parametrize("pixels, values", [
    (np.full((8, 10), 29_000, np.uint16), "29000..29000"),  # a 14-bit thermal frame: Pillow clips it to white
    (np.full((8, 10), 0.5, np.float32), "0.5..0.5"),  # a 0..1 float image: Pillow rounds it to black
])
def test_an_image_beyond_eight_bits_is_refused_not_clipped(tmp_path, pixels, values):
    root = _image_folder(tmp_path / "imgs")
    Image.fromarray(pixels).save(root / "cat" / "deep.tif")
    with pytest.raises(DatasetError, match=rf"deep.tif: a \S+ image with values {values}; .* scale them to 8 bits"):
        load_dataset(root)
    # 16-bit images whose values are 8-bit ones are read as they are, grey
    (root / "cat" / "deep.tif").unlink()
    Image.fromarray(np.full((8, 10), 200, np.uint16)).save(root / "cat" / "deep.png")
    ds = load_dataset(root)
    assert ds.input_shape == (8, 10, 1)
    assert np.isclose(np.concatenate([ds.x_train, ds.x_val, ds.x_test]), 200 / 255).all(axis=(1, 2, 3)).sum() == 1


def test_an_image_folder_is_decoded_once_then_read_from_the_cache(tmp_path, monkeypatch, caplog):
    """A resumed run or a worker process reads the pixels cached by the first load; a changed file, another
    option or an unreadable cache file decodes the folder again."""
    import os

    import PIL.Image

    monkeypatch.setenv("TINYNAS_HOME", str(tmp_path / "home"))
    root = _image_folder(tmp_path / "imgs", mode="RGB")
    first = load_dataset(root, image_size=6, color_mode="grayscale")
    cache = tmp_path / "home" / "image-folders"
    assert len(list(cache.glob("*.npz"))) == 1
    opened = []
    real_open = PIL.Image.open
    monkeypatch.setattr(PIL.Image, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    again = load_dataset(root, image_size=6, color_mode="grayscale")
    assert not opened and again.fingerprint == first.fingerprint and again.preprocessing == first.preprocessing
    np.testing.assert_array_equal(again.x_train, first.x_train)
    load_dataset(root, image_size=5, color_mode="grayscale")  # another option: decoded
    assert len(opened) == 2 * 12
    opened.clear()
    picture = root / "cat" / "0.png"
    Image.fromarray(np.full((8, 10, 3), 255, np.uint8)).save(picture)
    os.utime(picture, ns=(1, 1))  # whatever the clock's resolution, the file's time changed
    changed = load_dataset(root, image_size=6, color_mode="grayscale")
    assert len(opened) == 2 * 12 and changed.fingerprint != first.fingerprint
    # the pixels of the folder's old files can never match again: replaced, not kept beside (image_size=5 stays)
    assert len(list(cache.glob("*.npz"))) == 2
    opened.clear()
    for written in cache.glob("*.npz"):
        written.write_bytes(b"not an npz")
    again = load_dataset(root, image_size=6, color_mode="grayscale")
    assert len(opened) == 2 * 12 and again.fingerprint == changed.fingerprint
    assert "cannot be read" in caplog.text and "decoding the images again" in caplog.text


def test_a_photo_is_read_upright_as_its_exif_orientation_says(tmp_path):
    """A phone stores a portrait photo as landscape pixels plus an EXIF orientation; every viewer (and the
    person who sorted the folder) sees it upright, so training does too."""
    root = _image_folder(tmp_path / "imgs", size=(8, 10))  # 8 wide, 10 high
    upright = np.arange(80, dtype=np.uint8).reshape(10, 8)
    stored = np.rot90(upright, k=1)  # what a sensor held sideways wrote: 10 wide, 8 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to show"
    Image.fromarray(stored).save(root / "cat" / "portrait.png", exif=exif)
    ds = load_dataset(root)
    assert ds.input_shape == (10, 8, 1)  # one size with the others: no "image is 10x8" refusal
    pictures = np.round(np.concatenate([ds.x_train, ds.x_val, ds.x_test])[..., 0] * 255).astype(np.uint8)
    assert any(np.array_equal(x, upright) for x in pictures)


def test_image_folder_with_one_class_is_refused(tmp_path):
    root = _image_folder(tmp_path / "imgs", classes=("only",))
    with pytest.raises(DatasetError, match=r"only one class folder \('only'\).*at least two"):
        load_dataset(root)


def test_transparent_pixels_are_composited_onto_a_background_not_dropped(tmp_path, caplog):
    """Black strokes on a transparent background (a drawing exported from a paint program): dropping the alpha
    channel leaves the black stored under the transparent pixels, an all-black picture."""
    root = _image_folder(tmp_path / "imgs")
    drawing = np.zeros((8, 10, 2), np.uint8)  # grey + alpha: transparent black everywhere
    drawing[2:6, 3, 1] = 255  # an opaque black stroke
    Image.fromarray(drawing, mode="LA").save(root / "cat" / "drawing.png")
    ds = load_dataset(root)
    assert ds.input_shape == (8, 10, 1)  # grey with alpha is grey
    pictures = np.round(np.concatenate([ds.x_train, ds.x_val, ds.x_test])[..., 0] * 255)
    expected = np.full((8, 10), 255.0)
    expected[2:6, 3] = 0
    assert any(np.array_equal(x, expected) for x in pictures)
    assert "1 of 13 images have transparent pixels: composited onto white (background=black" in caplog.text
    on_black = load_dataset(root, background="black")
    pictures = np.round(np.concatenate([on_black.x_train, on_black.x_val, on_black.x_test])[..., 0] * 255)
    assert any(not x.any() for x in pictures)  # black strokes on black
    with pytest.raises(DatasetError, match="background must be white or black, got 'grey'"):
        load_dataset(root, background="grey")


def test_image_folder_sub_folders_are_read_and_hidden_files_are_not(tmp_path):
    root = _image_folder(tmp_path / "imgs")
    (root / "dog" / "day2").mkdir()
    Image.fromarray(np.full((8, 10), 200, np.uint8)).save(root / "dog" / "day2" / "late.png")
    (root / "cat" / "._0.png").write_bytes(b"\x00\x05\x16\x07 macOS metadata, not a picture")
    (root / "__MACOSX" / "cat").mkdir(parents=True)  # what unzipping an archive made on macOS leaves
    (root / "__MACOSX" / "cat" / "._0.png").write_bytes(b"\x00\x05\x16\x07 macOS metadata")
    (root / "cat" / ".ipynb_checkpoints").mkdir()
    Image.fromarray(np.zeros((8, 10), np.uint8)).save(root / "cat" / ".ipynb_checkpoints" / "0-checkpoint.png")
    ds = load_dataset(root)
    y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    assert ds.class_names == ("cat", "dog") and (np.sum(y == 0), np.sum(y == 1)) == (6, 7)


def test_image_folder_with_an_empty_class_is_refused(tmp_path):
    root = _image_folder(tmp_path / "imgs")
    (root / "empty").mkdir()
    with pytest.raises(DatasetError, match="'empty' hold no image files"):
        load_dataset(root)


@pytest.mark.parametrize("dtype, low, high, scale, says", [
    (np.int64, 0, 255, 1 / 255, "integer values 0..255 divided by 255"),  # pixels in any integer type
    (np.uint16, 0, 4000, 1 / 4095, "unsigned 12-bit integer values 0..4095 divided by 4095"),  # a 12-bit ADC
    (np.int16, -20000, 20000, 1 / 32768, "signed 16-bit integer values -32768..32767 divided by 32768"),  # raw IMU
])
def test_npz_integers_are_scaled_by_the_range_their_bits_hold(tmp_path, dtype, low, high, scale, says):
    rng = np.random.default_rng(2)
    x = rng.integers(low, high + 1, size=(60, 16, 3)).astype(dtype)
    x[0, 0, 0], x[1, 0, 0] = low, high
    np.savez(tmp_path / "adc.npz", x=x, y=np.arange(60) % 3)
    ds = load_dataset(tmp_path / "adc.npz")
    assert ds.input_scaling.scale == pytest.approx(scale) and ds.input_scaling.description == says
    all_x = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
    assert all_x.max() == pytest.approx(high * scale) and all_x.min() == pytest.approx(low * scale)


def test_npz_with_and_without_test_split(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "data.npz"
    np.savez(path, x=rng.integers(0, 256, size=(100, 6, 6, 1)).astype(np.uint8), y=np.arange(100) % 4,
             x_test=rng.integers(0, 256, size=(20, 6, 6, 1)).astype(np.uint8), y_test=np.arange(20) % 4,
             class_names=np.array(["w", "x", "y", "z"]))
    ds = load_dataset(path)
    assert ds.input_shape == (6, 6, 1) and ds.class_names == ("w", "x", "y", "z")
    assert len(ds.y_test) == 20 and len(ds.y_train) + len(ds.y_val) == 100
    assert ds.x_train.max() <= 1.0 and "255" in ds.input_scaling.description

    flat = tmp_path / "flat.npz"
    np.savez(flat, x=rng.normal(size=(60, 12)).astype(np.float32), y=np.array(["up", "down"] * 30))
    ds2 = load_dataset(flat)
    assert ds2.input_shape == (12, 1) and ds2.class_names == ("down", "up")
    assert len(ds2.y_train) + len(ds2.y_val) + len(ds2.y_test) == 60


def test_npz_named_as_keras_datasets_name_them_with_a_validation_split(tmp_path):
    """x_train/y_train, as keras.datasets.*.load_data() name them, and a fixed x_val/y_val."""
    rng = np.random.default_rng(3)
    path = tmp_path / "keras_style.npz"
    x = rng.integers(0, 256, size=(80, 6, 6, 1)).astype(np.uint8)
    np.savez(path, x_train=x, y_train=np.arange(80) % 4, x_val=x[:12] // 2, y_val=np.arange(12) % 4,
             x_test=x[:20], y_test=np.arange(20) % 4)
    ds = load_dataset(path)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (80, 12, 20)
    np.testing.assert_allclose(ds.x_val, (x[:12] // 2) / 255, atol=1e-6)
    np.testing.assert_array_equal(ds.y_val, np.arange(12) % 4)
    assert ds.x_train.max() <= 1.0 and "255" in ds.input_scaling.description
    no_test = tmp_path / "no_test.npz"
    np.savez(no_test, x=x, y=np.arange(80) % 4, x_val=x[:12], y_val=np.arange(12) % 4)
    ds = load_dataset(no_test)  # the test split is carved from x
    assert len(ds.y_val) == 12 and len(ds.y_train) + len(ds.y_test) == 80 and len(ds.y_test) > 0
    grouped, subject = tmp_path / "grouped.npz", np.repeat(np.arange(8), 10)  # 8 subjects of 10 samples
    np.savez(grouped, x=x, y=np.arange(80) % 4, groups=subject)
    ds = load_dataset(grouped)
    key = lambda v: np.round(v * 255).astype(np.uint8).tobytes()  # noqa: E731  (a sample's pixels)
    of = {key(v / 255): g for v, g in zip(x, subject)}
    train, val, test = ({of[key(v)] for v in part} for part in (ds.x_train, ds.x_val, ds.x_test))
    assert val and test and not (train & val or train & test or val & test)
    np.savez(grouped, x=x, y=np.arange(80) % 4, groups=np.arange(3))
    with pytest.raises(DatasetError, match=r"groups must hold one subject or session id per sample of x"):
        load_dataset(grouped)
    both = tmp_path / "both.npz"
    np.savez(both, x=x, y=np.arange(80) % 4, x_train=x)
    with pytest.raises(DatasetError, match="both.npz: holds both x and x_train; keep one"):
        load_dataset(both)
    half = tmp_path / "half.npz"
    np.savez(half, x=x, y=np.arange(80) % 4, x_val=x[:12])
    with pytest.raises(DatasetError, match="half.npz: x_val and y_val must be given together"):
        load_dataset(half)


def test_npz_bad_inputs(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, features=np.zeros((4, 3)), y=np.zeros(4))
    with pytest.raises(DatasetError, match=r"bad.npz: missing array\(s\) \['x'\]; found"):
        load_dataset(path)
    one = tmp_path / "one.npz"
    np.savez(one, x=np.zeros((10, 4, 1), np.float32), y=np.zeros(10, np.int64))
    with pytest.raises(DatasetError, match="at least 2 classes"):
        load_dataset(one)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="garbage.npz: not a readable .npz"):
        load_dataset(garbage)


def _csv(path, n=40, label="label", channels=3, steps=5):
    rng = np.random.default_rng(2)
    cols = [f"{axis}{t}" for t in range(steps) for axis in "xyz"[:channels]]
    lines = [",".join(cols + [label])]
    for i in range(n):
        cls = ["walk", "run"][i % 2]
        vals = rng.normal(loc=3.0 * (i % 2), size=len(cols))
        lines.append(",".join(f"{v:.4f}" for v in vals) + f",{cls}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_windows(tmp_path):
    path = _csv(tmp_path / "imu.csv")
    ds = load_dataset(path, channels=3)
    assert ds.input_shape == (5, 3) and ds.class_names == ("run", "walk")
    assert ds.input_scaling.scale != 1.0 and "(x - " in ds.input_scaling.description
    all_x = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
    assert abs(float(all_x.mean())) < 1e-4 and float(all_x.std()) == pytest.approx(1.0, abs=1e-3)
    assert load_dataset(path).input_shape == (15, 1)


def test_the_scaling_formula_writes_a_negative_offset_with_one_sign():
    from tinynas.data.types import InputScaling

    assert InputScaling(scale=0.5, offset=-0.25).formula() == "x = raw * 0.5 - 0.25"
    assert InputScaling(scale=0.773884, offset=-0.7568781).formula(".3g") == "x = raw * 0.774 - 0.757"
    assert InputScaling(scale=0.0625).formula() == "x = raw * 0.0625 + 0.0"


def test_csv_train_file_takes_its_test_sibling_with_labels(tmp_path, caplog):
    """har_train.csv beside har_test.csv (any case): the fixed test split; Kaggle's test.csv without labels
    is left alone."""
    for stem in ("har_", "HAR_"):
        train = _csv(tmp_path / f"{stem}{'train' if stem.islower() else 'TRAIN'}.csv", n=40)
        _csv(tmp_path / f"{stem}{'test' if stem.islower() else 'TEST'}.csv", n=10)
        ds = load_dataset(train)
        assert len(ds.y_test) == 10 and len(ds.y_train) + len(ds.y_val) == 40
        assert f"test split {stem}{'test' if stem.islower() else 'TEST'}.csv, 10 windows" in ds.source
        # standardized with the training rows' statistics
        np.testing.assert_allclose(float(np.concatenate([ds.x_train, ds.x_val]).mean()), 0.0, atol=1e-5)
    (tmp_path / "kaggle").mkdir()
    kaggle = _csv(tmp_path / "kaggle" / "train.csv", n=40)
    (tmp_path / "kaggle" / "test.csv").write_text("x0,y0,z0\n1,2,3\n")
    with caplog.at_level("INFO", logger="tinynas.data.tabular"):
        ds = load_dataset(kaggle)
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 40 and "has no label column 'label'" in caplog.text
    other = tmp_path / "other"
    other.mkdir()
    _csv(other / "train.csv", n=20)
    _csv(other / "test.csv", n=10, channels=2)
    with pytest.raises(DatasetError, match=r"test.csv: its columns .* are not those of train.csv"):
        load_dataset(other / "train.csv")


def test_csv_log_of_time_steps_is_cut_into_windows_within_each_activity(tmp_path, caplog):
    """A phone or IMU export holds one time step per row (timestamp, ax, ay, az, activity): window=N cuts runs
    of one label into windows; read as windows, each row alone would be a 4-value sample."""
    rng = np.random.default_rng(4)
    runs = [("walk", 120), ("run", 80), ("walk", 60), ("sit", 100)]
    lines, t = ["timestamp,ax,ay,az,activity"], 0
    for activity, n in runs:
        for _ in range(n):
            lines.append(f"{t},{','.join(f'{v:.3f}' for v in rng.normal(size=3))},{activity}")
            t += 20
    path = tmp_path / "log.csv"
    path.write_text("\n".join(lines) + "\n")
    with caplog.at_level("WARNING", logger="tinynas.data.tabular"):
        load_dataset(path, label_column="activity")
    assert "each row looks like one time step of a log (4 feature columns" in caplog.text and "window=N" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="tinynas.data.tabular"):
        ds = load_dataset(path, label_column="activity", window=50, stride=25, ignore_columns="timestamp")
    assert "windows every 25 rows overlap (window 50)" in caplog.text and "test accuracy will read high" in caplog.text
    assert ds.input_shape == (50, 3)  # the timestamp is not a feature
    # windows start every 25 rows and stay inside one run: 3 + 2 + 1 + 3
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 9
    assert "9 windows of 50x3" in ds.source
    assert ds.preprocessing == "one input is 50 consecutive samples (rows) of ax, ay, az, in that order"
    with pytest.raises(DatasetError, match=r"ignore_columns names \['time'\], which are not columns"):
        load_dataset(path, label_column="activity", window=50, ignore_columns="time")
    with pytest.raises(DatasetError, match="channels does not apply with window"):
        load_dataset(path, label_column="activity", window=50, channels=3)
    with pytest.raises(DatasetError, match="no run of 200 consecutive rows has one label"):
        load_dataset(path, label_column="activity", window=200)


def test_csv_group_column_keeps_each_subject_in_one_split(tmp_path, caplog):
    """Windows of one wearer resemble each other: split by window, the test split would hold the wearer's
    other windows. With group_column the splits take whole subjects, and no window spans two."""
    rng = np.random.default_rng(5)
    lines = ["subject,ax,ay,marker,activity"]
    for subject in range(1, 9):
        for activity in ("walk", "sit"):
            for _ in range(60):
                ax, ay = rng.normal(size=2)
                lines.append(f"s{subject},{ax:.3f},{ay:.3f},{subject},{activity}")
    path = tmp_path / "wearers.csv"
    path.write_text("\n".join(lines) + "\n")
    with caplog.at_level("WARNING", logger="tinynas.data.tabular"):
        ds = load_dataset(path, label_column="activity", window=20, stride=10, group_column="subject", normalize=False)
    assert "overlap" not in caplog.text  # the splits follow the subjects: neighbours stay together
    assert ds.input_shape == (20, 3)  # the subject column is not a feature

    def subjects(x):
        marks = x[:, :, 2]
        assert np.all(marks == marks[:, :1])  # no window holds two subjects
        return set(marks[:, 0].astype(int).tolist())

    train, val, test = subjects(ds.x_train), subjects(ds.x_val), subjects(ds.x_test)
    assert train | val | test == set(range(1, 9)) and not (train & val or train & test or val & test)
    assert val and test and len(train) >= 5
    seeded = {frozenset(subjects(load_dataset(path, label_column="activity", window=20, stride=10, normalize=False,
                                              group_column="subject", seed=seed).x_test)) for seed in range(4)}
    assert len(seeded) > 1  # the seed picks the subjects, as it picks the samples without groups
    with pytest.raises(DatasetError, match="no group column 'user'"):
        load_dataset(path, label_column="activity", window=20, group_column="user")
    two = tmp_path / "two.csv"
    two.write_text("\n".join(ln for ln in lines if not ln.startswith(("s3", "s4", "s5", "s6", "s7", "s8"))) + "\n")
    with pytest.raises(DatasetError, match="2 group\\(s\\) cannot be split into 3 parts by group"):
        load_dataset(two, label_column="activity", window=20, group_column="subject")


def test_csv_group_column_of_one_activity_per_session_gives_every_split_each_activity(tmp_path):
    """A log file per activity session: drawn by group size alone, seed 0's test split held one activity."""
    rng = np.random.default_rng(0)
    lines = ["session,a,b,activity"]
    for session in range(12):
        activity = ("walk", "run", "sit")[session % 3]
        lines += [f"s{session},{a:.3f},{b:.3f},{activity}" for a, b in rng.normal(size=(40, 2))]
    path = tmp_path / "sessions.csv"
    path.write_text("\n".join(lines) + "\n")
    for seed in range(3):
        ds = load_dataset(path, label_column="activity", group_column="session", window=10, stride=10, seed=seed)
        for y in (ds.y_train, ds.y_val, ds.y_test):
            assert np.bincount(y, minlength=3).min() > 0, (seed, y)


def test_csv_without_label_column_names_the_fix(tmp_path):
    path = _csv(tmp_path / "imu.csv", label="activity")
    with pytest.raises(DatasetError, match=r"imu.csv: no label column 'label'; columns are .*label_column=NAME"):
        load_dataset(path)
    assert load_dataset(path, label_column="activity").num_classes == 2


@pytest.mark.parametrize("encoding, delimiter, decimal", [
    ("utf-8-sig", ",", "."),  # Excel's "CSV UTF-8": a byte-order mark before the first column's name
    ("utf-8", ";", ","),  # a spreadsheet in a locale whose decimal mark is a comma
    ("utf-8", "\t", "."),  # tab-separated, saved as .csv
])
def test_csv_as_spreadsheets_save_it(tmp_path, encoding, delimiter, decimal):
    plain = _csv(tmp_path / "plain.csv")
    rows = [line.split(",") for line in plain.read_text().splitlines()]
    rows = [[row[-1]] + row[:-1] for row in rows]  # the label column first, where a byte-order mark sticks
    saved = tmp_path / "saved.csv"
    saved.write_text("\n".join(delimiter.join(row).replace(".", decimal) for row in rows) + "\n", encoding=encoding)
    expected, got = load_dataset(plain, channels=3), load_dataset(saved, channels=3)
    assert got.class_names == expected.class_names
    np.testing.assert_array_equal(got.x_train, expected.x_train)
    np.testing.assert_array_equal(got.y_train, expected.y_train)


def test_npz_grey_images_without_a_channel_axis(tmp_path, caplog):
    """(N, H, W) is also the shape of sequences (N, L, C): uint8 ones are read so with a warning naming the fix,
    and images=true reads them as grey images."""
    path = tmp_path / "mnistlike.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.integers(0, 256, size=(60, 8, 6)).astype(np.uint8), y=np.arange(60) % 3)
    assert load_dataset(path).input_shape == (8, 6)
    assert "read as 60 sequences of 8 steps x 6 channels" in caplog.text and "images=true" in caplog.text
    assert load_dataset(path, images=True).input_shape == (8, 6, 1)
    np.savez(path, x=rng.normal(size=(60, 8, 6, 1)), y=np.arange(60) % 3)
    with pytest.raises(DatasetError, match=r"images=true is for grey images of shape \(N, H, W\), but x has shape"):
        load_dataset(path, images=True)


def test_csv_labels_written_as_floats_are_class_numbers(tmp_path):
    path = tmp_path / "float_labels.csv"
    path.write_text("a,b,label\n" + "".join(f"{i},{i % 3},{float(i % 12)}\n" for i in range(48)))
    ds = load_dataset(path)
    assert ds.class_names == tuple(str(i) for i in range(12))  # "10.0" after "2.0", not before
    assert set(np.concatenate([ds.y_train, ds.y_val, ds.y_test]).tolist()) == set(range(12))


def test_csv_bad_cells(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b,label\n1,2,x\n3,oops,y\n")
    with pytest.raises(DatasetError, match=r"line 3, column 'b': 'oops' is not a number"):
        load_dataset(path)
    path.write_text("a,b,label\n1,2,x\n3,4, \n")
    with pytest.raises(DatasetError, match=r"bad.csv: line 3 has no label in column 'label'; fill it in or remove"):
        load_dataset(path)
    with pytest.raises(DatasetError, match="cannot be split into 3 channels"):
        load_dataset(_csv(tmp_path / "c.csv", channels=2), channels=3)


def test_unreadable_path_kind(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(DatasetError, match="not a dataset tinynas can read"):
        load_dataset(path)
    packed = tmp_path / "flowers.7z"  # tinynas unpacks .zip and .tar(.gz) itself (test_remote.py), not this
    packed.write_bytes(b"7z\xbc\xaf\x27\x1c")
    with pytest.raises(DatasetError, match=r"flowers.7z: not a dataset tinynas can read; it is an archive \(.7z\): "
                                           "unpack it"):
        load_dataset(packed)
