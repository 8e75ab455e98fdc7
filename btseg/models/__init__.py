"""btseg models: the Attention U-Net teacher, the Simplified U-Net student, baselines."""

from btseg.models.attention_unet import AttentionUNet, UNet
from btseg.models.registry import create_model, list_models, register_model
from btseg.models.simplified_unet import SimplifiedUNet

__all__ = ["AttentionUNet", "SimplifiedUNet", "UNet", "create_model", "list_models", "register_model"]
