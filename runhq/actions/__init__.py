"""Actions: what an approved run does, through action connectors."""
