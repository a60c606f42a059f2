"""A tiny trained-model folder for the ONNX tests, built without nnU-Net's planning or training commands.

Raw 2-D PNGs of different sizes (black letterbox borders, one image larger than the patch so that the
sliding window takes several tiles), PhyJoint plans written by hand in the shape ``phyjoint plan``
writes them (patch 64x64, spacing chosen so that the largest training image fits), the training cases
preprocessed by nnU-Net's own ``DefaultPreprocessor`` (the INT8 calibration data), and two folds of a
random ``mobilenetv3_small_050`` PhyJointNet whose heads are shifted so that masks and diagnoses are
not constant. Built once per test session (:func:`tiny_model`) because export and quantization take
seconds on these machines.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

ENCODER = "mobilenetv3_small_050"
PATCH = 64
DATASET = "Dataset993_OnnxTiny"
TRAINER = "PhyJointTrainer"
# (height, width): the largest long side (128) spans the patch at spacing 2
TRAIN_SIZES = {"case_a": (96, 128), "case_b": (64, 64), "case_c": (120, 80), "case_d": (50, 70)}
TEST_SIZES = {"test_wide": (60, 200), "test_small": (40, 52), "test_border": (100, 90)}
_CACHE: dict[str, dict] = {}


def ultrasound_like(rng: np.random.Generator, height: int, width: int,
                    border: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A speckled grey image with a dark lesion and black borders, and its lesion mask."""
    yy, xx = np.mgrid[:height, :width]
    image = 60 + 80 * rng.random((height, width)) * (1 - yy / (1.5 * height))
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    lesion = ((yy - cy) / (0.2 * height)) ** 2 + ((xx - cx) / (0.25 * width)) ** 2 < 1
    image[lesion] *= 0.3
    if border:
        image[:border], image[-border:], image[:, :border], image[:, -border:] = 0, 0, 0, 0
        lesion[:border], lesion[-border:], lesion[:, :border], lesion[:, -border:] = False, False, False, False
    return np.clip(image, 0, 255).astype(np.uint8), lesion.astype(np.uint8)


def _plans(spacing: float) -> dict:
    return {
        "dataset_name": DATASET, "plans_name": "PhyJointPlans",
        "original_median_spacing_after_transp": [999.0, 1.0, 1.0],
        "original_median_shape_after_transp": [1, 96, 96],
        "image_reader_writer": "NaturalImage2DIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": {
            "max": 255.0, "mean": 50.0, "median": 45.0, "min": 0.0, "percentile_00_5": 0.0,
            "percentile_99_5": 190.0, "std": 40.0}},
        "configurations": {"2d": {
            "data_identifier": "PhyJointPlans_2d", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
            "patch_size": [PATCH, PATCH], "median_image_size_in_voxels": [48.0, 48.0], "spacing": [spacing, spacing],
            "normalization_schemes": ["ZScoreNormalization"], "use_mask_for_norm": [False],
            "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
            "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0,
                                                   "force_separate_z": None},
            "architecture": {"network_class_name": "nnunet_phyjoint.network.phyjoint_net.PhyJointNet",
                             "arch_kwargs": {"encoder_name": ENCODER, "encoder_weights": "none",
                                             "decoder_channels": [16, 16, 16, 16, 16],
                                             "deep_supervision_layout": "nested"},
                             "_kw_requires_import": []},
            "batch_dice": False}},
    }


def _dataset_json(cases: dict[str, str]) -> dict:
    return {"channel_names": {"0": "ultrasound"}, "labels": {"background": 0, "lesion": 1},
            "numTraining": len(cases), "file_ending": ".png",
            "phyjoint": {"format_version": 1, "class_names": ["normal", "benign", "malignant"],
                         "cases": {c: {"class": k, "patient": c, "scanner": "TINY"} for c, k in cases.items()}}}


def _network(seed: int):
    import torch

    from nnunet_phyjoint.network.phyjoint_net import PhyJointNet

    torch.manual_seed(seed)
    arch = _plans(2.0)["configurations"]["2d"]["architecture"]["arch_kwargs"]
    network = PhyJointNet(1, 2, True, **{**arch, "encoder_weights": None})
    with torch.no_grad():  # away from the fresh initialisation: BatchNorm statistics that a wrong load would lose
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    network.eval()
    network.decoder.deep_supervision = False
    x = torch.randn(4, 1, PATCH, PATCH)
    with torch.no_grad():
        seg, cls = network(x, return_class_logits=True)
        margin = seg[:, 1] - seg[:, 0]
        head = network.decoder.seg_heads[0]
        # centre the lesion-vs-background margin and widen it: masks with both labels, few near-ties
        scale = 4.0 / float(margin.std())
        head.weight.mul_(scale)
        head.bias.mul_(scale)
        head.bias[1] -= float(margin.median()) * scale
        # a random head calls every image about equally normal/benign/malignant; lean it to malignant so that
        # diagnosis gating (normal -> empty mask) leaves the masks to compare
        network.classification_head.mlp[-1].bias.add_(torch.tensor([0.0, 0.0, 0.5]))
    network.decoder.deep_supervision = True
    return network


def _write_case_files(folder: Path, sizes: dict[str, tuple[int, int]], rng, labels: Path | None = None) -> None:
    for i, (case, (h, w)) in enumerate(sizes.items()):
        image, mask = ultrasound_like(rng, h, w, border=(4 if i % 2 == 0 else 0))
        Image.fromarray(image, "L").save(folder / f"{case}_0000.png")
        if labels is not None:
            Image.fromarray(mask, "L").save(labels / f"{case}.png")


def build(root: Path) -> dict:
    """Write everything under ``root``; returns the paths the tests use."""
    import torch
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    rng = np.random.default_rng(7)
    raw = root / "raw" / DATASET
    images, labels = raw / "imagesTr", raw / "labelsTr"
    images.mkdir(parents=True)
    labels.mkdir()
    _write_case_files(images, TRAIN_SIZES, rng, labels)
    test_images = root / "imagesTs"
    test_images.mkdir()
    _write_case_files(test_images, TEST_SIZES, rng)
    Image.open(images / "case_a_0000.png").save(test_images / "case_a_0000.png")

    classes = dict(zip(TRAIN_SIZES, ("benign", "malignant", "normal", "benign")))
    dataset_json = _dataset_json(classes)
    (raw / "dataset.json").write_text(json.dumps(dataset_json))
    plans = _plans(spacing=2.0)

    preprocessed = root / "preprocessed" / DATASET
    data_folder = preprocessed / "PhyJointPlans_2d"
    data_folder.mkdir(parents=True)
    plans_manager = PlansManager(plans)
    configuration = plans_manager.get_configuration("2d")
    preprocessor = DefaultPreprocessor(verbose=False)
    for case in TRAIN_SIZES:
        preprocessor.run_case_save(str(data_folder / case), [str(images / f"{case}_0000.png")],
                                   str(labels / f"{case}.png"), plans_manager, configuration, dataset_json)
    cases = sorted(TRAIN_SIZES)
    splits = [{"train": cases[1:], "val": cases[:1]}, {"train": cases[:-1], "val": cases[-1:]}]
    (preprocessed / "splits_final.json").write_text(json.dumps(splits))

    model = root / "results" / DATASET / f"{TRAINER}__PhyJointPlans__2d"
    model.mkdir(parents=True)
    (model / "dataset.json").write_text(json.dumps(dataset_json))
    (model / "plans.json").write_text(json.dumps(plans))
    for fold in (0, 1):
        network = _network(seed=fold)
        (model / f"fold_{fold}").mkdir()
        torch.save({"network_weights": network.state_dict(), "trainer_name": TRAINER,
                    "init_args": {"plans": plans, "configuration": "2d", "fold": fold, "dataset_json": dataset_json},
                    "inference_allowed_mirroring_axes": (1,), "current_epoch": 1},
                   model / f"fold_{fold}" / "checkpoint_final.pth")
    return {"root": root, "model": model, "preprocessed": preprocessed, "raw": raw, "test_images": test_images,
            "plans": plans, "dataset_json": dataset_json}


def tiny_model(tmp_path_factory) -> dict:
    """:func:`build` once per session, plus its INT8 ONNX export (both folds) at ``["export"]``."""
    if "model" not in _CACHE:
        from nnunet_phyjoint.onnx_export.folder import export_onnx_folder

        paths = build(tmp_path_factory.mktemp("onnx_tiny"))
        paths["export"] = paths["root"] / "export_int8"
        paths["report"] = export_onnx_folder(paths["model"], paths["export"], bits=8,
                                             calibration_data=paths["preprocessed"], calibration_images=8,
                                             verbose=False)
        _CACHE["model"] = paths
    return _CACHE["model"]
