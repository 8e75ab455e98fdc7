"""btseg models: the Attention U-Net teacher, the Simplified U-Net student, baselines (U-Net, UNeXt)."""

from btseg.models.attention_unet import AttentionUNet, UNet
from btseg.contract import ModelContract
from btseg.models.registry import create_model, list_models, model_contract, register_model
from btseg.models.simplified_unet import SimplifiedUNet
from btseg.models.unext import UNeXt

__all__ = ["AttentionUNet", "SimplifiedUNet", "UNet", "UNeXt", "ModelContract", "create_model", "list_models", "model_contract",
           "register_model"]
