"""Stage 4: experiment specs, the run index, and the report."""
