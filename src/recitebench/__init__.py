"""recitebench: measure how much a language model can remember, and how fast it learns to.

The protocol follows "Schrödinger's Memory: Large Language Models" (Wang & Li, 2024):
freeze a dataset of (input, poem) pairs, memorise it by fine-tuning, then recite each poem
from its input alone and score exact and graded recall.
"""

__version__ = "0.1.0"
