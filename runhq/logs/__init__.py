"""Structured logs (seed 001): every run transition and autopilot decision is a row."""
