"""The run-type registry: one data file (``run_types.toml``), read by everything else."""
