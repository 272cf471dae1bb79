"""Stage 3: memorisation training."""

from .config import TrainConfig

__all__ = ["TrainConfig", "train"]


def __getattr__(name: str):
    if name == "train":  # the loop imports torch: only when training starts
        from .loop import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
