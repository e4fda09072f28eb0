"""The scheduled health checks (run by the leader scheduler)."""

from __future__ import annotations

import httpx
from sqlalchemy.orm import Session, sessionmaker

from runhq.db.session import transaction
from runhq.platforms import service
from runhq.platforms.models import Platform


def run_due_checks(sessions: sessionmaker[Session], *, limit: int = 50) -> int:
    """Check every platform whose interval elapsed; one transaction per platform."""
    with transaction(sessions) as session:
        due = [p.id for p in service.list_due_checks(session, limit=limit)]
    done = 0
    with httpx.Client(headers={"User-Agent": "runhq-health"}) as client:
        for platform_id in due:
            with transaction(sessions) as session:
                platform = session.get(Platform, platform_id)
                if platform is not None:
                    service.check_platform(session, client, platform)
                    done += 1
    return done
