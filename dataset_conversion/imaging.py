"""Reading ultrasound images as single-channel uint8 grey and lesion masks as booleans.

Every failure raises :class:`~dataset_conversion.problems.CaseProblem` naming the file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from dataset_conversion.problems import CaseProblem

# A pixel is "coloured" when its channels differ by more than this (grey ultrasound has equal channels,
# JPEG-like noise a few levels); an image is flagged as Doppler/colour when more than this fraction of
# its pixels are coloured, which burnt-in coloured calipers or text alone do not reach.
COLOUR_SPREAD = 40
DOPPLER_MIN_FRACTION = 0.005


def open_image(path: Path) -> Image.Image:
    """Open and fully decode ``path`` (so truncated files fail here, with the file named)."""
    try:
        im = Image.open(path)
        im.load()
    except FileNotFoundError:
        raise CaseProblem(path, "file not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise CaseProblem(path, f"unreadable or truncated image ({e})") from None
    return im


def _pixels(im: Image.Image, path: Path) -> np.ndarray:
    """H x W (grey) or H x W x C (colour, alpha last) array in a mode numpy understands."""
    if im.mode in ("1", "L", "LA", "RGB", "RGBA"):
        return np.asarray(im)
    if im.mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16)
    if im.mode in ("P", "PA"):
        return np.asarray(im.convert("RGBA"))
    if im.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        return np.asarray(im.convert("RGB"))
    raise CaseProblem(path, f"unsupported pixel format {im.mode!r}")


def colour_fraction(rgb: np.ndarray) -> float:
    """Fraction of pixels whose channels differ by more than :data:`COLOUR_SPREAD`."""
    rgb = rgb[..., :3].astype(np.int16)
    spread = rgb.max(axis=-1) - rgb.min(axis=-1)
    return float((spread > COLOUR_SPREAD).mean())


def to_grey(arr: np.ndarray) -> tuple[np.ndarray, bool]:
    """uint8 grey image and whether it looks like a colour (Doppler) image."""
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255, False
    if arr.ndim == 2:
        if arr.dtype == np.uint16 and arr.max() > 255:
            return (arr >> 8).astype(np.uint8), False  # 16-bit grey: keep the top 8 bits
        return arr.astype(np.uint8), False
    if arr.shape[-1] == 2:  # grey + alpha: the alpha does not carry the image
        return arr[..., 0].astype(np.uint8), False
    rgb = arr[..., :3]
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        return np.ascontiguousarray(rgb[..., 0]), False
    doppler = colour_fraction(rgb) > DOPPLER_MIN_FRACTION
    grey = np.asarray(Image.fromarray(np.ascontiguousarray(rgb), "RGB").convert("L"))  # ITU-R 601 luma
    return grey, doppler


def grey_pixels(im: Image.Image, path: Path) -> tuple[np.ndarray, bool]:
    """Single-channel uint8 pixels of an opened image and a Doppler/colour flag (the converters' conversion)."""
    return to_grey(_pixels(im, path))


def read_grey_image(path: Path) -> tuple[np.ndarray, bool]:
    """Single-channel uint8 image from ``path`` and a Doppler/colour flag."""
    return grey_pixels(open_image(path), path)


def read_mask_pixels(path: Path) -> np.ndarray:
    """Mask pixels as H x W (grey) or H x W x 3 (colour); an alpha channel is dropped unless it is the mask."""
    arr = _pixels(open_image(path), path)
    if arr.ndim == 3 and arr.shape[-1] in (2, 4):
        colour, alpha = arr[..., :-1], arr[..., -1]
        # Some editors save the lesion only in the alpha channel, over black colour channels.
        if not colour.any() and alpha.min() != alpha.max():
            return alpha
        arr = colour
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    return arr


def distinct_values(arr: np.ndarray) -> list[tuple[int, ...]]:
    """Distinct pixel values (as tuples, one entry per channel), sorted."""
    channels = [arr[..., c] for c in range(arr.shape[-1])] if arr.ndim == 3 else [arr]
    packed = np.zeros(arr.shape[:2], dtype=np.int64)
    for ch in channels:  # pack channels (at most 16 bits each) into one integer: np.unique on rows is slow
        packed = (packed << 16) | ch.astype(np.int64)
    out = []
    for v in np.unique(packed):
        v = int(v)
        out.append(tuple((v >> (16 * (len(channels) - 1 - i))) & 0xFFFF for i in range(len(channels))))
    return out


def read_binary_mask(path: Path) -> np.ndarray:
    """Boolean lesion mask: black is background, one other value (0/1, 0/255, any single colour) is lesion.

    Masks with more than one non-black value are refused rather than thresholded: such a file is
    not what the formats describe and guessing would silently change lesion outlines.
    """
    arr = read_mask_pixels(path)
    if arr.dtype == bool:
        return arr
    values = [v for v in distinct_values(arr) if any(v)]
    if len(values) > 1:
        shown = ", ".join(str(v[0] if len(v) == 1 else v) for v in values[:5])
        more = f" and {len(values) - 5} more" if len(values) > 5 else ""
        raise CaseProblem(path, f"mask is not binary: non-black values {shown}{more}")
    return arr.any(axis=-1) if arr.ndim == 3 else arr > 0


def save_png(arr: np.ndarray, path: Path) -> None:
    """Write a 2D uint8 array as a single-channel PNG."""
    Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8), "L").save(path)
