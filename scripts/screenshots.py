"""Regenerate docs/screenshots/: every dashboard page at 1280 px and 390 px wide.

Starts runhq on a throwaway SQLite database holding the demo workspace (``runhq init --demo``
data, plus a brief executed by the engine, a deploy waiting for approval and a failed run),
logs in as the owner with Playwright driving Debian's chromium, and saves one PNG per page
and width. Run through ``scripts/screenshots`` (it installs what it needs).

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--lang fr]
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import Browser, sync_playwright

from runhq.auth import service as auth
from runhq.auth.models import Role
from runhq.auth.schemas import Actor
from runhq.config import Settings
from runhq.db.migrate import upgrade
from runhq.db.session import transaction
from runhq.demo import seed_demo, seed_demo_setup
from runhq.runs import service as runs
from runhq.runs.models import RunStatus
from runhq.runtime import build_runtime
from runhq.web.app import create_app

OWNER, PASSWORD = "owner@example.com", "screenshots-password"
WIDTHS = (1280, 390)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _prepare(settings: Settings) -> dict[str, str]:
    """The demo workspace, and the runs that give each page something to show."""
    runtime = build_runtime(settings)
    upgrade(runtime.db)
    with transaction(runtime.sessions) as session:
        workspace = auth.create_workspace(session, name="Demo company")
        user = auth.create_user(
            session, email=OWNER, password=PASSWORD, workspace_id=workspace.id, role=Role.owner
        )
        owner = Actor(user_id=user.id, workspace_id=workspace.id, role=Role.owner)
        seed_demo(session, workspace.id, runtime.registry)
        seed_demo_setup(session, owner, runtime.registry, base_url=settings.public_base_url)
        brief, _ = runs.create_run(
            session, owner, runtime.registry, run_type="DAILY_EXECUTIVE_BRIEF"
        )
        deploy, _ = runs.create_run(
            session, owner, runtime.registry, run_type="DEPLOY_TO_PRODUCTION", platform_key="app"
        )
    for run_id, expected in (
        (brief.id, RunStatus.completed),
        (deploy.id, RunStatus.pending_approval),
    ):
        status = runtime.engine.execute(run_id)
        if status != expected:
            raise SystemExit(f"preparing the screenshots: run {run_id} ended {status}")
    runtime.db.dispose()
    return {"brief": str(brief.id)}


def _shoot(
    browser: Browser,
    base_url: str,
    width: int,
    args: argparse.Namespace,
    pages: dict[str, str],
    failures: list[str],
) -> None:
    """Log in at this width and save every page."""
    context = browser.new_context(
        base_url=base_url, viewport={"width": width, "height": 900}, device_scale_factor=1
    )
    context.add_cookies([{"name": "runhq_lang", "value": args.lang, "url": base_url}])
    page = context.new_page()
    page.on(
        "console",
        lambda msg: failures.append(f"{page.url}: {msg.text}") if msg.type == "error" else None,
    )
    page.goto("/login")
    page.screenshot(path=str(args.out / f"login-{width}.png"), full_page=True)
    page.fill("input[name=email]", OWNER)
    page.fill("input[name=password]", PASSWORD)
    page.click('form[action="/login"] button[type=submit]')
    page.wait_for_url(f"{base_url}/")
    for name, path in pages.items():
        response = page.goto(path)
        if response is None or response.status != 200:
            failures.append(f"{path}: HTTP {response.status if response else 'no answer'}")
        page.wait_for_load_state("networkidle")
        target = args.out / f"{name}-{width}.png"
        page.screenshot(path=str(target), full_page=True)
        print(f"{target}  ({path})")
    context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--lang", choices=["fr", "en"], default="fr")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        settings = Settings(
            _env_file=None,
            data_dir=Path(tmp),
            database_url=f"sqlite:///{tmp}/screenshots.db",  # type: ignore[call-arg]
            public_base_url=f"http://127.0.0.1:{port}",
            secret_key="screenshots-" + "x" * 40,
        )
        ids = _prepare(settings)
        pages = {
            "briefing": "/",
            "runs": "/runs",
            "run": f"/runs/{ids['brief']}",
            "approvals": "/approvals",
            "costs": "/costs",
            "logs": "/logs",
            "autopilot": "/autopilot",
            "registry": "/registry",
            "trust": "/trust",
        }
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(build_runtime(settings), background=False),
                host="127.0.0.1",
                port=port,
                log_level="warning",
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.05)
        args.out.mkdir(parents=True, exist_ok=True)
        failures: list[str] = []
        try:
            with sync_playwright() as driver:
                browser = driver.chromium.launch(
                    executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True
                )
                for width in WIDTHS:
                    _shoot(browser, settings.public_base_url, width, args, pages, failures)
                browser.close()
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    if failures:
        print("problems while taking the screenshots:", *failures, sep="\n  ", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
