"""Near-identical images by perceptual hash (imagehash.phash on a small thumbnail).

Ultrasound collections (BUSI above all) hold the same frame several times, sometimes with and
without calipers or under different classes. Images whose 64-bit pHash differ in at most
``threshold`` bits are linked, and linked images form one duplicate group (connected components),
so a splitter can keep them on one side of every split.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
from PIL import Image

# 10 of 64 bits is the usual near-duplicate cut for pHash (imagededup's default); on the real
# PRECISE sample the one near-identical pair (same lesion, calipers moved) differs by 8 bits and
# the closest distinct images by 16.
DEFAULT_THRESHOLD = 10
_THUMBNAIL = 64


def perceptual_hash(grey: np.ndarray) -> int:
    """64-bit pHash of a grey image, as an int."""
    import imagehash

    im = Image.fromarray(grey, "L")
    im = im.resize((_THUMBNAIL, _THUMBNAIL), Image.Resampling.BOX)  # cheap: phash keeps only 32x32 anyway
    bits = imagehash.phash(im).hash.flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def duplicate_groups(hashes: Mapping[str, int], threshold: int = DEFAULT_THRESHOLD) -> dict[str, list[str]]:
    """Group name -> sorted case ids, for every group of two or more near-identical images.

    Groups are named ``dup0001``, ``dup0002``... in the order of their first case id, so the
    result only depends on the hashes.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ids = sorted(hashes)
    n = len(ids)
    if n < 2:
        return {}
    h = np.array([hashes[i] for i in ids], dtype=np.uint64)
    rows, cols = [], []
    for i in range(n - 1):  # one row at a time: memory stays O(n) for datasets of thousands of images
        dist = np.bitwise_count(h[i] ^ h[i + 1:])
        near = np.nonzero(dist <= threshold)[0]
        rows.extend([i] * len(near))
        cols.extend((near + i + 1).tolist())
    if not rows:
        return {}
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    members: dict[int, list[str]] = {}
    for idx, comp in enumerate(component):
        members.setdefault(int(comp), []).append(ids[idx])
    groups = sorted((m for m in members.values() if len(m) > 1), key=lambda m: m[0])
    return {f"dup{k:04d}": m for k, m in enumerate(groups, start=1)}

