"""The FastAPI application: /api/v1 routers, error rendering, health."""
