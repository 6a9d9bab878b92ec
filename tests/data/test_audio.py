"""WAV folders become MFCC features like a keyword spotter's front end (49x10 for 1 s at 16 kHz)."""

import numpy as np
import pytest
from scipy.io import wavfile

from tinynas.data import load_dataset
from tinynas.data.features import log_mel_spectrogram, mel_filterbank, mfcc
from tinynas.errors import DatasetError


def _wav_folder(root, rate=16000, n=8, seconds=1.0):
    rng = np.random.default_rng(0)
    t = np.arange(int(rate * seconds)) / rate
    for name, freq in (("low", 300.0), ("high", 2500.0)):
        (root / name).mkdir(parents=True)
        for i in range(n):
            tone = 0.5 * np.sin(2 * np.pi * (freq + 20 * i) * t) + 0.05 * rng.normal(size=t.shape)
            wavfile.write(root / name / f"{i}.wav", rate, (tone * 32767).astype(np.int16))
    return root


def test_mfcc_shape_matches_kws_front_end():
    x = np.random.default_rng(0).normal(size=16000).astype(np.float32)
    assert mfcc(x, sample_rate_hz=16000).shape == (49, 10)
    assert log_mel_spectrogram(x, sample_rate_hz=16000).shape == (49, 40)
    fb = mel_filterbank(num_mel_bins=40, fft_size=1024, sample_rate_hz=16000)
    assert fb.shape == (513, 40) and fb.min() >= 0 and np.all(fb.max(axis=0) > 0)


def test_tone_frequency_lands_in_the_right_mel_band():
    t = np.arange(16000) / 16000
    low = log_mel_spectrogram(np.sin(2 * np.pi * 300 * t), sample_rate_hz=16000).mean(axis=0)
    high = log_mel_spectrogram(np.sin(2 * np.pi * 2500 * t), sample_rate_hz=16000).mean(axis=0)
    assert np.argmax(low) < np.argmax(high)


def test_wav_folder_to_mfcc(tmp_path):
    root = _wav_folder(tmp_path / "kws")
    ds = load_dataset(root)
    assert ds.input_shape == (49, 10, 1) and ds.class_names == ("high", "low")
    assert "mfcc" in ds.input_scaling.description and "16000 Hz" in ds.input_scaling.description
    logmel = load_dataset(root, features="logmel")
    assert logmel.input_shape == (49, 40, 1)
    assert logmel.fingerprint != ds.fingerprint


def test_short_clips_are_padded(tmp_path):
    root = _wav_folder(tmp_path / "kws", seconds=0.5)
    assert load_dataset(root).input_shape == (49, 10, 1)


def test_long_clips_are_cut_to_clip_ms_and_the_log_says_so(tmp_path, caplog):
    root = _wav_folder(tmp_path / "kws", n=3)
    t = np.arange(40000) / 16000
    wavfile.write(root / "low" / "long.wav", 16000, (8000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16))
    assert load_dataset(root).input_shape == (49, 10, 1)
    assert "1 of 7 clips are longer than 1000 ms (the longest" in caplog.text and "long.wav, 2500 ms" in caplog.text
    assert "-o clip_ms=N" in caplog.text
    caplog.clear()
    load_dataset(root, clip_ms=2500)
    assert "longer than" not in caplog.text


def test_wav_of_another_sample_rate_is_refused(tmp_path):
    root = _wav_folder(tmp_path / "kws", rate=8000, n=3)
    with pytest.raises(DatasetError, match=r"\.wav: sample rate is 8000 Hz, expected 16000 Hz.*resample=true.*"
                                           r"sample_rate_hz=8000"):
        load_dataset(root)
    assert load_dataset(root, sample_rate_hz=8000).input_shape == (49, 10, 1)


def test_clips_at_another_rate_are_resampled_to_the_microphones_on_request(tmp_path):
    """A 44.1 kHz recording resampled to 16 kHz gives the log-mel energies of the same tones recorded at 16 kHz
    where the tones are (the bands near silence differ with the noise)."""
    rng = np.random.default_rng(0)
    for rate in (16000, 44100):
        t = np.arange(rate) / rate
        for label in ("a", "b"):
            (tmp_path / str(rate) / label).mkdir(parents=True)
            for i in range(3):
                tone = 0.5 * np.sin(2 * np.pi * (440 + 900 * (label == "b")) * t) + 0.3 * np.sin(2 * np.pi * 2500 * t)
                wavfile.write(tmp_path / str(rate) / label / f"{i}.wav", rate,
                              ((tone + 0.01 * rng.normal(size=t.size)) * 32767).astype(np.int16))
    native = load_dataset(tmp_path / "16000", features="logmel", normalize=False)
    resampled = load_dataset(tmp_path / "44100", features="logmel", normalize=False, resample=True)
    for a, b in zip(native.x_train[..., 0], resampled.x_train[..., 0]):
        strong = a > a.max() - 3  # the bands the tones fall in
        assert strong.sum() >= 49 * 2 and np.abs(a - b)[strong].max() < 0.05


def test_wav_folder_with_one_class_is_refused(tmp_path):
    root = tmp_path / "kws"
    (root / "yes").mkdir(parents=True)
    wavfile.write(root / "yes" / "a.wav", 16000, np.zeros(16000, np.int16))
    with pytest.raises(DatasetError, match="only one class folder"):
        load_dataset(root)
