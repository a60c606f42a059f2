"""Encoder names used as defaults (kept free of heavy imports: the CLI reads them to build its help)."""
from __future__ import annotations

# The paper's EfficientNet-B6 with ImageNet weights in timm: timm's efficientnet_b6 has none; the tf_
# variant has the same blocks with TF "same" padding and the same parameter and MAC counts.
DEFAULT_ENCODER = "tf_efficientnet_b6"
# The encoder of the CPU demo and benchmark: its ImageNet weights also ship in a registry package.
CPU_ENCODER = "efficientnet_lite0"
# What `phyjoint weights list` reports on by default.
KNOWN_ENCODERS = (DEFAULT_ENCODER, CPU_ENCODER, "efficientnet_b0", "efficientnet_b6")
