"""A run's own SQL on bare sqlite3, beside the floor on bare sqlite3: what SQLite itself costs.

Captures the statements and parameters of one run (bench.engine_overhead's "engine" variant,
creation included) as SQLAlchemy sends them, then replays them N times through the standard
``sqlite3`` module on the same database file — new ids each time, the same transactions — and
times N floor pairs (insert a small row, then update it, each committed) the same way. No
SQLAlchemy and no runhq code is timed: the ratio is what the database alone makes of a run's
writes (pages dirtied per commit, index maintenance, JSON payloads).

Then the same replay through runhq's SQLAlchemy engine (``exec_driver_sql``, the captured SQL
as is; then each statement on the DBAPI cursor inside SQLAlchemy's transactions, as runhq
sends a run's statements on SQLite), beside bench.engine_overhead's floor on that engine: what
the run's SQL costs with the goal's data-access stack, before any runhq code (building rows,
prompts, log lines, the ORM session of the request that creates the run).

Also counted, not timed (the same on any machine): the WAL frames — pages written by the
commits — per run and per floor pair, and per run on copies of the database without the
secondary indexes of ``runs``, then of ``structured_logs``: what each table's indexes add.

    .venv/bin/python -m bench.sqlite_replay [--runs 1500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from bench.engine_overhead import _database, _engine_runs, _floor_table
from bench.engine_overhead import _floor as _floor_pairs
from runhq.db.migrate import upgrade
from runhq.db.session import SQLITE_CHECKPOINT_PAGES, SQLITE_PRAGMAS, build_engine

_HEX_ID = re.compile(r"^[0-9a-f]{32}$")  # how runhq's UUIDs are stored on SQLite
Statement = tuple[str, tuple[Any, ...]]
# The ids a replayed run keeps (foreign keys are enforced): its workspace and its user.
_KEPT_IDS = "SELECT id FROM workspaces UNION SELECT id FROM users"


def _capture(tmp: Path) -> tuple[Path, list[Statement | None]]:
    """One run's statements in order; None marks a commit."""
    url, _ = _database("sqlite", tmp)
    db = build_engine(url)
    upgrade(db)
    _engine_runs(db, url, tmp, 5, context=False)  # warm-up and a workspace history
    captured: list[Statement | None] = []

    def on_execute(_c: Any, _cur: Any, stmt: str, params: Any, _ctx: Any, _many: bool) -> None:
        captured.append((stmt, tuple(params or ())))

    def on_commit(_c: Any) -> None:
        captured.append(None)

    event.listen(db, "before_cursor_execute", on_execute)
    event.listen(db, "commit", on_commit)
    _engine_runs(db, url, tmp, 1, context=False)
    db.dispose()
    # From the run's first statement (the budget read): the workspace set-up is not a run's.
    first = next(i for i, s in enumerate(captured) if s and "FROM budgets" in s[0])
    return Path(url.removeprefix("sqlite:///")), captured[first:]


def _fresh_ids(keep: set[str]) -> Callable[[Any], Any]:
    """For one replayed run: each captured id, except those in ``keep``, becomes a new one
    (the same new one wherever it recurs)."""
    fresh: dict[str, str] = {}

    def swap(value: Any) -> Any:
        if isinstance(value, str) and _HEX_ID.match(value) and value not in keep:
            return fresh.setdefault(value, uuid.uuid4().hex)
        return value

    return swap


def _replay(con: sqlite3.Connection, statements: list[Statement | None], n: int) -> float:
    # The workspace and user ids stay (foreign keys are enforced, as on runhq's engine);
    # every other id (run, log lines, claim token) is new.
    keep = {row[0] for row in con.execute(_KEPT_IDS)}
    start = time.perf_counter()
    for _ in range(n):
        swap = _fresh_ids(keep)
        con.execute("BEGIN IMMEDIATE")  # the captured list starts inside the creation's
        for item in statements:
            if item is None:
                con.execute("COMMIT")
            else:  # BEGIN IMMEDIATE is captured as a statement too
                con.execute(item[0], tuple(swap(v) for v in item[1]))
    return time.perf_counter() - start


def _replay_through_engine(
    db: Engine, statements: list[Statement | None], n: int, *, on_cursor: bool = False
) -> float:
    """The same replay through runhq's SQLAlchemy engine (pool, ``BEGIN IMMEDIATE`` hook,
    ``exec_driver_sql``): what the run's SQL costs with the same data-access stack as the
    goal's floor, still without any runhq code. ``on_cursor``: each statement sent on the
    DBAPI cursor inside SQLAlchemy's transactions, as runhq sends a run's statements on
    SQLite (``runhq.db.compiled``, ADR 0015)."""
    # Foreign keys are enforced on this engine: the workspace and the requesting user stay.
    with db.connect() as conn:
        rows = conn.exec_driver_sql(_KEPT_IDS)
        keep = {row[0] for row in rows}
    # The captured list starts inside the creation's transaction; BEGIN IMMEDIATE is sent by
    # the engine's begin hook, so the captured one is skipped.
    body = [s for s in statements if s is None or not s[0].startswith("BEGIN")]
    start = time.perf_counter()
    for _ in range(n):
        swap = _fresh_ids(keep)
        conn = db.connect()
        try:
            trans = conn.begin()
            for item in body:
                if item is None:
                    trans.commit()
                    trans = conn.begin()
                elif on_cursor:
                    cursor = conn.connection.cursor()
                    cursor.execute(item[0], tuple(swap(v) for v in item[1]))
                    cursor.close()
                else:
                    conn.exec_driver_sql(item[0], tuple(swap(v) for v in item[1]))
            trans.rollback()  # the empty transaction after the last commit
        finally:
            conn.close()
    return time.perf_counter() - start


def _floor(con: sqlite3.Connection, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        row_id = uuid.uuid4().hex
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO bare_floor VALUES (?, 'queued', 1)", (row_id,))
        con.execute("COMMIT")
        con.execute("BEGIN IMMEDIATE")
        con.execute("UPDATE bare_floor SET status = 'completed' WHERE id = ?", (row_id,))
        con.execute("COMMIT")
    return time.perf_counter() - start


def _wal_frames(con: sqlite3.Connection, work: Callable[[], object], n: int) -> float:
    """WAL frames (pages written by commits) per unit of ``work``, run n times: a count, not a
    timing, so it does not move with the machine's load. Checkpoints are held off meanwhile."""
    wal = Path(con.execute("PRAGMA database_list").fetchone()[2] + "-wal")
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    try:
        for _ in range(n):
            work()
        # Each frame is a page plus its 24-byte header, after the WAL's 32-byte header.
        page = con.execute("PRAGMA page_size").fetchone()[0]
        return round((wal.stat().st_size - 32) / (page + 24) / n, 1)
    finally:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.execute(f"PRAGMA wal_autocheckpoint={SQLITE_CHECKPOINT_PAGES}")


def _frames_without_indexes(path: Path, statements: list[Statement | None], table: str) -> float:
    """WAL frames per replayed run on a copy of the database without ``table``'s secondary
    indexes (its primary key and unique constraints stay)."""
    copy = path.with_name(f"without_{table}_indexes.db")
    source = sqlite3.connect(path)
    target = sqlite3.connect(copy, isolation_level=None)
    try:
        source.backup(target)
        for pragma in SQLITE_PRAGMAS:
            target.execute(pragma)
        names = target.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
            "AND sql IS NOT NULL AND sql NOT LIKE 'CREATE UNIQUE%'",
            (table,),
        ).fetchall()
        for (name,) in names:  # names read from the schema, never input
            target.execute(f'DROP INDEX "{name}"')
        return _wal_frames(target, lambda: _replay(target, statements, 1), 200)
    finally:
        source.close()
        target.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    args = parser.parse_args()
    per_round = max(1, args.runs // args.rounds)
    n = per_round * args.rounds
    seconds = dict.fromkeys(("bare_floor", "bare_run", "floor", "replay", "cursor"), 0.0)
    with tempfile.TemporaryDirectory() as tmpdir:
        path, statements = _capture(Path(tmpdir))
        con = sqlite3.connect(path, isolation_level=None)
        for pragma in SQLITE_PRAGMAS:  # the same settings as runhq's engine
            con.execute(pragma)
        con.execute("CREATE TABLE bare_floor (id CHAR(32) PRIMARY KEY, status VARCHAR(20), n INT)")
        db = build_engine(f"sqlite:///{path}")
        floor_table = _floor_table(db, "engine_floor")
        try:
            frames = {
                "wal_frames_per_floor_pair": _wal_frames(con, lambda: _floor(con, 1), 200),
                "wal_frames_per_run": _wal_frames(con, lambda: _replay(con, statements, 1), 200),
                **{
                    f"wal_frames_per_run_without_{table}_indexes": _frames_without_indexes(
                        path, statements, table
                    )
                    for table in ("runs", "structured_logs")
                },
            }
            # Interleaved, as bench.engine_overhead: a slow spell weighs on every measure.
            for _ in range(args.rounds):
                seconds["bare_floor"] += _floor(con, per_round)
                seconds["bare_run"] += _replay(con, statements, per_round)
                seconds["floor"] += _floor_pairs(db, floor_table, per_round)
                seconds["replay"] += _replay_through_engine(db, statements, per_round)
                seconds["cursor"] += _replay_through_engine(
                    db, statements, per_round, on_cursor=True
                )
        finally:
            con.close()
            db.dispose()

    def us(key: str) -> float:
        return round(seconds[key] / n * 1e6, 1)

    def ratio(key: str, floor: str) -> float:
        return round(seconds[key] / seconds[floor], 2)

    print(
        json.dumps(
            {
                "runs": n,
                "rounds": args.rounds,
                "statements_per_run": sum(
                    1 for s in statements if s and not s[0].startswith("BEGIN")
                ),
                "commits_per_run": statements.count(None),
                **frames,
                "bare_floor_pair_us": us("bare_floor"),
                "bare_run_us": us("bare_run"),
                "ratio": ratio("bare_run", "bare_floor"),
                "engine_floor_pair_us": us("floor"),
                "engine_replayed_run_us": us("replay"),
                "engine_replay_ratio": ratio("replay", "floor"),
                "engine_cursor_replayed_run_us": us("cursor"),
                "engine_cursor_replay_ratio": ratio("cursor", "floor"),
            }
        )
    )


if __name__ == "__main__":
    main()
