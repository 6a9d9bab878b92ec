"""WAV folders (``root/<class>/*.wav``) turned into keyword-spotting features (MFCC or log-mel).

Clips are mono, at one expected sample rate, padded or cropped to ``clip_ms``;
features are standardized with one global mean and std, which ``input_scaling``
records so the firmware can apply them to its own front end's output.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from tinynas.data.base import RawData, register_path_kind
from tinynas.data.features import AudioFrontEnd
from tinynas.data.folders import checked_samples, has_class_folders
from tinynas.data.types import InputScaling
from tinynas.errors import DatasetError

log = logging.getLogger(__name__)

WAV_EXTENSIONS = (".wav",)


def read_wav(path: Path, *, sample_rate_hz: int, resample: bool = False) -> np.ndarray:
    """Mono float32 samples in -1..1 at ``sample_rate_hz``; a file at another rate is refused, or with
    ``resample`` resampled (polyphase, scipy's ``resample_poly``, which filters against aliasing). Raises
    DatasetError for an unreadable file."""
    from scipy.io import wavfile

    try:
        rate, data = wavfile.read(path)
    except (ValueError, OSError) as exc:
        raise DatasetError(f"{path}: not a readable WAV file ({exc}); re-export it as PCM WAV") from None
    if rate != sample_rate_hz and not resample:
        raise DatasetError(
            f"{path}: sample rate is {rate} Hz, expected {sample_rate_hz} Hz (the board's microphone rate); pass "
            f"resample=true (-o resample=true) to resample the clips to it, or sample_rate_hz={rate} "
            f"(-o sample_rate_hz={rate}) if the board records at {rate} Hz"
        )
    if data.dtype == np.uint8:
        x = (data.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(data.dtype, np.integer):
        x = data.astype(np.float32) / float(np.iinfo(data.dtype).max)
    else:
        x = data.astype(np.float32)
    if x.ndim == 2:  # several channels: a microphone front end records one, so average them
        x = x.mean(axis=1)
    if rate != sample_rate_hz:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(int(rate), int(sample_rate_hz))
        x = resample_poly(x, int(sample_rate_hz) // g, int(rate) // g).astype(np.float32)
    return x


@register_path_kind("wav-folder", matches=lambda p: has_class_folders(p, WAV_EXTENSIONS),
                    description="a folder with one sub-folder of WAV clips per class (or train/ and test/ "
                                "(val/) folders that each hold one) -> MFCC 49x10x1 (keyword spotting)",
                    later_options=("long_clips", "group_by"))
def load_wav_folder(path: Path, *, features: str = "mfcc", sample_rate_hz: int = 16000, clip_ms: int = 1000,
                    frame_ms: float = 40.0, hop_ms: float = 20.0, num_mel_bins: int = 40, num_mfcc: int = 10,
                    normalize: bool = True, resample: bool = False, long_clips: str = "first",
                    group_by: str = "none") -> RawData:
    """Features per clip: ``features="mfcc"`` gives (frames, num_mfcc, 1), ``"logmel"`` (frames, num_mel_bins, 1).

    ``resample``: clips recorded at another rate (44.1 or 48 kHz from a PC or phone) are resampled to
    ``sample_rate_hz``, the board microphone's, instead of refused. ``long_clips``: of a file longer than
    ``clip_ms``, "first" takes its first ``clip_ms``; "cut" takes every whole ``clip_ms`` of it, one sample
    each (minutes of a machine's sound), and the splits carved from them keep each file whole. ``group_by``
    "subfolder": each sub-folder of a class folder (a speaker: ``yes/alice/``, ``no/alice/``) is kept in
    one carved split."""
    if features not in ("mfcc", "logmel"):
        raise DatasetError(f"WAV folder option features must be 'mfcc' or 'logmel', got {features!r}")
    if long_clips not in ("first", "cut"):
        raise DatasetError(f"WAV folder option long_clips must be 'first' or 'cut', got {long_clips!r}")
    if num_mfcc > num_mel_bins:
        raise DatasetError(f"num_mfcc ({num_mfcc}) cannot exceed num_mel_bins ({num_mel_bins})")
    samples = checked_samples(path, WAV_EXTENSIONS, "WAV", group_by=group_by)
    front_end = AudioFrontEnd(features=features, sample_rate_hz=sample_rate_hz, clip_ms=clip_ms, frame_ms=frame_ms,
                              hop_ms=hop_ms, num_mel_bins=num_mel_bins, num_mfcc=num_mfcc)
    if front_end.clip_samples < front_end.frame_length:
        raise DatasetError(f"clip_ms ({clip_ms}) must be at least one frame ({frame_ms} ms)")
    feats, cut, pieces = [], [], []
    size = front_end.clip_samples
    for f in samples.files:
        clip = read_wav(f, sample_rate_hz=sample_rate_hz, resample=resample)
        parts = [clip[i:i + size] for i in range(0, len(clip) - size + 1, size)] if long_clips == "cut" else []
        if len(clip) > size and not parts:
            cut.append((len(clip), f))
        for part in parts or [clip]:
            feats.append(front_end.compute(part)[..., None])
        pieces.append(len(parts or [clip]))
    if cut:  # a keyword said after the first clip_ms would be cut away without a word
        longest, example = max(cut)
        log.warning("%s: %d of %d clips are longer than %d ms (the longest %s, %.0f ms): only their first %d ms "
                    "are used; cut the clips around the sound, pass clip_ms=N (-o clip_ms=N), or long_clips=cut "
                    "(-o long_clips=cut) for every whole clip_ms of a long recording", path, len(cut),
                    len(samples.files), clip_ms, example, 1000.0 * longest / sample_rate_hz, clip_ms)
    samples = samples.repeated(pieces)
    raw = np.stack(feats).astype(np.float32)
    what = (f"{features} of {clip_ms} ms clips at {sample_rate_hz} Hz ({frame_ms:g} ms frames every {hop_ms:g} ms, "
            f"{num_mel_bins} mel bands {front_end.lower_hz:g}..{front_end.upper_hz:g} Hz"
            + (f", {num_mfcc} DCT coefficients)" if features == "mfcc" else ")"))
    if normalize:  # statistics of the training clips only, where split folders say which those are
        train = raw[np.asarray(samples.splits) == "train"]
        mean, std = float(train.mean()), float(train.std()) or 1.0
        scaling = InputScaling(scale=1.0 / std, offset=-mean / std,
                               description=f"{what}, then (x - {mean:.6g}) / {std:.6g}")
    else:
        scaling = InputScaling(description=f"{what}, used as they are")
    whole = f" from {len(pieces)} files" if long_clips == "cut" else ""
    groups = group_by if group_by != "none" else "file" if long_clips == "cut" else "none"
    return RawData(**samples.split_arrays(scaling.apply(raw), groups=groups),
                   class_names=samples.class_names, scaling=scaling, audio_front_end=front_end,
                   source=f"WAV folder {path} ({len(feats)} clips{whole}{samples.given_splits})")
