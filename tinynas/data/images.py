"""Image folders (``root/<class>/*.png``) read with Pillow into NHWC float32 in 0..1.

The firmware gets the same scaling (pixels divided by 255) from
``input_scaling``; images of different sizes need ``image_size``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinynas.data.base import RawData, register_path_kind
from tinynas.data.features import ImageFrontEnd
from tinynas.data.folders import checked_classes, has_class_folders
from tinynas.data.resize import resize_bilinear
from tinynas.data.types import InputScaling
from tinynas.errors import DatasetError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


#: PIL modes that hold one grey channel
_GREY_MODES = ("L", "1", "I", "I;16", "F")


@register_path_kind("image-folder", matches=lambda p: has_class_folders(p, IMAGE_EXTENSIONS),
                    description="a folder with one sub-folder of images (png, jpg, bmp, ...) per class")
def load_image_folder(path: Path, *, image_size: int | None = None, color_mode: str = "auto") -> RawData:
    """Read every image; ``color_mode`` is "grayscale", "rgb" or "auto" (grey when every image is grey).

    With ``image_size`` every image is resized (bilinear, ``tinynas.data.resize``: Pillow's filter with one
    fixed pass order, which the C front end repeats) to that square size; without it, all images must share
    one size.
    """
    from PIL import Image, UnidentifiedImageError

    if color_mode not in ("auto", "grayscale", "rgb"):
        raise DatasetError(f"image folder option color_mode must be auto, grayscale or rgb, got {color_mode!r}")
    if image_size is not None and image_size < 1:
        raise DatasetError(f"image folder option image_size must be a positive integer, got {image_size}")
    classes = checked_classes(path, IMAGE_EXTENSIONS, "image")
    images: list[Image.Image] = []
    labels: list[int] = []
    names: list[Path] = []
    for label, (_, files) in enumerate(classes.items()):
        for f in files:
            try:
                with Image.open(f) as im:
                    im.load()
                    images.append(im.copy())
            except (UnidentifiedImageError, OSError) as exc:
                raise DatasetError(f"{f}: not a readable image ({exc}); remove or re-export it") from None
            labels.append(label)
            names.append(f)
    if color_mode == "auto":
        grey = all(im.mode in _GREY_MODES for im in images)
        color_mode = "grayscale" if grey else "rgb"
    mode = "L" if color_mode == "grayscale" else "RGB"
    first_size = images[0].size
    # what firmware must repeat on a camera frame, said only when some image needed it
    steps = []
    if mode == "L" and any(im.mode not in _GREY_MODES for im in images):
        steps.append("colour turned to grey as PIL does (L = 0.299 R + 0.587 G + 0.114 B)")
    if image_size is not None and any(im.size != (image_size, image_size) for im in images):
        steps.append(f"resized to {image_size}x{image_size} (bilinear)")
    arrays = []
    for im, f in zip(images, names):
        a = np.asarray(im.convert(mode), dtype=np.uint8)
        if image_size is not None:
            a = resize_bilinear(a, height=image_size, width=image_size)
        elif im.size != first_size:
            raise DatasetError(
                f"{f}: image is {im.size[0]}x{im.size[1]} but {names[0]} is {first_size[0]}x{first_size[1]}; "
                "make them one size or pass image_size=N (e.g. -o image_size=32) to resize all"
            )
        a = a.astype(np.float32)
        arrays.append(a[..., None] if a.ndim == 2 else a)
    scaling = InputScaling(scale=1.0 / 255.0, offset=0.0, description=f"{color_mode} pixels 0..255 divided by 255")
    x = scaling.apply(np.stack(arrays))
    front_end = ImageFrontEnd(channels=int(x.shape[-1]), height=int(x.shape[1]), width=int(x.shape[2]),
                              resized=image_size is not None)
    return RawData(x=x, y=np.asarray(labels, dtype=np.int64), class_names=tuple(classes), scaling=scaling,
                   source=f"image folder {path} ({len(labels)} images, {color_mode})",
                   preprocessing=", then ".join(steps), image_front_end=front_end)
