"""Stage 1: frozen poem datasets (sources, presets, filters, manifest)."""

from .build import build_dataset
from .config import DataConfig
from .frozen import FrozenDataset, load_frozen

__all__ = ["DataConfig", "FrozenDataset", "build_dataset", "load_frozen"]
