"""Executors: where runs execute. ``local`` (threads in this process) or ``celery``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runhq.runtime import Runtime
    from runhq.workers.base import Executor


def build_executor(runtime: Runtime) -> Executor:
    """The executor the settings ask for (not started)."""
    if runtime.settings.executor == "celery":
        from runhq.workers.celery import CeleryExecutor

        return CeleryExecutor(runtime.settings, runtime.sessions)
    from runhq.workers.local import LocalExecutor

    return LocalExecutor(runtime.engine, runtime.sessions, threads=runtime.settings.worker_threads)
