"""Concurrent creations through a real HTTP server on a real database: one run, not 20."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select

from runhq.db.migrate import upgrade
from runhq.db.session import build_engine, make_session_factory, transaction
from runhq.runs.models import Run
from runhq.runtime import Runtime
from runhq.web.app import create_app
from tests.conftest import bearer, make_runtime, make_settings, make_team

N = 20


@pytest.fixture
def live(tmp_path: Path, fresh_database_url: str) -> Iterator[tuple[str, Runtime, dict[str, str]]]:
    db = build_engine(fresh_database_url)
    upgrade(db)
    sessions = make_session_factory(db)
    runtime = make_runtime(make_settings(tmp_path, fresh_database_url), sessions, db)
    with transaction(sessions) as session:
        team = make_team(session)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        create_app(runtime, background=False), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", runtime, bearer(runtime, team.operator)
    server.should_exit = True
    thread.join(10)
    db.dispose()


def _burst(base: str, headers: dict[str, str], body: dict[str, str]) -> list[httpx.Response]:
    barrier = threading.Barrier(N)

    def one(_: int) -> httpx.Response:
        with httpx.Client(timeout=30) as client:
            barrier.wait()
            return client.post(f"{base}/api/v1/runs", json=body, headers=headers)

    with ThreadPoolExecutor(N) as pool:
        return list(pool.map(one, range(N)))


def test_concurrent_requests_for_one_type_create_exactly_one_run(
    live: tuple[str, Runtime, dict[str, str]],
) -> None:
    base, runtime, headers = live
    responses = _burst(base, headers, {"run_type": "DAILY_EXECUTIVE_BRIEF"})
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * (N - 1), [r.text for r in responses if r.status_code >= 500]
    winner = next(r.json()["id"] for r in responses if r.status_code == 201)
    assert {
        r.json()["error"]["details"]["running_run_id"] for r in responses if r.status_code == 409
    } == {winner}
    with runtime.sessions() as session:
        assert session.scalar(select(func.count(Run.id))) == 1


def test_concurrent_requests_with_one_idempotency_key_return_one_run(
    live: tuple[str, Runtime, dict[str, str]],
) -> None:
    base, runtime, headers = live
    responses = _burst(base, headers, {"run_type": "SEO_AUDIT", "idempotency_key": "once"})
    assert sorted(r.status_code for r in responses) == [200] * (N - 1) + [201], [
        r.text for r in responses if r.status_code not in (200, 201)
    ]
    assert len({r.json()["id"] for r in responses}) == 1
    with runtime.sessions() as session:
        assert session.scalar(select(func.count(Run.id))) == 1
