"""``<data_dir>/sessions.sqlite``: sessions, their members and every flow's correlation facts.

Kept apart from the file store (its segments and index are another module's format): this file
holds only what sessions and correlation add. It is small (one row per flow plus one per
membership) and safe to delete: sessions and links are then rebuilt for flows captured later.

One connection, shared by the recorder thread (which writes once per batch of puts) and the
kernel (which reads and edits), behind a lock; WAL so a second process (a detached capture) can
read and write the same file. ``before_use`` (the tracker's) runs before every read and write, so
puts the tracker has noted but not applied yet are applied before anyone looks.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FILE_NAME = "sessions.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    name TEXT PRIMARY KEY,
    description TEXT,
    kind TEXT NOT NULL DEFAULT 'manual',   -- manual | auto
    created REAL NOT NULL,
    archived INTEGER NOT NULL DEFAULT 0,
    identity TEXT,                         -- auto sessions: the client identity they group
    last_seen REAL                         -- auto sessions: creation time of their latest flow
);
CREATE TABLE IF NOT EXISTS members (
    session TEXT NOT NULL,
    flow_id TEXT NOT NULL,
    how TEXT NOT NULL,                     -- context | manual | auto | moved | loaded
    reason TEXT,
    PRIMARY KEY (session, flow_id)
);
CREATE INDEX IF NOT EXISTS members_flow ON members(flow_id);
CREATE TABLE IF NOT EXISTS facts (
    flow_id TEXT PRIMARY KEY,
    created REAL,
    conversation TEXT,
    request_hash TEXT,
    prompt_hash TEXT,
    answer_sig TEXT,
    model TEXT,
    failed INTEGER NOT NULL DEFAULT 0,
    completed INTEGER NOT NULL DEFAULT 0,
    thread_id TEXT,
    turn INTEGER,
    parent_id TEXT,
    retry_of TEXT,
    identity TEXT,
    auto_session TEXT,
    auto_reason TEXT,
    corrected INTEGER NOT NULL DEFAULT 0,
    alert TEXT,
    notified INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS facts_conversation ON facts(conversation);
CREATE INDEX IF NOT EXISTS facts_request ON facts(request_hash);
-- The retry lookup (an earlier failed flow with the same request): without it, every flow of a
-- prompt sent thousands of times (an eval loop, a load test) scanned all of that prompt's rows.
CREATE INDEX IF NOT EXISTS facts_retry ON facts(request_hash, failed, created);
CREATE INDEX IF NOT EXISTS facts_prompt ON facts(prompt_hash);
CREATE INDEX IF NOT EXISTS facts_thread ON facts(thread_id);
CREATE TABLE IF NOT EXISTS tool_calls (
    flow_id TEXT NOT NULL,
    call_id TEXT,
    name TEXT
);
CREATE INDEX IF NOT EXISTS tool_calls_id ON tool_calls(call_id);
CREATE INDEX IF NOT EXISTS tool_calls_flow ON tool_calls(flow_id);
CREATE TABLE IF NOT EXISTS chains (
    flow_id TEXT NOT NULL,                 -- the flow sending the tool result
    answers TEXT NOT NULL,                 -- the flow whose tool call it answers
    call_id TEXT,
    name TEXT,
    matched_by TEXT                        -- id | name
);
CREATE INDEX IF NOT EXISTS chains_flow ON chains(flow_id);
CREATE INDEX IF NOT EXISTS chains_answers ON chains(answers);
CREATE TABLE IF NOT EXISTS active (       -- sessions opened with fb.session(name)
    name TEXT NOT NULL,
    pid INTEGER NOT NULL,
    token TEXT PRIMARY KEY,
    opened REAL NOT NULL,
    closed REAL                            -- NULL while open; kept a while after closing
);
"""


class SessionDB:
    """The SQLite file and a few typed helpers; callers hold ``lock`` via ``tx()``/``rows()``."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / FILE_NAME
        self.lock = threading.RLock()
        self._conn = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=10.0
        )
        self._conn.row_factory = sqlite3.Row
        self.before_use: Callable[[], None] | None = None
        with self.lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (committed on exit, rolled back on an exception)."""
        with self.lock:
            self._before()
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def rows(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Run a read query."""
        with self.lock:
            self._before()
            return self._conn.execute(sql, tuple(params)).fetchall()

    def _before(self) -> None:
        # Not inside a transaction (a read made while editing): the hook's own transaction
        # would nest; what it would apply waits for the next use.
        if self.before_use is not None and not self._conn.in_transaction:
            self.before_use()

    def one(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        """The first row of a read query, or None."""
        found = self.rows(sql, params)
        return found[0] if found else None

    def close(self) -> None:
        """Close the connection."""
        with self.lock:
            self._conn.close()
