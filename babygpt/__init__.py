"""Baby GPT: a small GPT built up from a bigram model, trained, saved and sampled on your own text."""

from babygpt.config import PRESETS, ModelConfig, TrainConfig, model_config_for_preset
from babygpt.errors import BabyGPTError

__all__ = ["PRESETS", "BabyGPTError", "ModelConfig", "TrainConfig", "model_config_for_preset"]
__version__ = "0.1.0"
