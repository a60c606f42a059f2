"""The standalone predictor's numpy preprocessing and sliding window against nnU-Net's own functions."""
from __future__ import annotations

import numpy as np
import pytest

from nnunet_phyjoint.onnx_predict import preprocessing, resampling, sliding_window


@pytest.mark.parametrize("order", [0, 1, 3])
@pytest.mark.parametrize("shapes", [((64, 64), (32, 32)), ((70, 90), (128, 128)), ((100, 37), (50, 80)),
                                    ((5, 7), (13, 3)), ((1, 10), (1, 20))])
def test_resize_matches_scikit_image(order, shapes):
    from skimage.transform import resize

    (h, w), out = shapes
    x = np.random.default_rng(order).normal(size=(h, w)) * 50
    expected = resize(x, out, order, mode="edge", anti_aliasing=False)
    np.testing.assert_allclose(resampling.resize_slice(x, out, order), expected, rtol=0, atol=1e-9)


def test_unsupported_order_is_refused():
    with pytest.raises(ValueError, match="order 2"):
        resampling.resize_slice(np.zeros((4, 4)), (2, 2), 2)


def _letterboxed_image(rng, h=90, w=130):
    image = rng.integers(1, 255, size=(h, w)).astype(np.float32)
    image[:7], image[:, :5], image[:, -9:] = 0, 0, 0  # letterbox borders
    image[40:50, 60:70] = 0  # anechoic pixels inside: outside the mask of masked normalisation
    return image[None, None]


@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("spacing", [2.0, 0.7])
@pytest.mark.parametrize("scaling", ["single-spacing", "letterbox"])
def test_preprocessing_matches_nnunet(use_mask, spacing, scaling):
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_phyjoint.preprocessing import LetterboxPreprocessor
    from onnx_tiny_model import _plans

    plans = _plans(spacing)
    plans["configurations"]["2d"]["use_mask_for_norm"] = [use_mask]
    plans["configurations"]["2d"]["phyjoint_scaling"] = scaling
    manager = PlansManager(plans)
    data = _letterboxed_image(np.random.default_rng(1))
    properties = {"spacing": (999, 1, 1)}
    preprocessor = LetterboxPreprocessor if scaling == "letterbox" else DefaultPreprocessor
    expected, _, props = preprocessor(verbose=False).run_case_npy(
        data, None, properties, manager, manager.get_configuration("2d"), {"labels": {"background": 0, "lesion": 1}})

    from nnunet_phyjoint.onnx_export.folder import build_manifest

    manifest = build_manifest(plans, {"labels": {"background": 0, "lesion": 1}, "file_ending": ".png",
                                      "channel_names": {"0": "us"}}, "2d",
                              {"trainer_name": "PhyJointTrainer", "inference_allowed_mirroring_axes": (1,)})
    got, geometry = preprocessing.preprocess_case(data, manifest["preprocessing"])
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert [list(b) for b in geometry.bbox] == [list(b) for b in props["bbox_used_for_cropping"]]
    assert geometry.shape_after_cropping == tuple(props["shape_after_cropping_and_before_resampling"])
    if scaling == "letterbox":  # the long side fills the patch whatever the plans' spacing
        assert max(got.shape[-2:]) == max(plans["configurations"]["2d"]["patch_size"])


def test_sliding_window_parts_match_nnunet():
    import torch
    from nnunetv2.inference.sliding_window_prediction import compute_gaussian, compute_steps_for_sliding_window

    for size, tile in [((64, 64), (64, 64)), ((64, 150), (64, 64)), ((97, 64), (64, 64))]:
        assert sliding_window.window_starts(size, tile, 0.5) == compute_steps_for_sliding_window(size, tile, 0.5)
    expected = compute_gaussian((64, 48), 1 / 8, 10, device=torch.device("cpu")).numpy()
    np.testing.assert_array_equal(sliding_window.gaussian_weights((64, 48)), expected)


def test_sliding_window_prediction_matches_nnunet_predictor():
    """A tiny conv net through nnU-Net's predictor and through the numpy sliding window: same float16 logits."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from onnx_tiny_model import _plans

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 2, 5, padding=2).eval()
    manager = PlansManager(_plans(2.0))
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                                perform_everything_on_device=False, device=torch.device("cpu"), verbose=False,
                                allow_tqdm=False)
    dataset_json = {"labels": {"background": 0, "lesion": 1}, "channel_names": {"0": "us"}, "file_ending": ".png"}
    predictor.manual_initialization(conv, manager, manager.get_configuration("2d"), None, dataset_json,
                                    "PhyJointTrainer", (1,))
    data = np.random.default_rng(2).normal(size=(1, 1, 50, 150)).astype(np.float32)  # padded, three tiles
    expected = predictor.predict_sliding_window_return_logits(torch.from_numpy(data)).numpy()

    def run(batch):
        with torch.no_grad():
            return conv(torch.from_numpy(batch)).numpy(), np.zeros((len(batch), 3), np.float32)

    got, diagnosis = sliding_window.predict_sliding_window(run, data, (64, 64), 2, (1,))
    assert got.dtype == np.float16 and got.shape == expected.shape
    np.testing.assert_allclose(got.astype(np.float32), expected.astype(np.float32), rtol=0, atol=2e-3)
    assert np.mean(got == expected) > 0.99  # float16 values; the rest differ in the last bit
    np.testing.assert_allclose(diagnosis, 1 / 3, rtol=1e-6)
