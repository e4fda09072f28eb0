"""Dashboard pages on a large workspace: server-side render time and SQL statements per page.

A fresh PostgreSQL (or SQLite) database gets 10,000 runs and 100,000 log lines
(``bench.dashboard_data``); the app is served in-process (Starlette's TestClient: no network,
what is measured is the server's work), logged in through the real form. Each page is fetched
``--repeat`` times; the median and p95 are printed beside the median of ``/health/live`` (the
framework's floor, measured in the same run) and the number of SQL statements one render sends.
Goal (issue 5): every page under 100 ms median.

    .venv/bin/python -m bench.dashboard_pages [--backend postgresql|sqlite] [--repeat 30]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

from bench.dashboard_data import seed_large_workspace
from runhq.auth.schemas import system_actor
from runhq.config import Settings
from runhq.db.migrate import upgrade
from runhq.db.session import transaction
from runhq.runs import service as runs
from runhq.runs.models import Run
from runhq.runtime import build_runtime
from runhq.web.app import create_app

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PASSWORD = "bench-password-1"  # noqa: S105 - a throwaway bench database
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _database(backend: str, tmp: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'dashboard.db'}"
    name = f"runhq_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)


def _drop(url: str) -> None:
    if not url.startswith("postgresql"):
        return
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def _time(client: TestClient, path: str, repeat: int) -> tuple[list[float], int]:
    timings = []
    status = 0
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get(path)
        timings.append((time.perf_counter() - start) * 1000)
        status = response.status_code
    return timings, status


def bench(backend: str, repeat: int, runs_count: int, logs_count: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        url = _database(backend, tmp)
        try:
            settings = Settings(
                _env_file=None,
                data_dir=tmp,
                database_url=url,  # type: ignore[call-arg]
                secret_key="bench-" + "x" * 40,
            )
            runtime = build_runtime(settings)
            upgrade(runtime.db)
            started = time.perf_counter()
            workspace_id, email = seed_large_workspace(
                runtime.sessions,
                runtime.registry,
                runs_count=runs_count,
                logs_count=logs_count,
                password=PASSWORD,
            )
            seconds = time.perf_counter() - started
            print(f"# seeded {runs_count} runs and {logs_count} log lines in {seconds:.0f} s")
            with transaction(runtime.sessions) as session:
                page, _ = runs.list_runs(session, system_actor(workspace_id, "bench"), limit=1)
                some_run: Run = page[0]
                run_path = f"/runs/{some_run.id}"
            statements: list[str] = []
            event.listen(runtime.db, "before_cursor_execute", lambda *a: statements.append(a[2]))
            app = create_app(runtime, background=False)
            results = []
            with TestClient(app, base_url="http://bench.local") as client:
                form = client.get("/login")
                token = _CSRF.search(form.text)
                assert token, "no CSRF token on /login"
                logged = client.post(
                    "/login",
                    data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)},
                    follow_redirects=False,
                )
                assert logged.status_code == 303, logged.text
                floor, _ = _time(client, "/health/live", repeat)
                floor_median = statistics.median(floor)
                for path in (
                    "/",
                    "/runs",
                    "/runs?status=failed",
                    run_path,
                    "/approvals",
                    "/costs",
                    "/logs",
                    "/logs?level=error",
                    "/autopilot",
                    "/registry",
                    "/trust",
                ):
                    client.get(path)  # warm-up: templates, statement caches
                    statements.clear()
                    client.get(path)
                    count = len(statements)
                    timings, status = _time(client, path, repeat)
                    median = statistics.median(timings)
                    results.append(
                        {
                            "backend": backend,
                            "page": path if path != run_path else "/runs/{id}",
                            "status": status,
                            "median_ms": round(median, 1),
                            "p95_ms": round(sorted(timings)[int(len(timings) * 0.95) - 1], 1),
                            "sql_statements": count,
                            "floor_median_ms": round(floor_median, 2),
                            "ratio_to_floor": round(median / floor_median, 1),
                            "goal": "median < 100 ms",
                        }
                    )
            runtime.db.dispose()
        finally:
            _drop(url)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--logs", type=int, default=100_000)
    args = parser.parse_args()
    for result in bench(args.backend, args.repeat, args.runs, args.logs):
        print(json.dumps(result))


if __name__ == "__main__":
    main()
