"""Keyword-spotting audio features in numpy: log-mel spectrograms and MFCCs; and the front ends, in numbers,
that firmware must repeat on its sensor's raw samples (``AudioFrontEnd``, ``ImageFrontEnd``).

The MLPerf Tiny KWS / Hello Edge (Zhang et al. 2017) front end: 1 s of 16 kHz
audio, 40 ms frames every 20 ms (49 frames), 40 mel bands over 20..4000 Hz,
log, DCT-II keeping 10 coefficients -> a 49x10 "image" per clip.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: 2595 log10(1 + f/700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(*, num_mel_bins: int, fft_size: int, sample_rate_hz: int,
                   lower_hz: float = 20.0, upper_hz: float = 4000.0) -> np.ndarray:
    """Triangular mel filters as a ``(fft_size // 2 + 1, num_mel_bins)`` matrix."""
    bins_hz = np.linspace(0.0, sample_rate_hz / 2.0, fft_size // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(lower_hz), hz_to_mel(upper_hz), num_mel_bins + 2))
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    f = bins_hz[:, None]
    rising = (f - lower) / (center - lower)
    falling = (upper - f) / (upper - center)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def frame_signal(signal: np.ndarray, *, frame_length: int, frame_step: int) -> np.ndarray:
    """Non-padded frames ``(num_frames, frame_length)``: 1 + (n - frame_length) // frame_step of them."""
    n = 1 + (len(signal) - frame_length) // frame_step
    idx = np.arange(frame_length)[None, :] + frame_step * np.arange(n)[:, None]
    return signal[idx]


def log_mel_spectrogram(signal: np.ndarray, *, sample_rate_hz: int, frame_ms: float = 40.0, hop_ms: float = 20.0,
                        num_mel_bins: int = 40, lower_hz: float = 20.0, upper_hz: float = 4000.0) -> np.ndarray:
    """``(num_frames, num_mel_bins)`` log of mel-weighted magnitude spectra (Hann window, FFT to a power of 2)."""
    frame_length = int(round(sample_rate_hz * frame_ms / 1000.0))
    frame_step = int(round(sample_rate_hz * hop_ms / 1000.0))
    fft_size = 1 << (frame_length - 1).bit_length()
    frames = frame_signal(np.asarray(signal, dtype=np.float32), frame_length=frame_length, frame_step=frame_step)
    window = np.hanning(frame_length + 1)[:-1].astype(np.float32)  # periodic Hann
    magnitude = np.abs(np.fft.rfft(frames * window, n=fft_size, axis=-1)).astype(np.float32)
    mel = magnitude @ mel_filterbank(num_mel_bins=num_mel_bins, fft_size=fft_size, sample_rate_hz=sample_rate_hz,
                                     lower_hz=lower_hz, upper_hz=upper_hz)
    return np.log(mel + 1e-6).astype(np.float32)


def mfcc(signal: np.ndarray, *, sample_rate_hz: int, num_mfcc: int = 10, **log_mel_kwargs: float) -> np.ndarray:
    """``(num_frames, num_mfcc)``: orthonormal DCT-II of the log-mel spectrogram, first ``num_mfcc`` kept."""
    from scipy.fft import dct

    log_mel = log_mel_spectrogram(signal, sample_rate_hz=sample_rate_hz, **log_mel_kwargs)
    return dct(log_mel, type=2, norm="ortho", axis=-1)[:, :num_mfcc].astype(np.float32)


@dataclass(frozen=True)
class AudioFrontEnd:
    """The front end a WAV folder's features came from, in numbers: what firmware must compute from its
    microphone's samples for the model to see what it was trained on (``tinynas.deploy.audio_frontend``
    writes it in C). ``features`` is "mfcc" or "logmel"; samples are int16 PCM read as ``s / 32767``."""

    features: str
    sample_rate_hz: int
    clip_ms: int
    frame_ms: float
    hop_ms: float
    num_mel_bins: int
    num_mfcc: int
    lower_hz: float = 20.0
    upper_hz: float = 4000.0

    @property
    def frame_length(self) -> int:
        return int(round(self.sample_rate_hz * self.frame_ms / 1000.0))

    @property
    def frame_step(self) -> int:
        return int(round(self.sample_rate_hz * self.hop_ms / 1000.0))

    @property
    def fft_size(self) -> int:
        return 1 << (self.frame_length - 1).bit_length()

    @property
    def clip_samples(self) -> int:
        return int(round(self.sample_rate_hz * self.clip_ms / 1000.0))

    @property
    def num_frames(self) -> int:
        return 1 + (self.clip_samples - self.frame_length) // self.frame_step

    @property
    def num_features(self) -> int:
        return self.num_mfcc if self.features == "mfcc" else self.num_mel_bins

    def window(self) -> np.ndarray:
        """The periodic Hann window ``log_mel_spectrogram`` multiplies each frame by (float32)."""
        return np.hanning(self.frame_length + 1)[:-1].astype(np.float32)

    def filterbank(self) -> np.ndarray:
        return mel_filterbank(num_mel_bins=self.num_mel_bins, fft_size=self.fft_size,
                              sample_rate_hz=self.sample_rate_hz, lower_hz=self.lower_hz, upper_hz=self.upper_hz)

    def dct_matrix(self) -> np.ndarray:
        """``(num_mel_bins, num_mfcc)``: log-mel row times this is ``mfcc``'s orthonormal DCT-II."""
        from scipy.fft import dct

        return dct(np.eye(self.num_mel_bins), type=2, norm="ortho", axis=-1)[:, :self.num_mfcc].astype(np.float32)

    def compute(self, signal: np.ndarray) -> np.ndarray:
        """``(num_frames, num_features)`` of one clip of samples in -1..1, as the WAV folder loader computes it."""
        kwargs = dict(sample_rate_hz=self.sample_rate_hz, frame_ms=self.frame_ms, hop_ms=self.hop_ms,
                      num_mel_bins=self.num_mel_bins, lower_hz=self.lower_hz, upper_hz=self.upper_hz)
        clip = np.zeros(self.clip_samples, dtype=np.float32)
        clip[: min(self.clip_samples, len(signal))] = np.asarray(signal, dtype=np.float32)[:self.clip_samples]
        if self.features == "mfcc":
            return mfcc(clip, num_mfcc=self.num_mfcc, **kwargs)
        return log_mel_spectrogram(clip, **kwargs)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ImageFrontEnd:
    """What an image folder's loader did to each picture before scaling: turned it into ``channels`` (1: Pillow's
    ``L``, 3: ``RGB``) and, with ``resized``, resized it to ``height`` x ``width`` (``tinynas.data.resize``);
    ``tinynas.deploy.image_frontend`` writes the same in C for camera frames."""

    channels: int
    height: int
    width: int
    resized: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
