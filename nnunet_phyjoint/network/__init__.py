"""PhyJointNet and its parts: timm encoder, CBAM, UNet++ decoder, diagnosis head."""
from nnunet_phyjoint.network.cbam import CBAM
from nnunet_phyjoint.network.classification_head import ClassificationHead
from nnunet_phyjoint.network.encoder import TimmEncoder
from nnunet_phyjoint.network.phyjoint_net import PhyJointNet
from nnunet_phyjoint.network.unetpp_decoder import UNetPlusPlusDecoder, default_decoder_channels

__all__ = ["CBAM", "ClassificationHead", "PhyJointNet", "TimmEncoder", "UNetPlusPlusDecoder",
           "default_decoder_channels"]
