"""Detected sessions: where a flow goes when nobody named its session.

In order: the detected session of the conversation it continues (its thread parent's), so an
agent's conversation stays whole across idle gaps and corrections follow it; else the latest
detected session of the same client identity (client, User-Agent, key fingerprint, source host)
if that one saw a flow less than the idle gap ago; else a new session named after the client.
The reason is recorded with the membership, for ``fb.sessions.explain``. A flow is placed once:
a flow that has a detected session (or a correction) keeps it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from flowbook.analysis import correlation as corr


def slug(text: str) -> str:
    """A session-name-safe form of a client name (letters, digits, dashes)."""
    s = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return s[:40] or "client"


def ensure_session(c: Any, name: str, kind: str, created: float) -> None:
    """Create session ``name`` if it does not exist (inside the caller's transaction)."""
    c.execute(
        "INSERT OR IGNORE INTO sessions (name, kind, created) VALUES (?,?,?)",
        (name, kind, created),
    )


def place(
    c: Any,
    flow_id: str,
    ident: corr.Identity,
    parent: str | None,
    created: float,
    gap_s: float,
    *,
    known: bool = True,
) -> None:
    """Put a flow in its detected session (inside the caller's transaction); see the module.
    ``known=False``: the caller knows the flow had no facts before (so no placement either)."""
    if known:
        row = c.execute("SELECT auto_session FROM facts WHERE flow_id=?", (flow_id,)).fetchone()
        if row is not None and row[0]:
            return  # placed already (the correction, if any, sticks)
    name: str | None = None
    reason = ""
    if parent is not None:
        prow = c.execute("SELECT auto_session FROM facts WHERE flow_id=?", (parent,)).fetchone()
        if prow and prow[0]:
            name = prow[0]
            reason = f"continues the conversation of flow {parent} (thread parent)"
    if name is None:
        srow = c.execute(
            "SELECT name, last_seen FROM sessions WHERE kind='auto' AND identity=? "
            "AND archived=0 ORDER BY last_seen DESC LIMIT 1",
            (ident.key_text,),
        ).fetchone()
        if srow is not None and created - (srow[1] or 0) <= gap_s:
            name = srow[0]
            idle = max(created - (srow[1] or 0), 0)
            reason = (
                f"same client identity ({ident.describe()}); {idle:.1f} s after the "
                f"session's previous flow, within the idle gap of {gap_s / 60:g} min"
            )
        else:
            name = new_name(c, ident, created)
            if srow is not None:
                reason = (
                    f"new session: {(created - (srow[1] or 0)) / 60:.1f} min idle since "
                    f"{srow[0]} (idle gap {gap_s / 60:g} min) for client {ident.describe()}"
                )
            else:
                reason = f"new session: first flow of client identity ({ident.describe()})"
            c.execute(
                "INSERT INTO sessions (name, kind, created, identity, last_seen) "
                "VALUES (?,?,?,?,?)",
                (name, "auto", created, ident.key_text, created),
            )
    c.execute(
        "UPDATE sessions SET last_seen=MAX(COALESCE(last_seen, 0), ?) WHERE name=?",
        (created, name),
    )
    c.execute(
        "UPDATE facts SET auto_session=?, auto_reason=? WHERE flow_id=?",
        (name, reason, flow_id),
    )
    c.execute(
        "INSERT OR IGNORE INTO members (session, flow_id, how, reason) VALUES (?,?,?,?)",
        (name, flow_id, "auto", reason),
    )


def new_name(c: Any, ident: corr.Identity, created: float) -> str:
    """``auto-<client>-<UTC time>`` (with ``-2``, ``-3`` … if taken)."""
    # "OpenAI Python SDK 1.2.3" -> openai-python-sdk: the version would only add noise.
    client = re.sub(r"\s+v?\d[\w.\-]*$", "", ident.client)
    who = slug(client or ident.user_agent.split("/")[0] or "client")
    stamp = datetime.fromtimestamp(created, UTC).strftime("%Y%m%d-%H%M%S")
    base = f"auto-{who}-{stamp}"
    name, n = base, 1
    while c.execute("SELECT 1 FROM sessions WHERE name=?", (name,)).fetchone():
        n += 1
        name = f"{base}-{n}"
    return name
