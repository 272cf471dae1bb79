"""Stage 2 inputs: model presets and loading (hub id, folder, GGUF, random init)."""

from .config import ModelConfig
from .load import load_model
from .presets import MODEL_PRESETS, PAPER_MODELS

__all__ = ["MODEL_PRESETS", "PAPER_MODELS", "ModelConfig", "load_model"]
