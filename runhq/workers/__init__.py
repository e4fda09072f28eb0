"""Executors: where runs execute. ``local`` (threads in this process) by default."""
