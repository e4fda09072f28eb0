"""The demo history: its report summaries in the report language."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from runhq.demo import seed_demo
from runhq.registry.service import get_registry
from runhq.runs.models import Run
from tests.conftest import Team


@pytest.mark.parametrize(
    ("lang", "start", "words"),
    [("fr", "[démo] ", "activité nominale"), ("en", "[demo] ", "activity nominal")],
)
def test_demo_summaries_are_in_the_report_language(
    session: Session, team: Team, lang: str, start: str, words: str
) -> None:
    added = seed_demo(session, team.workspace_id, get_registry(), days=3, lang=lang)
    summaries = session.scalars(
        select(Run.executive_summary).where(
            Run.workspace_id == team.workspace_id, Run.executive_summary.is_not(None)
        )
    ).all()
    assert 0 < len(summaries) <= added
    assert all(s.startswith(start) and words in s for s in summaries), summaries[:3]
