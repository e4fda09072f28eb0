"""The logs viewer: lines with their level, source, run and metadata, the filters, keyset pages,
the live tail's partial, bad filters (never a 500), both languages, and bounded queries."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from runhq.auth.models import Role
from runhq.clock import FrozenClock
from runhq.dashboard import logs_page
from runhq.i18n import LANGS, get_catalog
from runhq.logs import service as logs
from runhq.logs.schemas import LogLevel, LogSource
from runhq.runtime import Runtime
from tests.conftest import Team, counted_statements, make_team
from tests.dashboard.conftest import add_run, log_in

NOW = datetime(2026, 11, 18, 13, 5, 9, tzinfo=UTC)  # 14:05:09 in Paris
_LINE_RE = re.compile(r'<li class="log-line[^"]*" id="log-([0-9a-f-]+)"[^>]*>(.*?)</li>', re.S)


@pytest.fixture(autouse=True)
def frozen() -> Iterator[FrozenClock]:
    with FrozenClock(NOW) as clock:
        yield clock


def _log(
    session: Session,
    team: Team,
    message: str,
    *,
    level: LogLevel = LogLevel.info,
    source: LogSource = LogSource.system,
    ago: timedelta = timedelta(minutes=1),
    run_id: uuid.UUID | None = None,
    metadata: dict[str, Any] | None = None,
    workspace_id: uuid.UUID | None = None,
) -> uuid.UUID:
    return logs.create_log(
        session,
        message=message,
        level=level,
        source=source,
        workspace_id=workspace_id or team.workspace_id,
        run_id=run_id,
        metadata=metadata,
        created_at=NOW - ago,
    )


def _messages(html: str) -> list[str]:
    return [
        re.search(r'data-value="message">([^<]*)<', body).group(1)  # type: ignore[union-attr]
        for _, body in _LINE_RE.findall(html)
    ]


def _get(client: TestClient, path: str = "/logs", **params: str) -> str:
    r = client.get(path, params=params) if params else client.get(path)
    assert r.status_code == 200, r.text
    return r.text


def _href(html: str, link: str) -> str | None:
    match = re.search(rf'<a class="button" href="([^"]*)" data-page-link="{link}"', html)
    return match.group(1).replace("&amp;", "&") if match and match.group(1) else None


def _tail_url(html: str) -> str:
    match = re.search(r'id="logs-tail"[^>]*hx-get="([^"]+)"', html)
    assert match, "no live tail"
    return match.group(1).replace("&amp;", "&")


@pytest.fixture
def seeded(session: Session, runtime: Runtime, team: Team) -> dict[str, Any]:
    run = add_run(session, team, runtime.registry, "CODE_REVIEW", ago=timedelta(hours=3))
    ids = {
        "boom": _log(
            session,
            team,
            "run.failed",
            level=LogLevel.error,
            source=LogSource.executive_run,
            ago=timedelta(minutes=2),
            run_id=run.id,
            metadata={"error_message": "HTTP 503 <upstream>", "run_type": "CODE_REVIEW"},
        ),
        "careful": _log(
            session,
            team,
            "autopilot.skip_duplicate",
            level=LogLevel.warn,
            source=LogSource.autopilot,
            ago=timedelta(minutes=3),
        ),
        "fine": _log(session, team, "platform.incident_closed", source=LogSource.health),
    }
    other = make_team(session, name="other-co")
    _log(session, team, "someone.else", workspace_id=other.workspace_id)
    session.commit()
    return {"run": run, **ids}


def test_the_lines_with_their_parts(client: TestClient, team: Team, seeded: dict[str, Any]) -> None:
    log_in(client, team.emails[Role.viewer])  # a viewer reads the logs
    html = _get(client)
    assert "someone.else" not in html  # another workspace's line
    lines = dict(_LINE_RE.findall(html))
    assert _messages(html)[:3] == [
        "platform.incident_closed",
        "run.failed",
        "autopilot.skip_duplicate",
    ]
    boom = lines[str(seeded["boom"])]
    assert 'class="level level--error" data-value="level">Erreur<' in boom
    assert "Runs (executive-run)" in boom
    assert '<time class="log-line__time" datetime="2026-11-18T13:03:09+00:00">' in boom
    assert "18 nov. 2026" in boom
    assert "14:03:09" in boom  # Paris time, with seconds
    assert f'href="/runs/{seeded["run"].id}"' in boom
    assert f'href="/logs?run_id={seeded["run"].id}"' in boom
    assert "<details" in boom
    assert "Métadonnées (2 champs)" in boom
    pretty = json.dumps(
        {"error_message": "HTTP 503 <upstream>", "run_type": "CODE_REVIEW"}, indent=2
    )
    assert pretty.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;") in boom
    careful = lines[str(seeded["careful"])]
    assert "Avertissement" in careful
    assert "Autopilot" in careful
    assert "/runs/" not in careful
    assert "<details" not in careful  # no metadata, nothing to expand
    assert "Santé des plateformes" in lines[str(seeded["fine"])]
    # Labelled filters.
    for field in ("logs-level", "logs-source", "logs-run"):
        assert f'<label for="{field}">' in html
    assert 'role="search"' in html


def test_english(client: TestClient, team: Team, seeded: dict[str, Any]) -> None:
    client.cookies.set("runhq_lang", "en")
    log_in(client, team.emails[Role.viewer])
    html = _get(client)
    assert '<html lang="en">' in html
    assert ">Error<" in html
    assert ">Warning<" in html
    assert "Platform health" in html
    assert "18 Nov 2026" in html
    assert "Metadata (2 fields)" in html
    assert "Live" in html


def test_filters(client: TestClient, team: Team, seeded: dict[str, Any]) -> None:
    log_in(client, team.emails[Role.owner])
    assert _messages(_get(client, level="error")) == ["run.failed"]
    assert _messages(_get(client, source="autopilot")) == ["autopilot.skip_duplicate"]
    assert _messages(_get(client, level="error", source="autopilot")) == []
    by_run = _get(client, run_id=str(seeded["run"].id))
    assert _messages(by_run) == ["run.failed", "run.completed"]  # and the import's own line
    assert "Lignes du run" in by_run
    # Empty values are "all".
    assert len(_messages(_get(client, level="", source="", run_id=""))) >= 3
    html = _get(client, level="error")
    assert '<option value="error" selected>' in html
    assert "Effacer les filtres" in html
    assert "Aucune ligne ne correspond" in _get(client, level="error", source="autopilot")


@pytest.mark.parametrize(
    ("params", "field", "text"),
    [
        ({"level": "fatal"}, "level", "Niveau inconnu"),
        ({"source": "kernel"}, "source", "Source inconnue"),
        ({"run_id": "42"}, "run_id", "Identifiant de run invalide"),
        ({"cursor": "%%%"}, "cursor", "Lien de pagination invalide"),
        ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor", "Lien de pagination invalide"),
        ({"level": "x" * 5000}, "level", "Niveau inconnu"),
    ],
)
def test_bad_filters_are_a_clear_4xx(
    client: TestClient, team: Team, params: dict[str, str], field: str, text: str
) -> None:
    log_in(client, team.emails[Role.viewer])
    r = client.get("/logs", params=params)
    assert r.status_code == 422, r.text
    assert text in r.text
    assert "x" * 100 not in r.text  # the value is shortened
    if field != "cursor":  # the tail has no pages
        tail = client.get("/logs/tail", params=params, headers={"HX-Request": "true"})
        assert tail.status_code == 422
        assert "runhq:toast" in tail.headers["HX-Trigger"]
    bad_after = client.get("/logs/tail", params={"after": "%%%"})
    assert bad_after.status_code == 422
    assert "Suivi en direct invalide" in bad_after.text


def test_the_level_and_source_labels_exist() -> None:
    for lang in LANGS:
        catalog = get_catalog(lang)
        for level in LogLevel:
            assert f"logs.levels.{level.value}" in catalog
        for source in LogSource:
            assert f"logs.sources.{source.value}" in catalog


def test_pages_walk_every_line_once_keeping_the_filters(
    client: TestClient, session: Session, team: Team
) -> None:
    # 120 errors and 30 info lines, some at the same instant (the id settles the order).
    for i in range(150):
        _log(
            session,
            team,
            f"line {i:03d}",
            level=LogLevel.error if i % 5 else LogLevel.info,
            ago=timedelta(seconds=i // 3),
        )
    session.commit()
    log_in(client, team.emails[Role.owner])
    seen: list[str] = []
    url: str | None = "/logs?level=error"
    pages = 0
    while url:
        html = _get(client, url)
        pages += 1
        found = _messages(html)
        assert len(found) <= logs_page.PAGE_SIZE
        seen += found
        url = _href(html, "older")
        if url:
            assert parse_qs(urlsplit(url).query).get("level") == ["error"], url
        if pages > 1:
            assert 'data-page-link="newest"' in html
            assert 'id="logs-tail"' not in html  # older pages stay still
    assert pages == 3
    assert len(seen) == len(set(seen)) == 120
    expected = [f"line {i:03d}" for i in range(150) if i % 5]
    assert sorted(seen) == sorted(expected)
    assert [int(m[5:]) // 3 for m in seen] == sorted(int(m[5:]) // 3 for m in seen)


def test_the_tail_brings_only_newer_lines_with_the_filters(
    client: TestClient, session: Session, team: Team, frozen: FrozenClock
) -> None:
    _log(session, team, "old error", level=LogLevel.error, ago=timedelta(minutes=5))
    _log(session, team, "old info", ago=timedelta(minutes=4))
    session.commit()
    log_in(client, team.emails[Role.owner])
    html = _get(client, level="error")
    tail = _tail_url(html)
    assert parse_qs(urlsplit(tail).query)["level"] == ["error"]
    assert 'hx-trigger="every 2s"' in html
    nothing = client.get(tail, headers={"HX-Request": "true"})
    assert nothing.status_code == 204
    assert nothing.text == ""
    frozen.advance(timedelta(seconds=3))
    _log(session, team, "new info", ago=timedelta(0))
    _log(session, team, "new error 1", level=LogLevel.error, ago=timedelta(seconds=1))
    _log(session, team, "new error 2", level=LogLevel.error, ago=timedelta(0))
    session.commit()
    r = client.get(tail, headers={"HX-Request": "true"})
    assert r.status_code == 200
    assert _messages(r.text) == ["new error 2", "new error 1"]  # newest first, on top
    assert "<html" not in r.text  # a fragment
    assert 'hx-swap-oob="true"' in r.text
    assert "2 nouvelles lignes" in r.text
    following = _tail_url(r.text)
    assert client.get(following).status_code == 204
    # Without a line yet, the tail brings whatever comes.
    empty = _get(client, source="autopilot")
    first = client.get(_tail_url(empty))
    assert first.status_code == 204
    _log(session, team, "auto", source=LogSource.autopilot, ago=timedelta(0))
    session.commit()
    assert _messages(client.get(_tail_url(empty)).text) == ["auto"]


def test_the_tail_catches_up_in_chunks(
    client: TestClient, session: Session, team: Team, frozen: FrozenClock
) -> None:
    _log(session, team, "first", ago=timedelta(minutes=10))
    session.commit()
    log_in(client, team.emails[Role.owner])
    tail = _tail_url(_get(client))
    for i in range(logs_page.TAIL_LIMIT + 5):
        _log(session, team, f"burst {i:03d}", ago=timedelta(seconds=200 - i))
    session.commit()
    r = client.get(tail)
    got = _messages(r.text)
    assert len(got) == logs_page.TAIL_LIMIT
    assert got[-1] == "burst 000"  # the oldest new ones first: nothing is skipped
    assert f'hx-trigger="every {logs_page.TAIL_CATCH_UP}"' in r.text
    rest = _messages(client.get(_tail_url(r.text)).text)
    assert rest == [f"burst {i:03d}" for i in range(logs_page.TAIL_LIMIT + 4, 99, -1)]


def test_visitors_must_log_in(client: TestClient) -> None:
    r = client.get("/logs?level=error", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=")
    r = client.get("/logs/tail", headers={"HX-Request": "true"})
    assert r.status_code == 401
    assert r.headers["HX-Redirect"].startswith("/login")


def _count(client: TestClient, db_engine: Engine, path: str) -> tuple[int, int]:
    """(statements, SELECTs) of one request."""
    with counted_statements(db_engine) as statements:
        assert client.get(path).status_code in (200, 204)
    return len(statements), sum(s.lstrip().upper().startswith("SELECT") for s in statements)


def test_queries_do_not_grow_with_lines(
    client: TestClient, session: Session, runtime: Runtime, team: Team, db_engine: Engine
) -> None:
    run = add_run(session, team, runtime.registry, "CODE_REVIEW", ago=timedelta(days=1))
    _log(session, team, "alone", source=LogSource.autopilot, metadata={"a": 1})
    for i in range(60):
        _log(
            session,
            team,
            f"many {i}",
            source=LogSource.health,
            ago=timedelta(seconds=i),
            run_id=run.id,
            metadata={"i": i},
        )
    session.commit()
    log_in(client, team.emails[Role.viewer])
    one = _count(client, db_engine, "/logs?source=autopilot")
    fifty = _count(client, db_engine, "/logs?source=health")
    assert one == fifty
    # The session (2), the lines (1), the sidebar's two badges (2).
    assert one[1] <= 5, one
    tail_one = _count(client, db_engine, "/logs/tail?source=autopilot")
    tail_many = _count(client, db_engine, "/logs/tail?source=health")
    assert tail_one == tail_many
