"""Image folders (``root/<class>/*.png``) read with Pillow into NHWC float32 in 0..1.

The firmware gets the same scaling (pixels divided by 255) from
``input_scaling``; images of different sizes need ``image_size``. The decoded
pixels are cached under ``tinynas_home()/image-folders``, keyed by every file's
name, size and modification time and the options, so a resumed run, a worker
process or the next run reads them instead of decoding every photo again; one
file per folder and options, the one for the folder's current files.

A photo's EXIF orientation is applied, as every viewer does, so a phone
picture taken upright trains upright (camera frames on the board carry none).
Transparent pixels (a drawing exported with a transparent background) are
composited onto a white or black background: dropping the alpha channel would
leave the colour stored under them, often black, so black strokes on a
transparent background would become an all-black picture.
"""

from __future__ import annotations

import hashlib
import logging
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from tinynas.data.base import RawData, register_path_kind
from tinynas.data.cache import save_npz_atomic, tinynas_home
from tinynas.data.features import ImageFrontEnd
from tinynas.data.folders import checked_samples, has_class_folders
from tinynas.data.resize import resize_bilinear
from tinynas.data.types import InputScaling
from tinynas.errors import DatasetError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


log = logging.getLogger(__name__)

#: bump when what the loader computes from the files changes, so cached pixels stop matching
_CACHE_VERSION = 3

#: PIL modes that hold one grey channel
_GREY_MODES = ("L", "1", "I", "I;16", "I;16B", "I;16L", "F", "LA", "La")
#: what transparent pixels are composited onto (the ``background`` option)
BACKGROUNDS = {"white": (255, 255, 255, 255), "black": (0, 0, 0, 255)}
#: the EXIF tag of a photo's orientation (1 upright; 2-8 mirrored and/or turned)
_ORIENTATION = 0x0112
#: PIL modes whose pixels are 8 bits (or 1) a channel: the others (16-bit, 32-bit int, float) are checked
_EIGHT_BIT_MODES = ("L", "1", "P", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "LA", "PA", "La", "RGBa")


def _check_eight_bit(im: Any, f: Path) -> None:
    """Refuse a 16-bit, 32-bit or float image whose values are not whole numbers in 0..255: Pillow's
    conversion to 8 bits clips them (a 14-bit thermal frame would turn all white, a 0..1 float one all black)
    without a word, and the C front end takes 8-bit camera pixels."""
    if im.mode in _EIGHT_BIT_MODES:
        return
    a = np.asarray(im)
    if a.size and (np.min(a) < 0 or np.max(a) > 255 or not np.array_equal(a, np.round(a))):
        raise DatasetError(f"{f}: a {im.mode} image with values {np.min(a):g}..{np.max(a):g}; image folders are read "
                           "as 8-bit pixels 0..255, which would clip these: scale them to 8 bits (e.g. with your "
                           "camera's range) and save them again, or give the data as a .npz (x, y) with your own "
                           "scaling")


@register_path_kind("image-folder", matches=lambda p: has_class_folders(p, IMAGE_EXTENSIONS),
                    description="a folder with one sub-folder of images (png, jpg, bmp, ...) per class, "
                                "or train/ and test/ (val/) folders that each hold one",
                    later_options=("group_by",))
def load_image_folder(path: Path, *, image_size: int | None = None, color_mode: str = "auto",
                      background: str = "white", group_by: str = "none") -> RawData:
    """Read every image; ``color_mode`` is "grayscale", "rgb" or "auto" (grey when every image is grey);
    ``background`` ("white" or "black") is what transparent pixels are composited onto; ``group_by``
    "subfolder" keeps each sub-folder of a class folder (a session's frames) in one carved split.

    With ``image_size`` every image is resized (bilinear, ``tinynas.data.resize``: Pillow's filter with one
    fixed pass order, which the C front end repeats) to that square size; without it, all images must share
    one size.
    """
    if color_mode not in ("auto", "grayscale", "rgb"):
        raise DatasetError(f"image folder option color_mode must be auto, grayscale or rgb, got {color_mode!r}")
    if background not in BACKGROUNDS:
        raise DatasetError(f"image folder option background must be white or black, got {background!r}")
    if image_size is not None and image_size < 1:
        raise DatasetError(f"image folder option image_size must be a positive integer, got {image_size}")
    samples = checked_samples(path, IMAGE_EXTENSIONS, "image", group_by=group_by)
    names = samples.files
    cache = _cache_file(path, names, image_size=image_size, color_mode=color_mode, background=background)
    cached = _read_cache(cache, count=len(names))
    if cached is None:
        cached = _decode(names, image_size=image_size, color_mode=color_mode, background=background)
        _write_cache(cache, cached, folder=path)
    pixels, color_mode, preprocessing = cached
    scaling = InputScaling(scale=1.0 / 255.0, offset=0.0, description=f"{color_mode} pixels 0..255 divided by 255")
    x = scaling.apply(pixels)
    front_end = ImageFrontEnd(channels=int(x.shape[-1]), height=int(x.shape[1]), width=int(x.shape[2]),
                              resized=image_size is not None)
    return RawData(**samples.split_arrays(x, groups=group_by), class_names=samples.class_names, scaling=scaling,
                   source=f"image folder {path} ({len(names)} images, {color_mode}{samples.given_splits})",
                   preprocessing=preprocessing, image_front_end=front_end)


def _cache_file(path: Path, names: list[Path], *, image_size: int | None, color_mode: str, background: str) -> Path:
    """Where the decoded pixels of these files with these options are cached: ``<folder>-<files>.npz``, the
    first part a hash of the folder and the options, the second of each file's path in the folder, size and
    modification time, Pillow's version (its decoders) and the loader's."""
    import PIL

    folder = hashlib.sha256(f"{path.resolve()}|{image_size}|{color_mode}|{background}".encode()).hexdigest()[:20]
    files = hashlib.sha256(f"{_CACHE_VERSION}|{PIL.__version__}".encode())
    for f in names:
        stat = f.stat()
        files.update(f"|{f.relative_to(path)}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return tinynas_home() / "image-folders" / f"{folder}-{files.hexdigest()[:20]}.npz"


def _write_cache(cache: Path, decoded: tuple[np.ndarray, str, str], *, folder: Path) -> None:
    """Cache ``decoded`` and remove the files this loader cached for the same folder and options before: their
    files changed, so they can never match again (a folder edited daily would otherwise add one a day)."""
    pixels, color_mode, steps = decoded
    try:
        save_npz_atomic(cache, pixels=pixels, color_mode=np.array(color_mode), preprocessing=np.array(steps))
    except OSError as exc:
        log.warning("image folder %s: decoded pixels not cached (%s); the next load decodes them again", folder, exc)
        return
    prefix = cache.name.split("-")[0]
    for stale in cache.parent.glob(f"{prefix}-*.npz"):
        if stale != cache:
            stale.unlink(missing_ok=True)


def _read_cache(cache: Path, *, count: int) -> tuple[np.ndarray, str, str] | None:
    """The cached (pixels, colour mode, preprocessing) of ``count`` images, or None when there is none or it
    cannot be read."""
    if not cache.is_file():
        return None
    try:
        with np.load(cache, allow_pickle=False) as data:
            pixels, color_mode, steps = data["pixels"], str(data["color_mode"]), str(data["preprocessing"])
        if pixels.dtype != np.uint8 or pixels.ndim != 4 or len(pixels) != count:
            raise ValueError(f"{pixels.dtype} pixels of shape {pixels.shape} for {count} images")
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        log.warning("image folder cache %s cannot be read (%s): decoding the images again", cache, exc)
        return None
    return pixels, color_mode, steps


def _decode(names: list[Path], *, image_size: int | None, color_mode: str,
            background: str) -> tuple[np.ndarray, str, str]:
    """Every image as uint8 (N, H, W, C), the colour mode taken and the steps the firmware must repeat.

    Two passes, so a folder of full-size photos is never held in memory at once: the headers first (mode and
    size decide the colour mode and the steps), then one image at a time, converted and resized."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    headers: list[tuple[str, tuple[int, int]]] = []
    for f in names:
        try:
            with Image.open(f) as im:
                turned = im.getexif().get(_ORIENTATION) in (5, 6, 7, 8)  # a quarter turn: width and height swap
                headers.append((im.mode, im.size[::-1] if turned else im.size))
        except (UnidentifiedImageError, OSError) as exc:
            raise DatasetError(f"{f}: not a readable image ({exc}); remove or re-export it") from None
    if color_mode == "auto":
        color_mode = "grayscale" if all(m in _GREY_MODES for m, _ in headers) else "rgb"
    mode = "L" if color_mode == "grayscale" else "RGB"
    first_size = headers[0][1]
    # what firmware must repeat on a camera frame, said only when some image needed it
    steps = []
    if mode == "L" and any(m not in _GREY_MODES for m, _ in headers):
        steps.append("colour turned to grey as PIL does (L = 0.299 R + 0.587 G + 0.114 B)")
    if image_size is not None and any(size != (image_size, image_size) for _, size in headers):
        steps.append(f"resized to {image_size}x{image_size} (bilinear)")
    arrays, composited = [], 0
    for f, (_, size) in zip(names, headers):
        if image_size is None and size != first_size:
            raise DatasetError(
                f"{f}: image is {size[0]}x{size[1]} but {names[0]} is {first_size[0]}x{first_size[1]}; "
                "make them one size or pass image_size=N (e.g. -o image_size=32) to resize all"
            )
        try:
            with Image.open(f) as im:
                im.load()
                _check_eight_bit(im, f)
                upright, transparent = _opaque(ImageOps.exif_transpose(im), background)
                a = np.asarray(upright.convert(mode), dtype=np.uint8)
                composited += transparent
        except (UnidentifiedImageError, OSError) as exc:
            raise DatasetError(f"{f}: not a readable image ({exc}); remove or re-export it") from None
        if image_size is not None:
            a = resize_bilinear(a, height=image_size, width=image_size)
        arrays.append(a[..., None] if a.ndim == 2 else a)
    if composited:
        log.warning("%d of %d images have transparent pixels: composited onto %s (background=%s to change it)",
                    composited, len(names), background, "black" if background == "white" else "white")
    return np.stack(arrays), color_mode, ", then ".join(steps)


def _opaque(im: Any, background: str) -> tuple[Any, bool]:
    """``im`` with its transparent pixels composited onto ``background``, and whether it had any."""
    from PIL import Image

    if im.mode not in ("RGBA", "LA", "PA", "RGBa", "La") and "transparency" not in im.info:
        return im, False
    rgba = im.convert("RGBA")
    if rgba.getchannel("A").getextrema()[0] == 255:
        return im, False
    base = Image.new("RGBA", rgba.size, BACKGROUNDS[background])
    return Image.alpha_composite(base, rgba), True
