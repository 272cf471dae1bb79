"""Stage 3: recitation and scoring (certified teacher forcing, generation, graded outcomes)."""

from .config import ReciteConfig
from .graded import OUTCOMES, grade
from .recite import recite
from .teacher import teacher_forced

__all__ = ["OUTCOMES", "ReciteConfig", "grade", "recite", "teacher_forced"]
