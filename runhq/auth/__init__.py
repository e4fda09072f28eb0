"""Users, workspaces, roles, JWTs and API keys."""
