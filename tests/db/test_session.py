"""After-commit side effects fire once the outermost transaction commits, never before."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.orm import Session

from runhq.db.session import on_commit
from runhq.runs import service as runs
from runhq.runtime import Runtime
from tests.conftest import Team


def test_notify_waits_for_the_outer_commit_not_a_savepoint(
    session: Session, runtime: Runtime, team: Team
) -> None:
    notified: list[uuid.UUID] = []
    # create_run releases a SAVEPOINT internally; the second one must not announce the first.
    first, _ = runs.create_run(
        session, team.owner, runtime.registry, run_type="SEO_AUDIT", notify=notified.append
    )
    runs.create_run(
        session, team.owner, runtime.registry, run_type="CODE_REVIEW", notify=notified.append
    )
    assert notified == []
    session.commit()
    assert notified[0] == first.id
    assert len(notified) == 2


def test_rolled_back_work_is_never_announced(session: Session) -> None:
    called: list[int] = []
    session.execute(text("SELECT 1"))
    on_commit(session, lambda: called.append(1))
    session.rollback()
    session.commit()
    assert called == []
