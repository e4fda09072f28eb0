"""Runs: the lifecycle, the service that creates and decides them, and the engine."""
