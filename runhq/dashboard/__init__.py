"""The HQ dashboard: server-rendered pages (Jinja2 + HTMX), French by default and English."""
