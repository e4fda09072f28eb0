"""Engine overhead with a zero-latency model, beside the database's floor.

For each backend: N runs created and executed one after another through the real service
and engine (context gathering, prompt building, output validation, every transition and
log line), the model answering instantly in-process; and, in the same process on the same
database, N bare "insert then update" transaction pairs — the least any run lifecycle
could cost. Prints runs/s, floor pairs/s and the ratio (goal: engine within 3× of the floor);
and, for information, a second floor in a run's shape (its transactions and statement kinds,
bare) to separate what the structure costs from what runhq adds. The measures are taken in
interleaved rounds (floor, shaped floor, engine, with context; again), so that a noisy
machine's slow spell weighs on all of them alike.

    .venv/bin/python -m bench.engine_overhead [--runs 1500] [--rounds 30]
        [--backend sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    bindparam,
    create_engine,
    select,
    text,
)
from sqlalchemy.engine import make_url

from runhq.auth import service as auth
from runhq.auth.models import Role
from runhq.auth.schemas import Actor
from runhq.config import Settings
from runhq.db.checkpoint import start_wal_checkpointer
from runhq.db.migrate import upgrade
from runhq.db.session import (
    build_engine,
    make_reader_factory,
    make_session_factory,
    self_contained_writes,
    transaction,
)
from runhq.llm.gateway import Completion, Gateway
from runhq.registry.service import get_registry
from runhq.runs import service as runs
from runhq.runs.engine import Engine as RunEngine
from runhq.runs.models import RunStatus

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
RUN_TYPE = "DAILY_EXECUTIVE_BRIEF"
# Interleaved rounds: 50 runs each by default, a few tens of milliseconds per measure, so a
# slow spell of this shared machine lands on all four measures alike.
ROUNDS = 30
REPORT = {"executive_summary": "Zero-latency model.", "sections": [{"title": "A", "content": "b"}]}


class ZeroLatencyGateway(Gateway):
    """A model that answers at once: what is left to measure is runhq's own work."""

    @property
    def offline(self) -> bool:
        return False

    def complete(self, **_: Any) -> Completion:
        return Completion(
            output=dict(REPORT),
            model_used="zero-latency",
            provider="bench",
            tokens_in=1000,
            tokens_out=200,
            cost_eur=0.001,
            price={"model": "zero-latency"},
            calls=1,
        )


def _database(backend: str, tmp: Path) -> tuple[str, Engine | None]:
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'bench.db'}", None
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"runhq_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False), admin


def _floor_table(db: Engine, name: str) -> Table:
    table = Table(
        name,
        MetaData(),
        Column("id", Uuid, primary_key=True),
        Column("status", String(20)),
        Column("attempt", Integer),
    )
    table.create(db)
    return table


def _floor(db: Engine, table: Table, n: int) -> float:
    """Seconds for n pairs of committed transactions: insert a row, then update it."""
    start = time.perf_counter()
    for _ in range(n):
        row_id = uuid.uuid4()
        with db.begin() as conn:
            conn.execute(table.insert().values(id=row_id, status="queued", attempt=1))
        with db.begin() as conn:
            conn.execute(table.update().where(table.c.id == row_id).values(status="completed"))
    return time.perf_counter() - start


def _shaped_floor(db: Engine, table: Table, n: int) -> float:
    """Seconds for n runs' worth of bare statements in a run's shape: the same transactions
    and statement kinds as a run on one small table. On SQLite: creation (read, insert,
    insert), a read outside any transaction, then the claim and the final transition (update,
    insert; each a transaction). On PostgreSQL, where a change and its log line are one
    statement (ADR 0014): creation (read; insert with its log row) in a transaction, the read,
    then the claim and the final transition each one such statement in autocommit. Not the
    goal's floor: what a run's structure costs before runhq's own work on it."""
    read = select(table.c.attempt).where(table.c.id == bindparam("id"))
    readers = make_reader_factory(db)  # autocommit reads, as the engine's
    postgresql = db.dialect.name == "postgresql"
    name = table.name  # the benchmark's own table, never input
    created = text(
        f"WITH c AS (INSERT INTO {name} VALUES (:id, 'queued', 1) RETURNING id) "  # noqa: S608
        f"INSERT INTO {name} SELECT :log, 'log', 0 FROM c"
    )
    moved = text(
        f"WITH c AS (UPDATE {name} SET status = :status WHERE id = :id RETURNING id) "  # noqa: S608
        f"INSERT INTO {name} SELECT :log, 'log', 0 FROM c"
    )
    start = time.perf_counter()
    for _ in range(n):
        row_id = uuid.uuid4()

        def log(conn: Any) -> None:
            conn.execute(table.insert().values(id=uuid.uuid4(), status="log", attempt=0))

        with db.begin() as conn:
            conn.execute(read, {"id": row_id}).first()
            if postgresql:
                conn.execute(created, {"id": row_id, "log": uuid.uuid4()})
            else:
                conn.execute(table.insert().values(id=row_id, status="queued", attempt=1))
                log(conn)
        with readers() as reader:  # the worker's read of the run, before its claim
            reader.connection().execute(read, {"id": row_id}).first()
        for status in ("running", "completed"):
            with self_contained_writes(db) as conn:
                if postgresql:
                    conn.execute(moved, {"status": status, "id": row_id, "log": uuid.uuid4()})
                else:
                    conn.execute(table.update().where(table.c.id == row_id).values(status=status))
                    log(conn)
    return time.perf_counter() - start


class _EngineRuns:
    """Runs of one workspace, created through the service and executed by the engine; the
    workspace's history grows from one call to the next."""

    def __init__(self, db: Engine, url: str, tmp: Path, *, context: bool = True) -> None:
        settings = Settings(
            _env_file=None,
            data_dir=tmp,
            database_url=url,  # type: ignore[call-arg]
            secret_key="bench-" + "x" * 40,
        )
        self.sessions = make_session_factory(db)
        registry = get_registry()
        if not context:
            # The orchestration alone: same pipeline, the run type gathers no facts.
            spec = registry.run_types[RUN_TYPE]
            registry = replace(
                registry,
                run_types={**registry.run_types, RUN_TYPE: spec.model_copy(update={"context": []})},
            )
        self.registry = registry
        self.engine = RunEngine(self.sessions, settings, registry, ZeroLatencyGateway(settings))
        with transaction(self.sessions) as session:
            ws = auth.create_workspace(session, name=f"bench-{uuid.uuid4().hex[:6]}")
            user = auth.create_user(
                session,
                email=f"b-{uuid.uuid4().hex[:6]}@example.com",
                password="bench-password-1",
                workspace_id=ws.id,
                role=Role.owner,
            )
            self.actor = Actor(user_id=user.id, workspace_id=ws.id, role=Role.owner)

    def __call__(self, n: int) -> float:
        """Seconds for n runs, one after another."""
        start = time.perf_counter()
        for _ in range(n):
            with transaction(self.sessions) as session:
                run, _ = runs.create_run(session, self.actor, self.registry, run_type=RUN_TYPE)
                run_id = run.id
            status = self.engine.execute(run_id)
            assert status == RunStatus.completed, status
        return time.perf_counter() - start


def _engine_runs(db: Engine, url: str, tmp: Path, n: int, *, context: bool = True) -> float:
    """Seconds for n runs in a new workspace."""
    return _EngineRuns(db, url, tmp, context=context)(n)


def bench(
    backend: str, n: int, rounds: int = ROUNDS, *, background_checkpoints: bool = True
) -> dict[str, Any]:
    """The four measures taken in ``rounds`` interleaved rounds of n/rounds each: a shared
    machine's slow seconds fall on all of them alike instead of on whichever ran then."""
    per_round = max(1, n // rounds)
    n = per_round * rounds
    seconds = {"floor": 0.0, "shaped": 0.0, "engine": 0.0, "with_context": 0.0}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        url, admin = _database(backend, tmp)
        db = build_engine(url)
        # As the server and the scheduler run on SQLite (runhq.db.checkpoint): the WAL is
        # checkpointed on a background thread, for the floor's commits as for the runs'.
        checkpointer = start_wal_checkpointer(db) if background_checkpoints else None
        try:
            upgrade(db)
            _engine_runs(db, url, tmp, 20)  # warm-up: imports, caches, connection pool
            floor_table = _floor_table(db, "bench_floor")
            shaped_table = _floor_table(db, "bench_shaped_floor")
            # One workspace per variant: with context, the history read grows to n runs.
            bare, with_context = _EngineRuns(db, url, tmp, context=False), _EngineRuns(db, url, tmp)
            for _ in range(rounds):
                seconds["floor"] += _floor(db, floor_table, per_round)
                seconds["shaped"] += _shaped_floor(db, shaped_table, per_round)
                seconds["engine"] += bare(per_round)
                seconds["with_context"] += with_context(per_round)
        finally:
            if checkpointer is not None:
                checkpointer.stop()
            db.dispose()
            if admin is not None:
                with admin.connect() as conn:
                    conn.execute(
                        text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
                    )
                admin.dispose()
    floor_s, shaped_s = seconds["floor"], seconds["shaped"]
    bare_s, engine_s = seconds["engine"], seconds["with_context"]
    return {
        "backend": backend,
        "runs": n,
        "rounds": rounds,
        "floor_pairs_per_s": round(n / floor_s, 1),
        "engine_runs_per_s": round(n / bare_s, 1),
        "engine_ratio": round(bare_s / floor_s, 2),
        "shaped_floor_runs_per_s": round(n / shaped_s, 1),
        "engine_vs_shaped_floor": round(bare_s / shaped_s, 2),
        "with_context_runs_per_s": round(n / engine_s, 1),
        "with_context_ratio": round(engine_s / floor_s, 2),
        "background_checkpoints": checkpointer is not None,
        "goal": "ratio <= 3",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=1500)
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS, help=f"interleaved rounds (default {ROUNDS})"
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--no-background-checkpoints",
        action="store_true",
        help="SQLite: leave WAL checkpoints to the commits (as a one-off CLI command does)",
    )
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        result = bench(
            backend,
            args.runs,
            args.rounds,
            background_checkpoints=not args.no_background_checkpoints,
        )
        print(json.dumps(result))


if __name__ == "__main__":
    main()
