"""Stage 2: model presets and loading (hub id, folder, GGUF, random init)."""

from .config import ModelConfig
from .load import load_model
from .presets import MODEL_PRESETS

__all__ = ["MODEL_PRESETS", "ModelConfig", "load_model"]
