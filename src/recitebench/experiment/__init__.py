"""Stage 5: experiment specs (YAML grids of datasets x models), executors, the grid runner, the run index and
the capacity protocol. Import the submodules (spec, runner, capacity): this package imports nothing itself, so the
CLI's --help stays fast."""
