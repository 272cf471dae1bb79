"""Stage 2: model presets and loading (hub id, folder, GGUF, random init)."""

from .config import ModelConfig
from .presets import MODEL_PRESETS

__all__ = ["MODEL_PRESETS", "ModelConfig", "load_model"]


def __getattr__(name: str):
    # torch and Transformers load when a model does, not for `--help`, `ls`, `report` or `data build` (~1.5 s)
    if name == "load_model":
        from .load import load_model

        return load_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
