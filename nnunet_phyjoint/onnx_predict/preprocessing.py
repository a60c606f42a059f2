"""nnU-Net's preprocessing of one 2-D case in numpy: transpose, crop to non-zero, normalise, resample.

The steps, their order and their arithmetic are those of nnU-Net's ``DefaultPreprocessor.run_case_npy``
for the plans' ``2d`` configuration, so that the ONNX graph sees exactly the array the PyTorch
predictor feeds the network: crop to the bounding box of the non-zero pixels, per-channel
normalisation (float32, before resampling), then resizing to the plans' spacing (float64, cast back to
float32), with the plans' input scaling (``scaling``: a letterbox gives each case the spacing at which
its long side fills the patch, as :class:`nnunet_phyjoint.preprocessing.LetterboxPreprocessor` does).
:func:`revert_geometry` undoes crop and transpose on a predicted label map.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from nnunet_phyjoint.input_scaling import LETTERBOX, SINGLE_SPACING, letterbox_spacing
from nnunet_phyjoint.onnx_predict.resampling import resize_slice

# nnU-Net's NaturalImage2DIO gives every 2-D image this spacing (z, y, x): z is a dummy axis of length 1
NATURAL_IMAGE_SPACING = (999.0, 1.0, 1.0)
ANISOTROPY_THRESHOLD = 3.0  # nnunetv2.configuration.ANISO_THRESHOLD
SUPPORTED_NORMALIZATIONS = ("ZScoreNormalization", "CTNormalization", "NoNormalization",
                            "RescaleTo01Normalization", "RGBTo01Normalization")


@dataclass(frozen=True)
class CaseGeometry:
    """What is needed to put a prediction back where the case came from (nnU-Net's ``properties``)."""

    shape_before_cropping: tuple[int, ...]
    bbox: tuple[tuple[int, int], ...]
    shape_after_cropping: tuple[int, ...]
    spacing: tuple[float, ...]  # after transpose_forward


def read_case(paths: Sequence[str | Path]) -> np.ndarray:
    """The channel files of one case as nnU-Net's NaturalImage2DIO reads them: float32 (C, 1, H, W)."""
    from PIL import Image

    channels = []
    for path in paths:
        with Image.open(path) as im:
            pixels = np.asarray(im)
        channels.append(_as_channels(pixels, path))
    shapes = {c.shape for c in channels}
    if len(shapes) > 1:
        raise ValueError(f"channel images of one case differ in size: {[str(p) for p in paths]} -> {sorted(shapes)}")
    return np.vstack(channels, dtype=np.float32, casting="unsafe")


def _as_channels(pixels: np.ndarray, path: str | Path) -> np.ndarray:
    if pixels.ndim == 2:
        return pixels[None, None]
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):
        return pixels.transpose((2, 0, 1))[:, None]
    raise ValueError(f"{path}: not a 2-D grey or RGB(A) image (array shape {pixels.shape})")


def preprocess_case(data: np.ndarray, preprocessing: Mapping[str, Any],
                    spacing: Sequence[float] = NATURAL_IMAGE_SPACING) -> tuple[np.ndarray, CaseGeometry]:
    """nnU-Net's preprocessing of ``data`` (C, 1, H, W) with the export's ``preprocessing`` block.

    Returns the network input (C, 1, h, w) float32 and the geometry for :func:`revert_geometry`.
    """
    transpose = list(preprocessing["transpose_forward"])
    data = np.asarray(data, dtype=np.float32).transpose([0, *[i + 1 for i in transpose]])
    spacing = tuple(float(spacing[i]) for i in transpose)
    shape_before = tuple(data.shape[1:])

    nonzero = nonzero_mask(data)
    bbox = bounding_box(nonzero)
    slicer = tuple(slice(lo, hi) for lo, hi in bbox)
    data = data[(slice(None), *slicer)]
    inside = nonzero[slicer]  # nnU-Net's seg[0] >= 0
    shape_after = tuple(int(s) for s in data.shape[1:])

    if preprocessing.get("scaling", SINGLE_SPACING) == LETTERBOX:  # each case's long side fills the patch
        spacing = tuple(letterbox_spacing(spacing, shape_after, preprocessing["spacing"],
                                          max(preprocessing["patch_size"])))
    target = list(preprocessing["spacing"])
    if len(target) < data.ndim - 1:
        target = [spacing[0], *target]  # 2-D configuration: the dummy axis keeps its spacing
    new_shape = tuple(int(round(i / j * k)) for i, j, k in zip(spacing, target, data.shape[1:]))

    data = normalize(data, inside, preprocessing)
    data = resample(data, new_shape, spacing, target, preprocessing["resampling_data"])
    geometry = CaseGeometry(shape_before, tuple(bbox), shape_after, spacing)
    return data, geometry


def nonzero_mask(data: np.ndarray) -> np.ndarray:
    """Pixels that are non-zero in any channel: (1, H, W) for a 2-D case.

    nnU-Net fills holes of this mask (``binary_fill_holes``) in 3-D; with one slice every background
    pixel touches the array's border along the slice axis, so nothing is ever filled for 2-D images.
    """
    if data.shape[1] != 1:
        raise ValueError(f"only 2-D images (one slice) are supported, got shape {data.shape[1:]}")
    return np.any(data != 0, axis=0)


def bounding_box(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open [start, end) box of the mask per axis; the whole array when the mask is empty (as acvl_utils)."""
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        box.append((int(hits[0]), int(hits[-1]) + 1) if hits.size else (0, int(mask.shape[axis])))
    return box


def normalize(data: np.ndarray, inside: np.ndarray, preprocessing: Mapping[str, Any]) -> np.ndarray:
    """Per-channel intensity normalisation with nnU-Net's schemes, in float32 as nnU-Net computes it."""
    schemes = preprocessing["normalization_schemes"]
    properties = preprocessing["foreground_intensity_properties_per_channel"]
    if len(schemes) != data.shape[0]:
        raise ValueError(f"the model takes {len(schemes)} channel(s), the image has {data.shape[0]}")
    for c, scheme in enumerate(schemes):
        data[c] = _normalize_channel(data[c], inside, scheme, bool(preprocessing["use_mask_for_norm"][c]),
                                     properties.get(str(c), {}))
    return data


def _normalize_channel(image: np.ndarray, inside: np.ndarray, scheme: str, use_mask: bool,
                       properties: Mapping[str, float]) -> np.ndarray:
    eps = 1e-8
    image = image.astype(np.float32, copy=False)
    if scheme == "ZScoreNormalization":
        if use_mask:
            mask = inside
            mean, std = image[mask].mean(), image[mask].std()
            image[mask] = (image[mask] - mean) / max(std, eps)
        else:
            mean, std = image.mean(), image.std()
            image -= mean
            image /= max(std, eps)
    elif scheme == "CTNormalization":
        np.clip(image, properties["percentile_00_5"], properties["percentile_99_5"], out=image)
        image -= properties["mean"]
        image /= max(properties["std"], eps)
    elif scheme == "RescaleTo01Normalization":
        image -= image.min()
        image /= np.clip(image.max(), a_min=eps, a_max=None)
    elif scheme == "RGBTo01Normalization":
        if image.min() < 0 or image.max() > 255:
            raise ValueError("RGBTo01Normalization needs pixel values in 0..255")
        image /= 255.0
    elif scheme != "NoNormalization":
        raise ValueError(f"normalization scheme {scheme!r} is not supported (supported: {SUPPORTED_NORMALIZATIONS})")
    return image


def resample(data: np.ndarray, new_shape: Sequence[int], current_spacing: Sequence[float],
             new_spacing: Sequence[float], options: Mapping[str, Any], dtype_out=None) -> np.ndarray:
    """nnU-Net's ``resample_data_or_seg_to_shape`` (is_seg=False) for 2-D data (C, 1, H, W).

    The result has ``dtype_out`` (default: the input's dtype); interpolation runs in float64.
    """
    new_shape = tuple(int(s) for s in new_shape)
    dtype_out = data.dtype if dtype_out is None else dtype_out
    if tuple(data.shape[1:]) == new_shape:
        return data
    if data.shape[1] != 1 or new_shape[0] != 1:
        raise ValueError(f"only 2-D images (one slice) are supported, got shape {data.shape[1:]} -> {new_shape}")
    separate_z, axis = _separate_z_axis(options.get("force_separate_z"), current_spacing, new_spacing)
    if separate_z and axis != 0:
        raise ValueError(f"resampling with the in-plane axis {axis} as the slice axis is not supported")
    # one slice: resizing it in 2-D equals nnU-Net's per-slice resize and its 3-D resize alike
    order = int(options.get("order", 3))
    source = data.astype(np.float64, copy=False)
    out = np.zeros((data.shape[0], *new_shape), dtype=dtype_out)
    for c in range(data.shape[0]):
        out[c, 0] = resize_slice(source[c, 0], new_shape[1:], order)
    return out


def _separate_z_axis(force: bool | None, current: Sequence[float], new: Sequence[float]) -> tuple[bool, int | None]:
    """nnU-Net's ``determine_do_sep_z_and_axis``: which axis (if any) is resized separately."""
    def lowres_axes(spacing):
        spacing = np.asarray(spacing, dtype=np.float64)
        return np.where(max(spacing) / spacing == 1)[0]

    def anisotropic(spacing):
        return (np.max(spacing) / np.min(spacing)) > ANISOTROPY_THRESHOLD

    if force is not None:
        axes = lowres_axes(current) if force else None
        separate = bool(force)
    elif anisotropic(current):
        separate, axes = True, lowres_axes(current)
    elif anisotropic(new):
        separate, axes = True, lowres_axes(new)
    else:
        return False, None
    if axes is None or len(axes) != 1:
        return False, None
    return separate, int(axes[0])


def revert_geometry(segmentation: np.ndarray, geometry: CaseGeometry, transpose_backward: Sequence[int]) -> np.ndarray:
    """Label map at the cropped size -> label map of the original image (zeros outside the crop), uint8."""
    full = np.zeros(geometry.shape_before_cropping, dtype=np.uint8)
    full[tuple(slice(lo, hi) for lo, hi in geometry.bbox)] = segmentation
    return full.transpose(list(transpose_backward))
