"""The scheduled health checks (run by the leader scheduler)."""

from __future__ import annotations

import httpx
from sqlalchemy.orm import Session, sessionmaker

from runhq.db.session import transaction
from runhq.platforms import service
from runhq.platforms.models import Platform


def run_due_checks(sessions: sessionmaker[Session], *, limit: int = 50) -> int:
    """Check every platform whose interval elapsed. Each platform is probed outside any
    transaction (an endpoint may take its whole timeout to answer, and no lock, SQLite's
    write lock included, is held meanwhile); its result is then recorded in a transaction of
    its own."""
    with transaction(sessions) as session:
        due = [p.id for p in service.list_due_checks(session, limit=limit)]
    done = 0
    with httpx.Client(headers={"User-Agent": "runhq-health"}) as client:
        for platform_id in due:
            with sessions() as session:
                platform = session.get(Platform, platform_id)
                session.commit()  # ends the read (attributes kept): nothing is held while probing
            if platform is None or not platform.health_urls:
                continue
            results = service.probe_platform(client, platform)
            with transaction(sessions) as session:
                current = session.get(Platform, platform_id)  # deleted meanwhile: dropped
                if current is not None:
                    service.record_check(session, current, results)
                    done += 1
    return done
