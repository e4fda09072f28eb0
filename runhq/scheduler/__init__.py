"""Schedules, the leader scheduler, autopilot."""
