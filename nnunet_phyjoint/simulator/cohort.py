"""Who is imaged: patients, their class, their scanner and how many images each contributes.

File names follow PRECISE (``PACE_<subject>_<code>_<source>.png``), whose class code is the only
room for a second image of one patient: a first image gets 001/002 and the follow-up 100/101
(same subject, same scanner). Normal patients therefore have one image each.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

CLASS_CODES = {("normal", False): "000", ("benign", False): "001", ("malignant", False): "002",
               ("benign", True): "100", ("malignant", True): "101"}
PRECISE_NAME = re.compile(r"^PACE_(?P<subject>\d{5})_(?P<code>\d{3})_(?P<source>[A-Za-z0-9]+)(?P<mask>_mask)?\.png$")
CODE_CLASSES = {code: label for (label, _), code in CLASS_CODES.items()}


@dataclass(frozen=True)
class ImageSpec:
    """One image to simulate."""

    subject: int
    label: str          # normal / benign / malignant
    scanner: str
    follow_up: bool     # the patient's second image

    @property
    def code(self) -> str:
        return CLASS_CODES[(self.label, self.follow_up)]

    @property
    def stem(self) -> str:
        return f"PACE_{self.subject:05d}_{self.code}_{self.scanner}"

    @property
    def image_relpath(self) -> str:
        return f"{self.label}/{self.stem}.png"

    @property
    def mask_relpath(self) -> str:
        return f"{self.label}/{self.stem}_mask.png"


def class_counts(n: int, malignant_fraction: float, normal_fraction: float) -> dict[str, int]:
    """Images per class; benign takes the rest."""
    for name, f in (("malignant_fraction", malignant_fraction), ("normal_fraction", normal_fraction)):
        if not 0.0 <= f <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {f}")
    if malignant_fraction + normal_fraction > 1.0:
        raise ValueError(f"malignant_fraction + normal_fraction = {malignant_fraction + normal_fraction} exceeds 1")
    n_malignant = int(round(n * malignant_fraction))
    n_normal = int(round(n * normal_fraction))
    return {"normal": n_normal, "benign": n - n_malignant - n_normal, "malignant": n_malignant}


def plan_cohort(
    n: int, scanner_tags: list[str], rng: np.random.Generator, malignant_fraction: float = 0.18,
    normal_fraction: float = 0.2, multi_image_fraction: float = 0.25,
) -> list[ImageSpec]:
    """``n`` images over patients and scanners.

    In each lesion class about ``multi_image_fraction`` of the images belong to patients with two
    images. Each class is spread evenly over the scanners, so every scanner sees every class.
    """
    if n < 1 or n > 99_999:
        raise ValueError(f"n must be between 1 and 99999 (5-digit subject numbers), got {n}")
    if not 0.0 <= multi_image_fraction <= 1.0:
        raise ValueError(f"multi_image_fraction must be in [0, 1], got {multi_image_fraction}")
    patients: list[tuple[str, int, str]] = []  # (class, images, scanner)
    for label, count in class_counts(n, malignant_fraction, normal_fraction).items():
        pairs = 0 if label == "normal" else int(count * multi_image_fraction / 2)
        sizes = [2] * pairs + [1] * (count - 2 * pairs)
        sizes = [sizes[i] for i in rng.permutation(len(sizes))]
        offset = int(rng.integers(len(scanner_tags)))
        patients += [(label, k, scanner_tags[(offset + i) % len(scanner_tags)]) for i, k in enumerate(sizes)]
    order = rng.permutation(len(patients))  # subject numbers must not reveal the class
    specs = []
    for subject, p in enumerate(order, start=1):
        label, k, scanner = patients[p]
        specs += [ImageSpec(subject, label, scanner, follow_up=bool(i)) for i in range(k)]
    return specs
