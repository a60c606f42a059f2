"""A content / reference (other scanner) / result grid for a person to judge the style shift."""
from __future__ import annotations

from pathlib import Path

import torch

from nnunet_phyjoint.atomic_io import atomic_path


def style_grid(
    dataset: int | str | Path,
    output: str | Path,
    plans: str = "PhyJointPlans",
    configuration: str = "2d",
    fold: int = 0,
    n: int = 4,
    device: str = "cpu",
    vgg_weights: str | Path | None = "auto",
    fit_if_missing: bool = False,
    alpha: float = 1.0,
    seed: int = 0,
    progress: bool = True,
    layer: str | None = None,
    fit_kwargs: dict | None = None,
) -> Path:
    """Re-style ``n`` training cases (scanners taken in turn) and save the grid as a PNG; returns its path.

    ``layer`` picks the decoder (default: the device's, see :func:`~nnunet_phyjoint.style_shift.fit.default_layer`);
    ``fit_kwargs`` go to the fit when ``fit_if_missing`` fits one.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnunet_phyjoint.style_shift.augmenter import StyleShiftAugmenter
    from nnunet_phyjoint.style_shift.vgg_descriptor import to_unit

    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    output = Path(output)
    if output.suffix.lower() != ".png":
        raise ValueError(f"output {output} must be a .png file")
    aug = StyleShiftAugmenter.from_dataset(dataset, plans, configuration, fold, p=1.0, alpha=alpha, device=device,
                                           fit_if_missing=fit_if_missing, vgg_weights=vgg_weights, seed=seed,
                                           progress=progress, fit_kwargs={**(fit_kwargs or {}), "layer": layer})
    bank = aug.bank
    contents = _pick_across_scanners(bank, n, torch.Generator().manual_seed(seed))
    refs = bank.sample_references(contents, aug.generator)
    shape = bank.config.patch_size[-2:] if bank.config else bank.get_image(contents[0]).shape[-2:]
    content = bank.get_batch(contents, shape, device)[:, :1]
    reference = bank.get_batch(refs, shape, device)[:, :1]
    result = aug.restyle(content, refs)

    fig, axes = plt.subplots(len(contents), 3, figsize=(9, 3 * len(contents)), squeeze=False)
    columns = (("content", contents, content), ("reference", refs, reference), ("result", contents, result))
    for row in range(len(contents)):
        for col, (what, ids, images) in enumerate(columns):
            ax = axes[row, col]
            ax.imshow(to_unit(images[row : row + 1])[0, 0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
            label = f"{what}: {ids[row]}\nscanner {bank.scanner_of(ids[row]) or '?'}"
            ax.set_title(label if what != "result" else f"result (AdaIN at {aug.layer}, alpha {alpha:g})", fontsize=8)
            ax.axis("off")
    fig.suptitle(f"physics style shift, {bank.config.dataset_folder.name if bank.config else ''} fold {fold}", fontsize=10)
    fig.tight_layout()
    try:
        with atomic_path(output) as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)
    return output


def _pick_across_scanners(bank, n: int, gen: torch.Generator) -> list[str]:
    """``n`` case ids, taking the scanners in turn so every scanner shows up."""
    by_scanner: dict[str, list[str]] = {}
    for cid in bank.case_ids:
        by_scanner.setdefault(bank.scanner_of(cid) or "?", []).append(cid)
    pools = []
    for ids in by_scanner.values():
        pools.append([ids[j] for j in torch.randperm(len(ids), generator=gen).tolist()])
    picked: list[str] = []
    while len(picked) < min(n, len(bank.case_ids)):
        for pool in pools:
            if pool and len(picked) < n:
                picked.append(pool.pop())
    return picked
