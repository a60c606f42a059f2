"""The training fold's preprocessed images with their scanner ids: where style references come from."""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class PreprocessedConfig:
    """Where one plans/configuration of a preprocessed dataset lives."""

    dataset_folder: Path  # $nnUNet_preprocessed/DatasetXXX_NAME
    plans: str
    configuration: str
    data_folder: Path  # dataset_folder / data_identifier
    patch_size: tuple[int, ...]


def resolve_dataset_folder(dataset: int | str | Path) -> Path:
    """``$nnUNet_preprocessed/DatasetXXX_NAME`` for an id or name, or an existing folder as is."""
    from nnunet_phyjoint.paths import find_dataset_name, preprocessed_dir

    if isinstance(dataset, Path) or (isinstance(dataset, str) and ("/" in dataset or Path(dataset).is_dir())):
        folder = Path(dataset).expanduser().resolve()
        if not folder.is_dir():
            raise FileNotFoundError(f"preprocessed dataset folder {folder} does not exist")
        return folder
    base = preprocessed_dir()
    folder = base / find_dataset_name(dataset, base)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist: run nnU-Net's preprocessing for dataset {dataset} first")
    return folder


def locate_preprocessed(dataset: int | str | Path, plans: str = "PhyJointPlans", configuration: str = "2d") -> PreprocessedConfig:
    """Read the plans file and find the configuration's data folder and patch size."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    folder = resolve_dataset_folder(dataset)
    plans_file = folder / f"{plans}.json"
    if not plans_file.is_file():
        have = sorted(p.stem for p in folder.glob("*.json") if p.stem not in ("dataset", "dataset_fingerprint", "splits_final"))
        raise FileNotFoundError(f"plans file {plans_file} does not exist (plans here: {have})")
    try:
        cm = PlansManager(str(plans_file)).get_configuration(configuration)
    except (RuntimeError, ValueError) as e:
        raise ValueError(f"{plans_file}: {e}") from e
    data_folder = folder / cm.data_identifier
    if not data_folder.is_dir():
        raise FileNotFoundError(
            f"{data_folder} does not exist: preprocess configuration {configuration!r} of {plans_file.name} first"
        )
    return PreprocessedConfig(folder, plans, configuration, data_folder, tuple(int(s) for s in cm.patch_size))


def training_case_ids(dataset_folder: Path, fold: int) -> list[str]:
    """The ``train`` list of fold ``fold`` in ``splits_final.json``."""
    splits_file = Path(dataset_folder) / "splits_final.json"
    if not splits_file.is_file():
        raise FileNotFoundError(f"{splits_file} does not exist: the training fold is unknown (create the splits first)")
    with open(splits_file) as f:
        splits = json.load(f)
    if not isinstance(splits, list) or not all(isinstance(s, dict) and "train" in s for s in splits):
        raise ValueError(f"{splits_file} is not a list of {{'train': [...], 'val': [...]}} folds")
    if not 0 <= fold < len(splits):
        raise ValueError(f"{splits_file} has {len(splits)} folds; fold {fold} does not exist")
    return sorted(str(k) for k in splits[fold]["train"])


def load_scanners(dataset_folder: Path) -> dict[str, str]:
    """Case id -> scanner from the dataset.json next to the preprocessed data ({} with a warning if absent)."""
    from nnunet_phyjoint.metadata import load_case_metadata

    dj = Path(dataset_folder) / "dataset.json"
    try:
        return {cid: m.scanner for cid, m in load_case_metadata(dj).items()}
    except (KeyError, FileNotFoundError) as e:
        warnings.warn(f"no scanner ids ({e}); style references are drawn from any other case", RuntimeWarning)
        return {}


def resize_cover_crop(img: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Scale (C, H, W) so it covers ``shape`` keeping its aspect ratio (speckle stays round), then centre-crop."""
    h, w = img.shape[-2:]
    th, tw = int(shape[0]), int(shape[1])
    scale = max(th / h, tw / w)
    nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
    if (nh, nw) != (h, w):
        img = F.interpolate(img[None].float(), size=(nh, nw), mode="bilinear", align_corners=False, antialias=scale < 1)[0]
    top, left = (nh - th) // 2, (nw - tw) // 2
    return img[:, top : top + th, left : left + tw]


class ReferenceBank:
    """Preprocessed 2D images (C, H, W), kept in float16 on the CPU, and the scanner of every case."""

    def __init__(self, images: Mapping[str, torch.Tensor], scanners: Mapping[str, str] | None = None) -> None:
        if len(images) < 2:
            raise ValueError(f"a reference bank needs at least two cases, got {len(images)}")
        self.images = {k: v.to("cpu", torch.float16) for k, v in sorted(images.items())}
        self.case_ids: list[str] = list(self.images)
        self.scanners: dict[str, str] = dict(scanners or {})
        self._bank_scanner = [self.scanners.get(k) for k in self.case_ids]
        self._others_cache: dict[str | None, list[int]] = {}
        self.config: PreprocessedConfig | None = None  # set by from_preprocessed

    @classmethod
    def from_preprocessed(
        cls,
        dataset: int | str | Path,
        plans: str = "PhyJointPlans",
        configuration: str = "2d",
        fold: int = 0,
        case_ids: Sequence[str] | None = None,
        progress: bool = True,
    ) -> "ReferenceBank":
        """Load the training fold (or ``case_ids``) of a preprocessed 2D dataset."""
        import numpy as np
        from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

        from nnunet_phyjoint.progress import progress as progress_bar

        cfg = locate_preprocessed(dataset, plans, configuration)
        ids = sorted(case_ids) if case_ids is not None else training_case_ids(cfg.dataset_folder, fold)
        ds = infer_dataset_class(str(cfg.data_folder))(str(cfg.data_folder), identifiers=list(ids))
        images = {}
        for cid in progress_bar(ids, desc="loading style references", disable=not progress, leave=False):
            try:
                data = np.asarray(ds.load_case(cid)[0][:])
            except (FileNotFoundError, OSError, RuntimeError) as e:
                raise FileNotFoundError(f"cannot read case {cid} from {cfg.data_folder}: {e}") from e
            if data.ndim != 4 or data.shape[1] != 1:
                raise ValueError(f"{cfg.data_folder}/{cid}: expected 2D data (C, 1, H, W), got shape {data.shape}")
            images[cid] = torch.from_numpy(np.ascontiguousarray(data[:, 0], dtype=np.float32))
        bank = cls(images, load_scanners(cfg.dataset_folder))
        bank.config = cfg
        return bank

    @property
    def n_scanners(self) -> int:
        return len({s for s in self._bank_scanner})

    def scanner_of(self, case_id: str) -> str | None:
        return self.scanners.get(case_id)

    def _candidates(self, key: str) -> list[int]:
        scanner = self.scanners.get(key)
        if scanner not in self._others_cache:
            other = [i for i, s in enumerate(self._bank_scanner) if scanner is None or s != scanner]
            self._others_cache[scanner] = other
        other = self._others_cache[scanner]
        if scanner is not None and other:
            return other
        # one scanner (or unknown): any case but the key itself
        return [i for i, k in enumerate(self.case_ids) if k != key]

    def sample_references(self, keys: Sequence[str], generator: torch.Generator | None = None) -> list[str]:
        """For each key a reference case from a different scanner (any other case when there is one scanner)."""
        out = []
        for key in keys:
            cand = self._candidates(key)
            if not cand:
                raise ValueError(f"no reference case available for {key!r}")
            j = int(torch.randint(len(cand), (1,), generator=generator))
            out.append(self.case_ids[cand[j]])
        return out

    def get_image(self, case_id: str) -> torch.Tensor:
        """One stored image (C, H, W) in float32."""
        try:
            return self.images[case_id].float()
        except KeyError:
            raise KeyError(f"case {case_id!r} is not in the reference bank ({len(self.case_ids)} cases)") from None

    def get_batch(self, ref_ids: Sequence[str], shape: Sequence[int], device: torch.device | str | None = None) -> torch.Tensor:
        """(B, C, *shape) float32: each reference scaled to cover ``shape`` and centre-cropped."""
        batch = torch.stack([resize_cover_crop(self.get_image(r), shape) for r in ref_ids])
        return batch.to(device) if device is not None else batch
