"""Image files and class-per-folder trees: :func:`open_image`,
:func:`load_image_folder` (needs Pillow: ``pip install tinycnn[image]``).

Only the decoders in :data:`IMAGE_FORMATS` are used, whatever a file's name
or first bytes say, and an image's size is checked against
:data:`tinycnn.limits.max_image_pixels` before its pixels are decoded.
"""

from pathlib import Path

import numpy as np

from .. import limits

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
# The decoders Pillow may use, whatever a file's name or first bytes say (an
# EPS file named .png would otherwise go to Ghostscript).  PPM covers .pgm/.pbm.
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF", "PPM")


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading image folders needs Pillow: pip install tinycnn[image]") from None
    return Image


def image_folder_classes(root):
    """``[(class name, [image paths])]`` for a class-per-folder tree, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder (expected one sub-folder of images per class)")
    classes = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f for f in sub.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        classes.append((sub.name, files))
    return classes


def open_image(path, load=True):
    """A Pillow image of ``path`` opened by one of :data:`IMAGE_FORMATS`'
    decoders, its size checked against :data:`tinycnn.limits.max_image_pixels`
    before any pixel is decoded (``load=False``: the header only); any
    failure is a ``ValueError`` naming the file."""
    Image = _pillow()
    try:
        image = Image.open(path, formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as e:
        raise ValueError(f"{path}: image too large ({e})") from None
    except Exception as e:  # noqa: BLE001 -- a decoder may raise anything on a crafted file
        raise ValueError(f"{path}: cannot read image as {', '.join(IMAGE_FORMATS)} ({type(e).__name__}: {e})") from None
    width, height = image.size
    if width * height > limits.max_image_pixels:
        image.close()
        raise ValueError(f"{path}: image is {width}x{height}, over tinycnn.limits.max_image_pixels = "
                         f"{limits.max_image_pixels} pixels (raise it if the file is trusted)")
    if load:
        try:
            image.load()
        except Exception as e:  # noqa: BLE001 -- as above
            image.close()
            raise ValueError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None
    return image


def load_image_folder(root, size=None, mode=None):
    """Load ``root/<class>/<image>`` into ``(images (N, H, W, C) uint8, labels int64, classes)``.

    Classes are the sub-folder names sorted; labels index that list. ``mode`` is
    ``'RGB'`` (C=3) or ``'L'`` (C=1); by default ``'L'`` if every image is greyscale,
    else ``'RGB'``. ``size`` (an int or ``(height, width)``) resizes every image
    (bilinear); without it all images must already share one size.
    """
    Image = _pillow()
    root = Path(root)
    if mode not in (None, "RGB", "L"):
        raise ValueError(f"load_image_folder: mode must be 'RGB', 'L' or None, got {mode!r}")
    if size is not None:
        size = (size, size) if isinstance(size, int) else tuple(size)
        if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
            raise ValueError(f"load_image_folder: size must be a positive int or (height, width), got {size!r}")
    classes = image_folder_classes(root)
    if not classes:
        raise ValueError(f"{root}: no class sub-folders (expected one sub-folder of images per class)")
    for name, files in classes:
        if not files:
            raise ValueError(f"{root / name}: class folder has no images (extensions {', '.join(IMAGE_EXTENSIONS)})")

    if mode is None:
        gray = True
        for _, files in classes:
            for f in files:
                with open_image(f, load=False) as image:  # the header says the mode
                    gray = gray and image.mode in _GRAY_MODES
        mode = "L" if gray else "RGB"

    images, labels, first = [], [], None
    for label, (_, files) in enumerate(classes):
        for f in files:
            with open_image(f) as image:
                image = image.convert(mode)
                if size is not None and image.size != (size[1], size[0]):
                    image = image.resize((size[1], size[0]), Image.BILINEAR)
                array = np.asarray(image, dtype=np.uint8)
            if first is None:
                first = (f, array.shape)
            elif array.shape != first[1]:
                raise ValueError(
                    f"{f}: image is {array.shape[1]}x{array.shape[0]} but {first[0]} is "
                    f"{first[1][1]}x{first[1][0]}; pass size=(height, width) to resize"
                )
            images.append(array)
            labels.append(label)
    stacked = np.stack(images)
    if stacked.ndim == 3:
        stacked = stacked[..., None]
    return stacked, np.asarray(labels, dtype=np.int64), [name for name, _ in classes]
