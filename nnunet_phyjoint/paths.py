"""nnU-Net folders, read from the environment at call time.

``nnunetv2.paths`` reads the variables once at import; our commands and tests may set them
later, so we look them up whenever they are needed.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

_VARS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


def nnunet_dir(var: str) -> Path:
    """The folder named by environment variable ``var`` (one of nnU-Net's three)."""
    if var not in _VARS:
        raise ValueError(f"{var} is not one of {_VARS}")
    value = os.environ.get(var)
    if not value:
        raise RuntimeError(
            f"environment variable {var} is not set; run `eval \"$(phyjoint env WORKDIR)\"` "
            "or export nnUNet_raw, nnUNet_preprocessed and nnUNet_results yourself"
        )
    return Path(value)


def raw_dir() -> Path:
    return nnunet_dir("nnUNet_raw")


def preprocessed_dir() -> Path:
    return nnunet_dir("nnUNet_preprocessed")


def results_dir() -> Path:
    return nnunet_dir("nnUNet_results")


def find_dataset_name(dataset_id: int | str, base: Path | None = None) -> str:
    """``DatasetXXX_NAME`` for an id (or a full name), searching raw then preprocessed."""
    if isinstance(dataset_id, str) and dataset_id.startswith("Dataset"):
        return dataset_id
    did = int(dataset_id)
    pattern = re.compile(rf"^Dataset{did:03d}_.+")
    bases = [base] if base is not None else []
    for var in _VARS:
        if os.environ.get(var):
            bases.append(Path(os.environ[var]))
    for b in bases:
        if b.is_dir():
            hits = sorted(p.name for p in b.iterdir() if p.is_dir() and pattern.match(p.name))
            if len(hits) > 1:
                raise RuntimeError(f"more than one dataset with id {did} in {b}: {hits}")
            if hits:
                return hits[0]
    raise FileNotFoundError(f"no Dataset{did:03d}_* folder in {[str(b) for b in bases]}")


def trainers_dir() -> Path:
    """The installed folder of thin trainer modules that ``nnUNet_extTrainer`` must name.

    That is the package ``nnunet_phyjoint.trainers`` (the repository's ``trainers/``, mapped into the
    package by pyproject.toml), wherever it is installed: site-packages for a wheel, the checkout for
    an editable install.
    """
    import importlib.util

    spec = importlib.util.find_spec("nnunet_phyjoint.trainers")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))).resolve()
    # an editable install made before trainers/ was mapped into the package still finds the checkout's folder
    import nnunet_phyjoint

    checkout = Path(nnunet_phyjoint.__file__).resolve().parent.parent / "trainers"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError("nnunet_phyjoint.trainers is not installed and there is no trainers/ folder beside "
                            f"{checkout.parent}; reinstall nnunet-phyjoint")


def ext_trainer_value(current: str | None = None) -> str:
    """``nnUNet_extTrainer`` with our installed trainers folder first and the other folders kept after it.

    First, because nnU-Net takes the first folder that has a class of the requested name: a folder
    of an earlier install (an old checkout, say) that is still exported must not shadow this one.
    """
    ours = trainers_dir()
    value = os.environ.get("nnUNet_extTrainer", "") if current is None else current
    kept = [p for p in value.split(os.pathsep) if p and Path(p).resolve() != ours]
    return os.pathsep.join([str(ours), *kept])


def ensure_trainers_on_ext_path() -> None:
    """Put our trainers folder first on ``nnUNet_extTrainer`` in this process (nnU-Net reads it at lookup time).

    So that predicting from a model folder finds its trainer by name even when the shell still
    exports the folder of an earlier install.
    """
    os.environ["nnUNet_extTrainer"] = ext_trainer_value()
