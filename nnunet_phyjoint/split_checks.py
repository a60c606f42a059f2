"""Checks that cross-validation folds keep patients, and near-duplicate images, on one side of every split.

Duplicate groups can link different patients (BUSI has one "patient" per image but many duplicates), so
the groups that must not be split are the connected components of the patient <-> duplicate-group graph.
Shared by our own folds (:mod:`nnunet_phyjoint.splits`) and folds read from a dataset's published
partition (:mod:`nnunet_phyjoint.published_partition`).
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Literal, Mapping

from nnunet_phyjoint.metadata import CaseMeta

Split = dict[str, Any]


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # the smaller name wins so that group names do not depend on insertion order
            lo, hi = sorted((ra, rb))
            self.parent[hi] = lo


def case_groups(metadata: Mapping[str, CaseMeta]) -> dict[str, str]:
    """Case id -> group name: patients joined with every patient they share a duplicate group with."""
    uf = _UnionFind()
    for m in metadata.values():
        uf.find(f"patient:{m.patient}")
        if m.duplicate_group is not None:
            uf.union(f"patient:{m.patient}", f"duplicate:{m.duplicate_group}")
    return {cid: uf.find(f"patient:{m.patient}") for cid, m in metadata.items()}


def verify_splits(splits: list[Split], metadata: Mapping[str, CaseMeta], *, require_partition: bool = True,
                  duplicates: Literal["error", "report"] = "error") -> list[str]:
    """Raise ``ValueError`` if a group appears on both sides of a split, or in two validation folds.

    With ``require_partition`` every case must be in exactly one validation fold (k-fold CV). With
    ``duplicates="error"`` a group is a patient joined with its near-duplicates (:func:`case_groups`), so
    splitting near-duplicates is an error; with ``"report"`` a group is a patient, and each near-duplicate
    group that a split puts on both sides is returned as a warning (for folds we did not make, such as a
    dataset's published partition). Returns the warnings (none with ``"error"``).
    """
    if duplicates not in ("error", "report"):
        raise ValueError(f"duplicates must be 'error' or 'report', got {duplicates!r}")
    groups = (case_groups(metadata) if duplicates == "error"
              else {cid: f"patient:{m.patient}" for cid, m in metadata.items()})
    val_fold_of_group: dict[str, int] = {}
    seen_val: Counter[str] = Counter()
    for i, split in enumerate(splits):
        unknown = [c for c in (*split["train"], *split["val"]) if c not in metadata]
        if unknown:
            raise ValueError(f"split {i} names cases without metadata: {unknown[:5]}")
        train_groups = {groups[c] for c in split["train"]}
        val_groups = {groups[c] for c in split["val"]}
        both = sorted(train_groups & val_groups)
        if both:
            raise ValueError(f"split {i}: patient group(s) {both[:5]} are in both train and val")
        if require_partition:
            for g in val_groups:
                if g in val_fold_of_group:
                    raise ValueError(f"patient group {g} is in the validation set of folds {val_fold_of_group[g]} and {i}")
                val_fold_of_group[g] = i
        seen_val.update(split["val"])
    if require_partition:
        missing = sorted(set(metadata) - set(seen_val))
        twice = sorted(c for c, n in seen_val.items() if n > 1)
        if missing or twice:
            raise ValueError(f"folds do not partition the cases: missing {missing[:5]}, repeated {twice[:5]}")
    return [] if duplicates == "error" else _split_duplicate_groups(splits, metadata)


def _split_duplicate_groups(splits: list[Split], metadata: Mapping[str, CaseMeta]) -> list[str]:
    """One warning per near-duplicate group that some split has on both sides."""
    members: dict[str, list[str]] = {}
    for cid, m in metadata.items():
        if m.duplicate_group is not None:
            members.setdefault(m.duplicate_group, []).append(cid)
    val_folds: dict[str, list[int]] = {}
    for i, split in enumerate(splits):
        for cid in split["val"]:
            val_folds.setdefault(cid, []).append(i)
    warnings = []
    for group, cases in sorted(members.items()):
        cases = set(cases)
        if any(cases & set(s["train"]) and cases & set(s["val"]) for s in splits):
            where = ", ".join(f"{c} (fold {', '.join(map(str, val_folds.get(c, []))) or 'train only'})"
                              for c in sorted(cases))
            warnings.append(f"near-duplicate images {where} ({group}) are on both sides of a split: "
                            "a model is validated on an image whose near-duplicate it trained on")
    return warnings
