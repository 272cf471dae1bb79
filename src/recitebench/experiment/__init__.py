"""Stage 5: experiment specs (YAML grids of datasets x models), the grid runner and the run index."""

from .runner import run_spec
from .spec import PlannedRun, Spec, default_spec_path, load_spec

__all__ = ["PlannedRun", "Spec", "default_spec_path", "load_spec", "run_spec"]
