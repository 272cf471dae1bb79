"""Stage 4: recitation and scoring (certified teacher forcing, greedy decoders, graded outcomes)."""

from .config import ReciteConfig
from .graded import OUTCOMES, grade
from .recite import recite

__all__ = ["OUTCOMES", "ReciteConfig", "grade", "recite"]
