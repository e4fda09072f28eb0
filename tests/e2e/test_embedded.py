"""The README's first acceptance, with real processes: the server on the embedded default
with demo data, and the CLI in a second process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import BACKEND

RUNHQ = str(Path(sys.executable).parent / "runhq")
OWNER, PASSWORD = "owner@example.com", "a-long-password-1"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def env(tmp_path: Path, fresh_database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNHQ_")}
    env["RUNHQ_DATA_DIR"] = str(tmp_path / "data")
    if BACKEND != "sqlite":
        env["RUNHQ_DATABASE_URL"] = fresh_database_url
    return env


def _cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RUNHQ, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def server(env: dict[str, str]) -> Iterator[str]:
    init = _cli(env, "init", "--owner-email", OWNER, "--owner-password", PASSWORD, "--demo")
    assert init.returncode == 0, init.stderr
    port = _free_port()
    proc = subprocess.Popen(
        [RUNHQ, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                pytest.fail(f"server exited: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.1)
        else:
            pytest.fail("server did not become ready")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _token(base: str) -> dict[str, str]:
    r = httpx.post(f"{base}/api/v1/auth/token", data={"username": OWNER, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_daily_brief_completes_offline_from_demo_data(server: str, env: dict[str, str]) -> None:
    done = _cli(env, "run", "DAILY_EXECUTIVE_BRIEF", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["status"] == "completed"
    assert run["model_used"] == "offline"
    summary = run["executive_summary"]
    # In the report language (French by default), built from the demo history.
    assert "rapport hors ligne" in summary
    assert "runs ces 7 derniers jours" in summary
    assert "budget" in summary


def test_deploy_plans_then_waits_for_an_owner(server: str, env: dict[str, str]) -> None:
    planned = _cli(env, "run", "DEPLOY_TO_PRODUCTION", "--platform", "shop", "--wait", "--json")
    assert planned.returncode == 0, planned.stderr
    run = json.loads(planned.stdout)
    assert (run["status"], run["phase"]) == ("pending_approval", "review")
    assert run["plan"]["action"] == "deploy"
    assert "plan ready" in planned.stderr
    headers = _token(server)
    time.sleep(1.5)  # the executor polls every second: it must leave the run alone
    got = httpx.get(f"{server}/api/v1/runs/{run['id']}", headers=headers).json()
    assert got["status"] == "pending_approval"
    approved = httpx.post(
        f"{server}/api/v1/runs/{run['id']}/approve",
        json={"reason": "release checked", "plan_hash": run["plan_hash"]},
        headers=headers,
    )
    assert approved.status_code == 200
    assert approved.json()["phase"] == "act"
    for _ in range(100):
        got = httpx.get(f"{server}/api/v1/runs/{run['id']}", headers=headers).json()
        if got["status"] in ("completed", "failed"):
            break
        time.sleep(0.1)
    # No platform 'shop' is registered (the demo watches 'app' and 'api'): the act phase
    # refuses, says why, and nothing was sent anywhere.
    assert got["status"] == "failed"
    assert "refused to act" in got["error"]
    assert "not registered" in got["error"]
    assert got["approvals"][0]["reason"] == "release checked"


def test_api_created_run_is_executed_by_the_server(server: str) -> None:
    headers = _token(server)
    r = httpx.post(
        f"{server}/api/v1/runs", json={"run_type": "PLATFORM_STATUS_REVIEW"}, headers=headers
    )
    assert r.status_code == 201
    for _ in range(100):
        got = httpx.get(f"{server}/api/v1/runs/{r.json()['id']}", headers=headers).json()
        if got["status"] == "completed":
            break
        time.sleep(0.1)
    assert got["status"] == "completed"
    openapi = httpx.get(f"{server}/openapi.json").json()
    assert "/api/v1/runs/{run_id}/approve" in openapi["paths"]
    assert httpx.get(f"{server}/docs").status_code == 200
