"""Physically motivated multi-scanner breast-ultrasound simulator (PRECISE layout output).

Pipeline of one image: anatomy (tissue layers as acoustic property maps) -> lesion by class
-> scatterers -> PSF convolution -> attenuation, TGC, gain, noise -> envelope -> log
compression and grey map. Each scanner is a :class:`ScannerProfile` of those parameters.
"""
from nnunet_phyjoint.simulator.dataset import render_image, simulate_dataset
from nnunet_phyjoint.simulator.preview import save_preview
from nnunet_phyjoint.simulator.scanner_profiles import ScannerProfile, scanner_profiles

__all__ = ["ScannerProfile", "render_image", "save_preview", "scanner_profiles", "simulate_dataset"]
