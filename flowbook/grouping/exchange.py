"""A session as one shareable file, and loading it on another machine.

The file is flowbook JSONL: the first line is ``{"flowbook_session": {...}}`` (format version,
the session's name, description, kind, and the grouping of its flows: every session of theirs
within the file, thread links, tool chains, retries, detected-session reasons); then one stored
flow line per flow (``{"v": 1, ...}``), oldest first, with its annotations and with secrets
masked (``flowbook.redact``), whatever the capture's own masking setting was. ``fb.load`` reads
the same file as plain flows (it skips the first line); ``fb.sessions.load`` also restores the
grouping, so the flows, annotations, sessions and threads come out as they went in.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowbook.redact import redact_flow
from flowbook.schema import FLOW_LINE_VERSION

if TYPE_CHECKING:
    from flowbook.grouping.manage import Sessions

FORMAT = 1
HEADER_KEY = "flowbook_session"
_FACT_FIELDS = (
    "thread_id", "turn", "parent_id", "retry_of", "auto_session", "auto_reason", "corrected",
    "conversation", "request_hash", "prompt_hash", "answer_sig", "model", "failed",
    "completed", "identity", "created", "alert", "notified",
)  # fmt: skip


def export_session(sessions: Sessions, name: str, path: Path) -> Path:
    """Write session ``name`` to ``path`` (see the module docstring); returns the path."""
    tracker, store = sessions._tracker, sessions._store
    db = tracker.db
    meta = dict(db.one("SELECT * FROM sessions WHERE name=?", (name,)) or {})
    ids = sessions.flow_ids(name)
    marks = ",".join("?" * len(ids)) or "''"
    members = [
        dict(r)
        for r in db.rows(
            f"SELECT session, flow_id, how, reason FROM members WHERE flow_id IN ({marks})", ids
        )
    ]
    others = sorted({m["session"] for m in members} - {name})
    other_meta = [
        dict(r)
        for r in db.rows(
            f"SELECT * FROM sessions WHERE name IN ({','.join('?' * len(others)) or chr(39) * 2})",
            others,
        )
    ]
    facts = {
        r["flow_id"]: {k: r[k] for k in _FACT_FIELDS}
        for r in db.rows(f"SELECT * FROM facts WHERE flow_id IN ({marks})", ids)
    }
    chains = [
        dict(r)
        for r in db.rows(
            f"SELECT * FROM chains WHERE flow_id IN ({marks}) AND answers IN ({marks})", ids + ids
        )
    ]
    calls = [dict(r) for r in db.rows(f"SELECT * FROM tool_calls WHERE flow_id IN ({marks})", ids)]
    header = {
        HEADER_KEY: {
            "format": FORMAT,
            "exported": time.time(),
            "session": meta,
            "sessions": other_meta,
            "members": members,
            "facts": facts,
            "chains": chains,
            "tool_calls": calls,
            "flow_ids": ids,
        }
    }
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(header, ensure_ascii=False) + "\n")
        for flow_id in ids:
            flow = store.get(flow_id)
            if flow is None:
                continue
            masked = redact_flow(flow)
            f.write(json.dumps({"v": FLOW_LINE_VERSION, **masked.to_dict()}, ensure_ascii=False))
            f.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def is_session_file(path: Path) -> bool:
    """Whether ``path`` starts with a session header (cheap: reads the first line only)."""
    try:
        with open(path.expanduser(), "rb") as f:
            return f.read(len(HEADER_KEY) + 8).lstrip().startswith(b'{"' + HEADER_KEY.encode())
    except OSError:
        return False


def read_header(path: Path) -> dict[str, Any]:
    """The session header of an exported file; ValueError saying what is wrong otherwise."""
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline()
        data = json.loads(first)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {path}") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not a flowbook session file ({e})") from None
    header = data.get(HEADER_KEY) if isinstance(data, dict) else None
    if not isinstance(header, dict):
        raise ValueError(
            f"{path} is not a flowbook session file (no {HEADER_KEY!r} first line); "
            "plain flow files load with fb.load(path)"
        )
    if header.get("format", 0) > FORMAT:
        raise ValueError(f"{path} was written by a newer flowbook (format {header['format']})")
    return header


def load_session(sessions: Sessions, path: Path) -> str:
    """Import the flows of a session file and restore its grouping; returns the session name."""
    header = read_header(path.expanduser())
    tracker, store = sessions._tracker, sessions._store
    store.load(path.expanduser())
    meta = header["session"]
    name = meta["name"]
    ids = list(header.get("flow_ids") or [])
    with tracker.db.tx() as c:
        if ids:
            # The grouping in the file replaces whatever the tracker guessed while importing.
            marks = ",".join("?" * len(ids))
            c.execute(f"DELETE FROM members WHERE flow_id IN ({marks})", ids)
            c.execute(f"DELETE FROM chains WHERE flow_id IN ({marks})", ids)
            c.execute(f"DELETE FROM tool_calls WHERE flow_id IN ({marks})", ids)
            c.execute(
                "DELETE FROM sessions WHERE kind='auto' AND name NOT IN "
                "(SELECT session FROM members) AND name NOT IN (SELECT auto_session FROM facts "
                f"WHERE flow_id NOT IN ({marks}) AND auto_session IS NOT NULL)",
                ids,
            )
        for s in [meta, *header.get("sessions", [])]:
            c.execute(
                "INSERT OR IGNORE INTO sessions (name, description, kind, created, archived, "
                "identity, last_seen) VALUES (?,?,?,?,?,?,?)",
                (
                    s["name"],
                    s.get("description"),
                    s.get("kind") or "manual",
                    s.get("created") or time.time(),
                    int(s.get("archived") or 0),
                    s.get("identity"),
                    s.get("last_seen"),
                ),
            )
        c.executemany(
            "INSERT OR REPLACE INTO members (session, flow_id, how, reason) VALUES (?,?,?,?)",
            [(m["session"], m["flow_id"], m["how"], m["reason"]) for m in header["members"]],
        )
        fields = ", ".join(_FACT_FIELDS)
        c.executemany(
            f"INSERT OR REPLACE INTO facts (flow_id, {fields}) "
            f"VALUES (?, {', '.join('?' * len(_FACT_FIELDS))})",
            [(fid, *(f.get(k) for k in _FACT_FIELDS)) for fid, f in header["facts"].items()],
        )
        c.executemany(
            "INSERT INTO chains (flow_id, answers, call_id, name, matched_by) VALUES (?,?,?,?,?)",
            [
                (r["flow_id"], r["answers"], r["call_id"], r["name"], r["matched_by"])
                for r in header["chains"]
            ],
        )
        c.executemany(
            "INSERT INTO tool_calls (flow_id, call_id, name) VALUES (?,?,?)",
            [(r["flow_id"], r["call_id"], r["name"]) for r in header["tool_calls"]],
        )
    tracker.reload()
    tracker.refresh_members(set(ids))
    return str(name)
