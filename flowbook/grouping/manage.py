"""``fb.sessions``: named and detected sessions — create, edit, list, explain, correct.

A session is a named group of flows; a flow may belong to several. Named sessions are made with
``fb.sessions.new`` (or opened with ``fb.session(name)``); detected ones (``kind`` ``auto``) are
made by the tracker from client identity, idle gaps and conversation continuity. Both are edited
the same way; moving a flow out of a detected session is a correction that sticks (the tracker
never places a flow twice). Export and load live in ``flowbook.grouping.exchange``; the report in
``flowbook.grouping.report``.
"""

from __future__ import annotations

import builtins
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from flowbook.grouping.handle import Session
from flowbook.grouping.tracker import SessionTracker, now

if TYPE_CHECKING:
    from flowbook.store.facade import Store

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
LIST_COLUMNS = [
    "name",
    "kind",
    "description",
    "archived",
    "flows",
    "first",
    "last",
    "duration_s",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost_usd",
    "errors",
    "models",
    "clients",
]


def check_name(name: Any) -> str:
    """A session name: letters, digits, ``_ . -``, starting with a letter or digit (so it can be
    written in a filter, ``session:NAME``, and joined with commas in the ``session`` column)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"a session name is 1-100 letters, digits, '_', '.' or '-' starting with a letter or "
            f"digit (it is used as session:NAME in filters), got {name!r}"
        )
    return name


class Sessions:
    """Session management over one data dir (what ``fb.sessions`` is)."""

    def __init__(self, get: Callable[[], tuple[Store, SessionTracker]]) -> None:
        self._get = get

    @property
    def _tracker(self) -> SessionTracker:
        return self._get()[1]

    @property
    def _store(self) -> Store:
        return self._get()[0]

    def _exists(self, name: str) -> dict[str, Any]:
        row = self._tracker.db.one("SELECT * FROM sessions WHERE name=?", (name,))
        if row is None:
            known = [r["name"] for r in self._tracker.db.rows("SELECT name FROM sessions")]
            import difflib

            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise KeyError(f"no session named {name!r}.{hint} fb.sessions.list() shows them.")
        return dict(row)

    # ---- lifecycle ---------------------------------------------------------------------------

    def new(self, name: str, description: str | None = None) -> Session:
        """Create a named session (an error if the name is taken); returns its handle."""
        check_name(name)
        with self._tracker.db.tx() as c:
            if c.execute("SELECT 1 FROM sessions WHERE name=?", (name,)).fetchone():
                raise ValueError(f"a session named {name!r} exists already")
            c.execute(
                "INSERT INTO sessions (name, description, kind, created) VALUES (?,?,?,?)",
                (name, description, "manual", now()),
            )
        return Session(self, name)

    def __getitem__(self, name: str) -> Session:
        self._exists(name)
        return Session(self, name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (
            self._tracker.db.one("SELECT 1 FROM sessions WHERE name=?", (name,)) is not None
        )

    def ensure(self, name: str) -> str:
        """The session ``name``, created if it does not exist yet."""
        check_name(name)
        with self._tracker.db.tx() as c:
            c.execute(
                "INSERT OR IGNORE INTO sessions (name, kind, created) VALUES (?,?,?)",
                (name, "manual", now()),
            )
        return name

    def rename(self, old: str, new: str) -> None:
        """Rename a session (its flows follow)."""
        self._exists(old)
        check_name(new)
        with self._tracker.db.tx() as c:
            if c.execute("SELECT 1 FROM sessions WHERE name=?", (new,)).fetchone():
                raise ValueError(f"a session named {new!r} exists already")
            c.execute("UPDATE sessions SET name=? WHERE name=?", (new, old))
            c.execute("UPDATE members SET session=? WHERE session=?", (new, old))
            c.execute("UPDATE facts SET auto_session=? WHERE auto_session=?", (new, old))
            c.execute("UPDATE active SET name=? WHERE name=?", (new, old))
        self._tracker.refresh_members(set(self.flow_ids(new)))

    def describe(self, name: str, description: str | None) -> None:
        """Set (or clear, with None) a session's description."""
        self._exists(name)
        with self._tracker.db.tx() as c:
            c.execute("UPDATE sessions SET description=? WHERE name=?", (description, name))

    def archive(self, name: str, archived: bool = True) -> None:
        """Archive a session: it keeps its flows, ``list()`` hides it unless asked, and a detected
        session that is archived takes no new flows."""
        self._exists(name)
        with self._tracker.db.tx() as c:
            c.execute("UPDATE sessions SET archived=? WHERE name=?", (int(archived), name))

    def delete(self, name: str) -> None:
        """Delete a session (its flows stay; only the grouping goes)."""
        self._exists(name)
        ids = set(self.flow_ids(name))
        with self._tracker.db.tx() as c:
            c.execute("DELETE FROM sessions WHERE name=?", (name,))
            c.execute("DELETE FROM members WHERE session=?", (name,))
            c.execute("DELETE FROM active WHERE name=?", (name,))
        self._tracker.refresh_members(ids)

    # ---- membership --------------------------------------------------------------------------

    def _flow_ids(self, flows: str | Iterable[str] | pd.DataFrame) -> builtins.list[str]:
        if isinstance(flows, str):
            return [flows]
        if isinstance(flows, pd.DataFrame):
            return [str(i) for i in flows["id"]]
        return [str(i) for i in flows]

    def add(self, name: str, flows: str | Iterable[str] | pd.DataFrame) -> int:
        """Add flows (ids, or a DataFrame from ``fb.flows()``) to a session; returns how many were
        new members. A flow may belong to several sessions."""
        self._exists(name)
        ids = self._flow_ids(flows)
        missing = [i for i in ids if self._store.get(i) is None]
        if missing:
            raise KeyError(f"no flow with id {missing[0]!r} (fb.flows() lists the ids)")
        with self._tracker.db.tx() as c:
            before = c.total_changes
            c.executemany(
                "INSERT OR IGNORE INTO members (session, flow_id, how, reason) VALUES (?,?,?,?)",
                [(name, i, "manual", "added with fb.sessions.add") for i in ids],
            )
            added = c.total_changes - before
        self._tracker.refresh_members(set(ids))
        return added

    def remove(self, name: str, flows: str | Iterable[str] | pd.DataFrame) -> int:
        """Take flows out of a session; returns how many were members."""
        self._exists(name)
        ids = self._flow_ids(flows)
        with self._tracker.db.tx() as c:
            before = c.total_changes
            c.executemany(
                "DELETE FROM members WHERE session=? AND flow_id=?", [(name, i) for i in ids]
            )
            removed = c.total_changes - before
            # Taking a flow out of its detected session is a correction: it is not put back.
            c.executemany(
                "UPDATE facts SET corrected=1 WHERE flow_id=? AND auto_session=?",
                [(i, name) for i in ids],
            )
        self._tracker.refresh_members(set(ids))
        return removed

    def move(self, flows: str | Iterable[str] | pd.DataFrame, to: str) -> None:
        """Correct a detected grouping: the flows leave their detected session and join ``to``
        (created if needed). The correction sticks: ``explain`` reports it, the tracker keeps it,
        and later turns of the same conversation follow the flow into ``to``."""
        self.ensure(to)
        ids = self._flow_ids(flows)
        with self._tracker.db.tx() as c:
            for i in ids:
                row = c.execute("SELECT auto_session FROM facts WHERE flow_id=?", (i,)).fetchone()
                old = row[0] if row else None
                if old and old != to:
                    c.execute("DELETE FROM members WHERE session=? AND flow_id=?", (old, i))
                reason = f"moved from {old} by the user" if old else "moved by the user"
                c.execute(
                    "INSERT OR REPLACE INTO members (session, flow_id, how, reason) "
                    "VALUES (?,?,?,?)",
                    (to, i, "moved", reason),
                )
                c.execute(
                    "UPDATE facts SET auto_session=?, auto_reason=?, corrected=1 WHERE flow_id=?",
                    (to, reason, i),
                )
        self._tracker.refresh_members(set(ids))

    def flow_ids(self, name: str) -> builtins.list[str]:
        """The ids of a session's flows, oldest first."""
        rows = self._tracker.db.rows(
            "SELECT m.flow_id FROM members m LEFT JOIN facts f ON f.flow_id = m.flow_id "
            "WHERE m.session=? ORDER BY COALESCE(f.created, 0), m.rowid",
            (name,),
        )
        return [r[0] for r in rows]

    def flows(self, name: str) -> pd.DataFrame:
        """The summary rows of a session's flows, oldest first."""
        self._exists(name)
        df = self._store.query(
            f"session:={name}", include_history=True, sort_by="timestamp", sort_order="asc"
        )
        return df.reset_index(drop=True)

    # ---- reading -----------------------------------------------------------------------------

    def list(self, *, include_archived: bool = False, kind: str | None = None) -> pd.DataFrame:
        """One row per session: flows, time span, tokens, cost, errors, models and clients."""
        from flowbook.analysis.sessions import session_table

        where, params = [], []
        if not include_archived:
            where.append("archived=0")
        if kind is not None:
            if kind not in ("manual", "auto"):
                raise ValueError(f"kind is 'manual' or 'auto', not {kind!r}")
            where.append("kind=?")
            params.append(kind)
        sql = "SELECT name, kind, description, archived, created FROM sessions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        meta = pd.DataFrame([dict(r) for r in self._tracker.db.rows(sql, params)])
        members = pd.DataFrame(
            [dict(r) for r in self._tracker.db.rows("SELECT session, flow_id FROM members")],
            columns=["session", "flow_id"],
        )
        frame = self._store.frame(include_history=True)
        return session_table(meta, members, frame)[LIST_COLUMNS]

    def explain(self, flow_id: str) -> str:
        """Why a flow is in the sessions it is in (and which conversation it continues)."""
        t = self._tracker
        fact = t.db.one("SELECT * FROM facts WHERE flow_id=?", (flow_id,))
        members = t.db.rows(
            "SELECT m.session, m.how, m.reason, s.kind FROM members m "
            "LEFT JOIN sessions s ON s.name = m.session WHERE m.flow_id=?",
            (flow_id,),
        )
        if fact is None and not members:
            raise KeyError(f"flowbook has no session facts for flow {flow_id!r}")
        lines = [f"flow {flow_id}:"]
        for m in members:
            lines.append(f"- in {m['kind'] or 'manual'} session {m['session']}: {m['reason']}")
        if not members:
            lines.append("- in no session")
        if fact is not None:
            if fact["corrected"]:
                lines.append("- the detected grouping was corrected by the user; it stays")
            if fact["parent_id"]:
                lines.append(
                    f"- turn {fact['turn']} of thread {fact['thread_id']} "
                    f"(continues flow {fact['parent_id']})"
                )
            else:
                lines.append(f"- starts thread {fact['thread_id']}")
            if fact["retry_of"]:
                lines.append(f"- retries flow {fact['retry_of']}, which failed")
        return "\n".join(lines)

    # ---- open sessions -----------------------------------------------------------------------

    @contextmanager
    def capture_into(self, name: str) -> Iterator[str]:
        """Every flow captured while the block runs joins ``name`` (created if needed)."""
        token = self.open(name)
        try:
            yield name
        finally:
            self.close(token)

    def open(self, name: str) -> str:
        """Start putting new flows into ``name``; returns a token for ``close``."""
        self.ensure(name)
        token = uuid.uuid4().hex
        with self._tracker.db.tx() as c:
            c.execute(
                "INSERT INTO active (name, pid, token, opened) VALUES (?,?,?,?)",
                (name, os.getpid(), token, now()),
            )
        return token

    def close(self, token: str | None = None) -> builtins.list[str]:
        """Stop an open session (``token`` from ``open``; None: every one this process opened).
        Flows created before this moment still join it when the recorder gets to them.
        Returns the names closed."""
        db = self._tracker.db
        if token is None:
            rows = db.rows(
                "SELECT name, token FROM active WHERE pid=? AND closed IS NULL", (os.getpid(),)
            )
        else:
            rows = db.rows("SELECT name, token FROM active WHERE token=?", (token,))
        t = now()
        with db.tx() as c:
            c.executemany(
                "UPDATE active SET closed=? WHERE token=?", [(t, r["token"]) for r in rows]
            )
            # Closed blocks are kept an hour for flows the recorder has not applied yet.
            c.execute("DELETE FROM active WHERE closed IS NOT NULL AND closed < ?", (t - 3600,))
        return [r["name"] for r in rows]

    def active(self) -> builtins.list[str]:
        """Sessions new flows currently go into."""
        return self._tracker.active_sessions()

    # ---- export, load, report ----------------------------------------------------------------

    def export(self, name: str, path: str | Path) -> Path:
        """Write a session as one shareable file: its flows (secrets masked), their annotations,
        the session's metadata and grouping. ``fb.sessions.load(path)`` reads it anywhere."""
        from flowbook.grouping.exchange import export_session

        self._exists(name)
        return export_session(self, name, Path(path))

    def load(self, path: str | Path) -> str:
        """Load a session file written by ``export``; returns the session's name."""
        from flowbook.grouping.exchange import load_session

        return load_session(self, Path(path))

    def report(self, name: str, *, slow_n: int = 5) -> Any:
        """A Markdown report of a session: summary, timeline of turns, tools used, cost, the slowest
        turns and why, errors. Displays as Markdown in a notebook; ``str()`` gives the text."""
        from flowbook.grouping.report import session_report

        self._exists(name)
        return session_report(self, name, slow_n=slow_n)

    def __repr__(self) -> str:
        return (
            "fb.sessions: new, rename, describe, archive, delete, add, remove, move, list, "
            "flows, explain, export, load, report"
        )
