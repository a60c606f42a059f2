"""nnU-Net's preprocessing with the plans' input scaling (:mod:`nnunet_phyjoint.input_scaling`).

nnU-Net looks preprocessors up by name inside nnunetv2 only, so the plans keep naming its
``DefaultPreprocessor`` and the letterbox is applied by :class:`LetterboxPreprocessor`, which
``phyjoint preprocess`` (training data) and ``phyjoint predict`` (new images, through
:func:`with_plans_preprocessor`) use. It changes one thing: before nnU-Net's own crop, normalise and
resample, the case's spacing is replaced by the one that letterboxes it; the case's properties record
that (``phyjoint_scaling``) and the spacing the reader reported, and nnU-Net's export resamples
predictions back to the original size as for any case.

``nnUNetv2_predict`` letterboxes too: the PhyJoint trainer's ``build_network_architecture`` hands nnU-Net's
predictor this preprocessor (:func:`adopt_plans_preprocessor`). Stock ``nnUNetv2_preprocess`` on letterbox
plans sees every image at the plans' single target spacing instead (the ``single-spacing`` input: whole
image, smaller); the trainer refuses data preprocessed that way for letterbox plans.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any

from nnunetv2.preprocessing.cropping.cropping import create_nonzero_mask
from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

from nnunet_phyjoint.input_scaling import (
    LETTERBOX, READER_SPACING_KEY, SCALING_KEY, letterbox_spacing, scaling_of,
)


def nonzero_shape(data) -> tuple[int, ...]:
    """Shape of nnU-Net's crop to non-zero of ``data`` (C, ...), without cropping."""
    from acvl_utils.cropping_and_padding.bounding_boxes import get_bbox_from_mask

    bbox = get_bbox_from_mask(create_nonzero_mask(data))
    return tuple(int(hi - lo) for lo, hi in bbox)


class LetterboxPreprocessor(DefaultPreprocessor):
    """nnU-Net's ``DefaultPreprocessor`` that resizes every case so that its long side spans the patch."""

    def run_case_npy(self, data, seg, properties: dict, plans_manager, configuration_manager, dataset_json):
        transpose = list(plans_manager.transpose_forward)
        reader_spacing = [float(s) for s in properties["spacing"]]
        transposed = data.transpose([0, *[i + 1 for i in transpose]])
        spacing_t = [reader_spacing[i] for i in transpose]
        new_t = letterbox_spacing(spacing_t, nonzero_shape(transposed), configuration_manager.spacing,
                                  max(configuration_manager.patch_size))
        spacing = [0.0] * len(new_t)
        for axis, value in zip(transpose, new_t):  # back to the reader's axis order, as nnU-Net stores it
            spacing[axis] = value
        properties[READER_SPACING_KEY] = reader_spacing
        properties["spacing"] = spacing
        properties[SCALING_KEY] = LETTERBOX
        return super().run_case_npy(data, seg, properties, plans_manager, configuration_manager, dataset_json)


class LetterboxConfigurationManager(ConfigurationManager):
    """A configuration whose preprocessor is :class:`LetterboxPreprocessor` (nnU-Net's lookup cannot find it)."""

    @property
    def preprocessor_class(self):
        return LetterboxPreprocessor


def _needs_letterbox_preprocessor(configuration_manager: ConfigurationManager | None) -> bool:
    """A manager on letterbox plans that does not yet preprocess with :class:`LetterboxPreprocessor`."""
    return (configuration_manager is not None
            and not isinstance(configuration_manager, LetterboxConfigurationManager)
            and scaling_of(configuration_manager.configuration) == LETTERBOX)


def with_plans_preprocessor(configuration_manager: ConfigurationManager | None) -> ConfigurationManager | None:
    """``configuration_manager``, made to preprocess new images the way its plans' scaling asks."""
    if _needs_letterbox_preprocessor(configuration_manager):
        return LetterboxConfigurationManager(configuration_manager.configuration)
    return configuration_manager


def adopt_plans_preprocessor(configuration_manager: ConfigurationManager) -> None:
    """Make this very ``configuration_manager`` preprocess the way its plans' scaling asks (in place).

    ``nnUNetv2_predict`` (``nnUNetPredictor.initialize_from_trained_model_folder``) builds the network
    from the configuration manager that later preprocesses the new images, in worker processes that
    receive it pickled; nnU-Net cannot find our preprocessor by name. The trainer's
    ``build_network_architecture`` calls this, so that the manager nnU-Net keeps, and every copy of it,
    letterboxes new images as training did. It changes the class only (no state of its own).
    """
    # only nnU-Net's own class is swapped: another subclass would lose its own behaviour
    if type(configuration_manager) is ConfigurationManager and _needs_letterbox_preprocessor(configuration_manager):
        configuration_manager.__class__ = LetterboxConfigurationManager


def preprocess(dataset_id: int | str, plans_name: str, configuration: str = "2d", num_processes: int = 1,
               verbose: bool = False) -> str:
    """``nnUNetv2_preprocess -d ID -plans_name P -c 2d``, with the letterbox when the plans ask for it.

    Returns the scaling used. nnU-Net's preprocessor writes each case's files as it goes; a case is
    finished when its ``.pkl`` exists (written last).
    """
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_phyjoint.paths import find_dataset_name, preprocessed_dir

    dataset_name = find_dataset_name(dataset_id)
    plans_file = preprocessed_dir() / dataset_name / f"{plans_name}.json"
    if not plans_file.is_file():
        raise FileNotFoundError(f"{plans_file} not found (run `phyjoint plan -d {dataset_id}` first)")
    manager = with_plans_preprocessor(PlansManager(str(plans_file)).get_configuration(configuration))
    preprocessor: Any = manager.preprocessor_class(verbose=verbose)
    # nnU-Net's bar redraws one line with carriage returns: only on a terminal (a log gets the two lines below)
    preprocessor.show_progress_bar = sys.stderr.isatty()
    scaling = scaling_of(manager.configuration)
    print(f"preprocessing {dataset_name} with {plans_name} ({configuration}, input scaling: {scaling}, "
          f"{type(preprocessor).__name__}, {num_processes} process(es))", flush=True)
    start = time.perf_counter()
    preprocessor.run(dataset_name, configuration, plans_name, num_processes=num_processes)
    copy_ground_truth(dataset_name)
    print(f"preprocessed {dataset_name} ({plans_name}, {configuration}) in {time.perf_counter() - start:.1f} s",
          flush=True)
    return scaling


def copy_ground_truth(dataset_name: str) -> None:
    """``gt_segmentations/`` beside the preprocessed data, as ``nnUNetv2_preprocess`` leaves it.

    nnU-Net's final validation scores against these copies (so that it works where only the preprocessed
    data is at hand); a label is copied when missing or older than the raw one.
    """
    import json
    import shutil

    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    from nnunet_phyjoint.paths import preprocessed_dir, raw_dir

    raw = raw_dir() / dataset_name
    dataset_json = json.loads((raw / "dataset.json").read_text())
    target = preprocessed_dir() / dataset_name / "gt_segmentations"
    target.mkdir(parents=True, exist_ok=True)
    for case, files in get_filenames_of_train_images_and_targets(str(raw), dataset_json).items():
        copy = target / f"{case}{dataset_json['file_ending']}"
        if not copy.is_file() or copy.stat().st_mtime < os.path.getmtime(files["label"]):
            shutil.copy2(files["label"], copy)


def check_preprocessed_scaling(configuration: dict, dataset) -> None:
    """Refuse training on data whose input scaling is not the plans' (e.g. letterbox plans, nnU-Net's preprocess).

    ``dataset`` is nnU-Net's preprocessed dataset of a fold; one case's properties tell how it was made.
    """
    scaling = scaling_of(configuration)
    if scaling != LETTERBOX or not dataset.identifiers:
        return
    case = dataset.identifiers[0]
    properties = dataset.load_case(case)[-1]
    if properties.get(SCALING_KEY) != LETTERBOX:
        raise RuntimeError(
            f"the plans ask for letterboxed inputs ({SCALING_KEY}={LETTERBOX!r}), but the preprocessed case {case} "
            f"was not letterboxed (made by nnUNetv2_preprocess?): run `phyjoint preprocess -d DATASET "
            f"-plans_name PLANS` to preprocess it again")
