"""Platforms: the products the HQ watches — health checks, incidents, uptime."""
