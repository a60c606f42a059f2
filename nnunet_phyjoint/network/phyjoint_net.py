"""PhyJointNet: timm encoder -> CBAM on the deepest features -> UNet++ mask decoder + diagnosis head.

Named in nnU-Net plans as ``nnunet_phyjoint.network.phyjoint_net.PhyJointNet``; nnU-Net builds it with
``PhyJointNet(input_channels=, num_classes=, deep_supervision=, **arch_kwargs)``, so every keyword
argument is JSON-serialisable. There is deliberately no ``initialize`` method: nnU-Net would
``apply`` it to every module and overwrite pretrained encoder weights. Decoder, CBAM and head are
initialised here instead (paper: Kaiming for convolutions, Xavier for linear layers).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from nnunet_phyjoint.network.cbam import CBAM
from nnunet_phyjoint.network.classification_head import ClassificationHead
from nnunet_phyjoint.network.encoder import DEFAULT_ENCODER, TimmEncoder
from nnunet_phyjoint.network.unetpp_decoder import UNetPlusPlusDecoder

LatentAugment = Callable[[torch.Tensor], torch.Tensor]


def init_new_layers(module: nn.Module) -> None:
    """Kaiming-normal convolutions, Xavier-uniform linear layers, unit/zero batch norms."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class PhyJointNet(nn.Module):
    """Joint lesion segmentation and normal/benign/malignant diagnosis from one encoder pass.

    ``forward(x)`` gives segmentation logits only (what nnU-Net's loss and predictor expect): one
    (B, num_classes, H, W) tensor, or with ``decoder.deep_supervision`` a list at ``output_strides``,
    highest resolution first. ``forward(x, return_class_logits=True)`` / ``forward_joint(x)`` add the
    diagnosis logits, ``classify`` gives them alone.
    H and W must be multiples of the encoder's largest reduction (32 for most timm encoders).
    """

    def __init__(
        self,
        input_channels: int,
        num_classes: int,
        deep_supervision: bool,
        encoder_name: str = DEFAULT_ENCODER,
        encoder_weights: str | None = "auto",
        decoder_channels: list[int] | None = None,
        cbam_reduction: int = 16,
        head_hidden: int = 256,
        num_diagnosis_classes: int = 3,
        head_dropout: float = 0.0,
        deep_supervision_layout: str = "nested",
        seg_head_prior: float | None = None,
    ) -> None:
        super().__init__()
        self.encoder = TimmEncoder(encoder_name, input_channels, encoder_weights)
        deepest = self.encoder.channels[-1]
        self.cbam = CBAM(deepest, cbam_reduction)
        self.decoder = UNetPlusPlusDecoder(
            self.encoder.channels, self.encoder.reductions, num_classes, deep_supervision, decoder_channels,
            supervision=deep_supervision_layout,
        )
        self.classification_head = ClassificationHead(deepest, head_hidden, num_diagnosis_classes, head_dropout)
        for part in (self.cbam, self.decoder, self.classification_head):
            init_new_layers(part)
        if seg_head_prior is not None:
            self.decoder.initialise_heads(seg_head_prior)

    @property
    def output_strides(self) -> list[int]:
        """Stride of each deep-supervision output w.r.t. the input, highest resolution first."""
        return list(self.decoder.output_strides)

    def _encode(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Encoder features (shallowest first, deepest dropped) and the CBAM-refined deepest features."""
        r = self.encoder.max_reduction
        if x.ndim != 4 or x.shape[-2] % r or x.shape[-1] % r:
            raise ValueError(
                f"PhyJointNet ({self.encoder.name}) needs a (B, C, H, W) input with H and W divisible by {r}, "
                f"got shape {tuple(x.shape)}"
            )
        features = self.encoder(x)
        return features[:-1], self.cbam(features[-1])

    def forward(
        self, x: torch.Tensor, return_class_logits: bool = False, latent_augment: LatentAugment | None = None
    ) -> torch.Tensor | list[torch.Tensor] | tuple[torch.Tensor | list[torch.Tensor], torch.Tensor]:
        """Segmentation logits; with ``return_class_logits`` the pair ``forward_joint`` returns.

        Joint training and prediction go through ``network(x, return_class_logits=True, ...)`` so that
        DDP and ``torch.compile`` wrappers, which only intercept ``__call__``, see the whole pass.
        """
        skips, refined = self._encode(x)
        seg = self.decoder([*skips, refined])
        if not return_class_logits:
            return seg
        cls_features = latent_augment(refined) if latent_augment is not None else refined
        return seg, self.classification_head(cls_features)

    def forward_joint(
        self, x: torch.Tensor, latent_augment: LatentAugment | None = None
    ) -> tuple[torch.Tensor | list[torch.Tensor], torch.Tensor]:
        """Segmentation logits (as ``forward``) and diagnosis logits (B, num_diagnosis_classes).

        ``latent_augment`` (e.g. ``LatentFeatureAugmentation.bind(labels)``) transforms the CBAM-refined
        features that the *classification head* sees. The decoder always gets the un-augmented
        features: interpolating image i's feature map with image j's (same class, different lesion)
        yields features whose lesion no longer lies where image i's mask says, so the segmentation
        target would be wrong; the diagnosis label, by contrast, is shared by both images.
        """
        return self(x, return_class_logits=True, latent_augment=latent_augment)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Diagnosis logits (B, num_diagnosis_classes); the decoder is not run."""
        _, refined = self._encode(x)
        return self.classification_head(refined)
