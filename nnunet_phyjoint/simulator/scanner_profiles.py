"""Scanner profiles: the acquisition and display parameters that make one ultrasound machine look unlike another.

The first four profiles are hand-picked to differ clearly (fine vs coarse speckle, bright vs
dark, soft vs hard contrast); further ones are drawn from the same ranges with a fixed
seed per index, so a tag always means the same machine whatever the dataset seed.
"""
from __future__ import annotations

import string
from dataclasses import asdict, dataclass

import numpy as np

SPEED_OF_SOUND_MM_PER_US = 1.54


@dataclass(frozen=True)
class ScannerProfile:
    """One simulated scanner (linear breast probe + its image processing)."""

    tag: str                    # alphanumeric; the PRECISE "source" field of file names
    frequency_mhz: float        # centre frequency: sets wavelength, hence PSF size, and attenuation
    pulse_cycles: float         # pulse length in cycles: axial resolution
    f_number: float             # focal depth / aperture: lateral resolution
    focus_depth_mm: float       # lateral PSF is narrowest here
    depth_mm: float             # imaged depth (image height)
    width_mm: float             # probe footprint (image width)
    tgc_compensation: float     # fraction of the nominal tissue attenuation that time-gain compensation undoes
    gain_db: float              # overall receive gain
    dynamic_range_db: float     # span of the log-compressed display
    white_level_db: float       # echo level shown as full white before gain
    noise_db: float             # electronic noise floor, relative to glandular backscatter
    smoothing_px: float         # speckle-reduction filter applied to the displayed image
    gamma: float                # grey map curvature (>1 darkens mid-tones, i.e. harder contrast)

    def __post_init__(self) -> None:
        if not self.tag.isalnum():
            raise ValueError(f"scanner tag {self.tag!r} must be alphanumeric (it is part of PRECISE file names)")

    @property
    def wavelength_mm(self) -> float:
        return SPEED_OF_SOUND_MM_PER_US / self.frequency_mhz

    @property
    def axial_fwhm_mm(self) -> float:
        """Two-way pulse length: cycles x wavelength / 2."""
        return self.pulse_cycles * self.wavelength_mm / 2

    @property
    def lateral_fwhm_mm(self) -> float:
        """Diffraction-limited beam width at the focus: wavelength x f-number."""
        return self.wavelength_mm * self.f_number

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(wavelength_mm=round(self.wavelength_mm, 4), axial_fwhm_mm=round(self.axial_fwhm_mm, 4),
                 lateral_fwhm_mm=round(self.lateral_fwhm_mm, 4))
        return d


_HAND_PICKED = (
    # high-frequency probe: fine speckle, bright, shallow field
    ScannerProfile("SIMA", frequency_mhz=12.0, pulse_cycles=2.5, f_number=4.0, focus_depth_mm=15.0,
                   depth_mm=35.0, width_mm=38.0, tgc_compensation=0.9, gain_db=2.0, dynamic_range_db=55.0,
                   white_level_db=12.0, noise_db=-72.0, smoothing_px=0.0, gamma=1.4),
    # low-frequency probe: coarse speckle, dark, hard contrast, deep field, weak TGC
    ScannerProfile("SIMB", frequency_mhz=7.0, pulse_cycles=3.0, f_number=5.0, focus_depth_mm=22.0,
                   depth_mm=45.0, width_mm=45.0, tgc_compensation=0.8, gain_db=-3.0, dynamic_range_db=45.0,
                   white_level_db=10.0, noise_db=-70.0, smoothing_px=0.0, gamma=1.8),
    # mid frequency with heavy speckle reduction: smooth, washed-out look
    ScannerProfile("SIMC", frequency_mhz=10.0, pulse_cycles=2.5, f_number=4.0, focus_depth_mm=18.0,
                   depth_mm=40.0, width_mm=40.0, tgc_compensation=0.95, gain_db=3.0, dynamic_range_db=60.0,
                   white_level_db=16.0, noise_db=-75.0, smoothing_px=1.0, gamma=1.1),
    # noisy, laterally blurred, dim machine with over-compensating TGC
    ScannerProfile("SIMD", frequency_mhz=9.0, pulse_cycles=3.0, f_number=7.0, focus_depth_mm=25.0,
                   depth_mm=40.0, width_mm=42.0, tgc_compensation=1.05, gain_db=-5.0, dynamic_range_db=50.0,
                   white_level_db=10.0, noise_db=-60.0, smoothing_px=0.4, gamma=1.5),
)


def scanner_tag(index: int) -> str:
    """SIMA, SIMB, ..., SIMZ, SIMAA, SIMAB, ... (alphanumeric)."""
    letters = string.ascii_uppercase
    name = ""
    i = index
    while True:
        name = letters[i % 26] + name
        i = i // 26 - 1
        if i < 0:
            return "SIM" + name


def _random_profile(index: int) -> ScannerProfile:
    rng = np.random.default_rng([9173, index])  # fixed per index: a tag means one machine
    u = lambda lo, hi: round(float(rng.uniform(lo, hi)), 2)  # noqa: E731
    depth = u(32.0, 48.0)
    return ScannerProfile(
        scanner_tag(index), frequency_mhz=u(6.5, 13.0), pulse_cycles=u(2.0, 3.5), f_number=u(3.5, 6.0),
        focus_depth_mm=u(12.0, 25.0), depth_mm=depth, width_mm=round(depth * u(0.95, 1.1), 2),
        tgc_compensation=u(0.75, 1.05), gain_db=u(-4.0, 4.0), dynamic_range_db=u(45.0, 65.0),
        white_level_db=u(9.0, 16.0), noise_db=u(-75.0, -60.0), smoothing_px=u(0.0, 1.2), gamma=u(1.1, 1.8),
    )


def scanner_profiles(k: int) -> list[ScannerProfile]:
    """``k`` distinct scanner profiles: the four hand-picked ones first, then seeded random ones."""
    if k < 1:
        raise ValueError(f"need at least one scanner, got {k}")
    return [(_HAND_PICKED[i] if i < len(_HAND_PICKED) else _random_profile(i)) for i in range(k)]
