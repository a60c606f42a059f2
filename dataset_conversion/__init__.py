"""Converters from public breast-ultrasound datasets (and our simulator) to nnU-Net's raw format.

Each ``convert_*`` function writes ``$nnUNet_raw/DatasetXXX_NAME`` with ``imagesTr``, ``labelsTr``,
a ``dataset.json`` carrying per-case metadata under ``"phyjoint"`` and ``conversion_report.json``,
and returns that folder. :func:`convert_images` prepares unlabeled images for ``nnUNetv2_predict``.
"""
from dataset_conversion.breast import convert_breast
from dataset_conversion.bus_bra import convert_bus_bra
from dataset_conversion.bus_uclm import convert_bus_uclm
from dataset_conversion.busi import convert_busi, convert_curated_busi
from dataset_conversion.precise import convert_precise
from dataset_conversion.problems import ConversionError
from dataset_conversion.unlabeled import convert_images

# CLI name -> converter; all take (source, dataset_id, name=None, overwrite=False, strict=False)
CONVERTERS = {
    "precise": convert_precise,
    "busi": convert_busi,
    "curated-busi": convert_curated_busi,
    "bus-uclm": convert_bus_uclm,
    "bus-bra": convert_bus_bra,
    "breast": convert_breast,
}

__all__ = ["CONVERTERS", "ConversionError", "convert_breast", "convert_bus_bra", "convert_bus_uclm", "convert_busi",
           "convert_curated_busi", "convert_images", "convert_precise"]
