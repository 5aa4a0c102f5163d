"""The store-side tracker: every flow that reaches the store is placed in sessions and linked.

The store calls ``on_put(flow, first, completed)`` for every ``put`` (the recorder's, and each
imported flow's), on the thread that put it. On first sight (the request is parsed) the tracker

* adds the flow to every session opened with ``fb.session(name)`` / ``%flowmon session NAME``
  (in this process or another one on the same data dir: the open contexts are rows in the
  sessions file, so a detached capture honours them too);
* links it: thread parent, turn and thread id, the tool calls its tool results answer, the failed
  call it retries (``flowbook.analysis.correlation`` says how);
* places it in a detected session (``auto_sessions``): the session of the conversation it
  continues; else the session of the same client identity if that one saw a flow less than
  ``auto_session_idle_minutes`` ago; else a new one. The reason is kept for ``explain``.

On completion it records the answer (for later threads and tool chains), whether it failed, and
its alerts, and queues a notification for a new alert. Nothing here may break capture: errors are
kept in ``errors`` and the flow goes on.

``enrich(df)`` fills the summary frame's ``session`` (every session of a flow, comma-joined),
``thread_id``, ``turn``, ``parent_id`` and ``alert`` columns, and re-prices rows whose model has
a price override.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from flowbook.analysis import correlation as corr
from flowbook.analysis.alerts import Thresholds, describe, row_alerts
from flowbook.grouping.autosession import ensure_session, place
from flowbook.grouping.db import SessionDB
from flowbook.grouping.overlay import Overlay
from flowbook.model import LLMFlow

Getter = Callable[[str], Any]
#: Seconds the tracker thread lets the puts of recorder batches gather before applying them in
#: one transaction (readers never wait for it: a read applies what is noted first).
DEFER_S = 0.1
DEFAULTS: dict[str, Any] = {
    "auto_sessions": True,
    "auto_session_idle_minutes": 30.0,
    "alert_latency_s": 5.0,
    "alert_tokens": 10_000,
    "alert_cost_usd": 1.0,
    "alert_on_error": True,
    "notification_enabled": True,
    "price_overrides": {},
}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: An earlier failed flow with the same request (served by the ``facts_retry`` index).
RETRY_SQL = (
    "SELECT flow_id FROM facts WHERE request_hash=? AND failed=1 AND flow_id<>? "
    "AND created<=? ORDER BY created DESC LIMIT 1"
)


class SessionTracker:
    """Sessions and correlation of one data dir, kept in ``sessions.sqlite``."""

    def __init__(self, data_dir: Path, settings: Getter | None = None) -> None:
        self.db = SessionDB(data_dir)
        self._get: Getter = settings or DEFAULTS.__getitem__
        self.errors: list[str] = []
        self.notifications: list[str] = []
        self.on_notify: list[Callable[[str], None]] = []
        # on_membership(ids, fresh): the sessions of ``ids`` changed; ``fresh`` maps the ones
        # just placed by puts to the sessions their flow now carries.
        self.on_membership: list[Callable[[set[str], dict[str, str | None]], None]] = []
        self._queue: list[tuple[LLMFlow, bool, bool]] = []  # puts noted, not applied yet
        self._queue_lock = threading.Lock()
        self._applying = False
        self.defer_s = DEFER_S
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        # flow id -> sessions (comma-joined) and (thread_id, turn, parent_id), for enrich().
        self.overlay = Overlay()
        self._data_version = -1
        self.db.before_use = self._before_read
        self.reload()

    def setting(self, name: str) -> Any:
        """A setting's current value (defaults when no configuration is attached)."""
        try:
            return self._get(name)
        except (KeyError, AttributeError, ValueError):
            return DEFAULTS[name]

    def reload_if_changed(self) -> None:
        """Re-read the caches if another process (a detached capture) wrote the file since."""
        version = int(self.db.rows("PRAGMA data_version")[0][0])
        if version != self._data_version:
            self.reload()

    def reload(self) -> None:
        """Re-read the enrich caches from the file (after another process changed it)."""
        # Under the lock throughout: puts applied meanwhile (the tracker thread) would be lost.
        with self.db.lock:
            self._data_version = int(self.db.rows("PRAGMA data_version")[0][0])
            members: dict[str, list[str]] = {}
            for r in self.db.rows("SELECT flow_id, session FROM members ORDER BY rowid"):
                members.setdefault(r["flow_id"], []).append(r["session"])
            links = {
                r["flow_id"]: (r["thread_id"], r["turn"], r["parent_id"])
                for r in self.db.rows("SELECT flow_id, thread_id, turn, parent_id FROM facts")
            }
            self.overlay.set({k: ",".join(v) for k, v in members.items()}, links)

    def refresh_members(self, flow_ids: set[str], fresh: dict[str, LLMFlow] | None = None) -> None:
        """Re-read the memberships of these flows (after a batch of puts, or an edit) and tell
        listeners. ``fresh`` are the flows just placed by puts: each carries its sessions from
        now on (unless it came with one), and listeners are told which they are, as the store
        reports those flows itself (a put adds them)."""
        if not flow_ids:
            return
        marks = ",".join("?" * len(flow_ids))
        found: dict[str, list[str]] = {f: [] for f in flow_ids}
        for r in self.db.rows(
            f"SELECT flow_id, session FROM members WHERE flow_id IN ({marks}) ORDER BY rowid",
            sorted(flow_ids),
        ):
            found[r["flow_id"]].append(r["session"])
        sessions = {f: ",".join(names) for f, names in found.items()}
        self.overlay.update(sessions=sessions)
        shown: dict[str, str | None] = {}
        for fid, flow in (fresh or {}).items():
            if not flow.metadata.session:
                # The flow carries its sessions too, so a rule or filter evaluated on the flow
                # alone (intercept rules, per-flow matching) sees them; the file stays the truth.
                flow.metadata.session = sessions.get(fid) or None
            shown[fid] = flow.metadata.session
        for cb in list(self.on_membership):
            try:
                cb(set(flow_ids), shown)
            except Exception:
                self.errors.append(traceback.format_exc())

    # ---- the store's hooks -------------------------------------------------------------------

    def on_put(self, flow: LLMFlow, first: bool, completed: bool) -> None:
        """Called by the store for every put: only notes the flow (cheap; never raises).

        The store then calls :meth:`end_batch`: after a lone put, which is applied at once
        (before the put returns, as an intercepted flow must carry its sessions when rules
        match it); after a batch of puts (a recorder batch, an import), whose puts the tracker
        thread applies within ``defer_s``, together with the batches that come meanwhile, in one
        transaction. Every read or edit of the sessions file first applies what is noted, so no
        reader sees a put not yet applied.
        """
        if first or completed or self._missing(flow.id):
            with self._queue_lock:
                self._queue.append((flow, first, completed))

    def _missing(self, flow_id: str) -> bool:
        return flow_id not in self.overlay.links

    def end_batch(self, batched: bool = False) -> None:
        """The store's batch hook: apply the noted puts now, or (``batched``) soon, on the
        tracker thread. Never raises."""
        if not self._queue:
            return
        if batched and self.defer_s > 0 and not self._closed:
            if self._thread is None:
                with self._queue_lock:
                    if self._thread is None:
                        self._thread = threading.Thread(
                            target=self._run, name="flowbook-sessions", daemon=True
                        )
                        self._thread.start()
            self._wake.set()
            return
        self.apply_noted()

    def _run(self) -> None:
        # ``_closed`` is checked after every step that can block: close() may come while this
        # waits out the deferral, and the clear() below would then swallow its wake-up.
        while not self._closed:
            self._wake.wait()
            if self._closed:
                return
            self._stop.wait(self.defer_s)  # let the puts of the next batches join these
            self._wake.clear()
            self.apply_noted()

    def apply_noted(self) -> None:
        """Apply the puts noted so far, in one transaction; never raises."""
        if not self._queue:
            return
        with self.db.lock:
            if self._applying:
                return  # a read made by the puts being applied
            self._applying = True
            try:
                with self._queue_lock:
                    items, self._queue = self._queue, []
                if items:
                    self._apply(items)
            except Exception:
                self.errors.append(traceback.format_exc())
            finally:
                self._applying = False

    def _before_read(self) -> None:
        # The sessions file's hook: every read and edit first applies the puts noted so far.
        if self._queue and not self._applying:
            self.apply_noted()

    def _apply(self, items: list[tuple[LLMFlow, bool, bool]]) -> None:
        settings = _BatchSettings(self)
        done = _Applied()
        try:
            self._apply_tx(items, settings, done)
        except Exception:
            # A put failed and the batch's transaction was rolled back: apply the puts one by
            # one, so only the failing put is lost (as when every put had a transaction).
            for item in items:
                try:
                    self._apply_tx([item], settings, done)
                except Exception:
                    self.errors.append(traceback.format_exc())
        if done.links:
            self.overlay.update(links=done.links)
        if done.seen:
            self.refresh_members(set(done.seen), fresh=done.seen)
        for text in done.alerts:
            self.notifications.append(text)
            for cb in list(self.on_notify):
                try:
                    cb(text)
                except Exception:
                    self.errors.append(traceback.format_exc())

    def _apply_tx(
        self, items: list[tuple[LLMFlow, bool, bool]], settings: _BatchSettings, done: _Applied
    ) -> None:
        """Apply puts in one transaction; ``done`` learns what they did once it is committed."""
        new = _Applied()
        with self.db.tx() as c:
            active = self._active_rows(c)
            for flow, first, completed in items:
                fid = flow.id
                # Known: it has facts (and maybe a placement) already.
                known = fid in new.seen or fid in done.seen or not self._missing(fid)
                if first or not known:
                    new.links[fid] = self._first_sight(c, flow, active, settings, known)
                    new.seen[fid] = flow
                if completed:
                    text = self._completed(c, flow, settings)
                    if text is not None:
                        new.alerts.append(text)
        done.links.update(new.links)
        done.seen.update(new.seen)
        done.alerts.extend(new.alerts)

    def active_sessions(self, at: float | None = None) -> list[str]:
        """Sessions opened with ``fb.session(...)`` that were open at time ``at`` (default: now).

        The recorder may apply a flow after the block has closed (it works behind the proxy),
        so membership goes by the flow's creation time, not by when the tracker sees it. A
        session left open by a process that died is closed at the time it is found dead.
        """
        when = now() if at is None else at
        with self.db.lock:
            rows = self.db.rows("SELECT name, pid, token, opened, closed FROM active")
            if any(r["closed"] is None and not _pid_alive(int(r["pid"])) for r in rows):
                with self.db.tx() as c:  # close the dead ones
                    return _open_at(self._active_rows(c), when)
            return _open_at([(r["name"], r["opened"], r["closed"]) for r in rows], when)

    def _active_rows(self, c: Any) -> list[tuple[str, float, float | None]]:
        """(name, opened, closed) of every ``fb.session`` context, read once per batch; the
        contexts of dead processes are closed first (inside the caller's transaction)."""
        rows = c.execute("SELECT name, pid, token, opened, closed FROM active").fetchall()
        out = []
        for r in rows:
            closed = r["closed"]
            if closed is None and not _pid_alive(int(r["pid"])):
                closed = now()
                c.execute("UPDATE active SET closed=? WHERE token=?", (closed, r["token"]))
            out.append((r["name"], r["opened"], closed))
        return out

    def _first_sight(
        self,
        c: Any,
        flow: LLMFlow,
        active: list[tuple[str, float, float | None]],
        settings: _BatchSettings,
        known: bool,
    ) -> tuple[str, int, str | None]:
        facts = corr.request_facts(flow)
        created = flow.timestamps.created
        ident = corr.identity(flow)
        parent, thread_id, turn, prefix_len = self._find_parent(flow, facts, ident)
        retry_of = self._find_retry(flow.id, facts.request_hash, created)
        context = _open_at(active, created)
        c.execute(
            # A flow seen again (a stored flow put anew) keeps its placement, correction
            # and notification state: only the request-side facts are refreshed.
            "INSERT INTO facts (flow_id, created, conversation, request_hash, "
            "prompt_hash, model, thread_id, turn, parent_id, retry_of, identity) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(flow_id) DO UPDATE SET "
            "created=excluded.created, conversation=excluded.conversation, "
            "request_hash=excluded.request_hash, prompt_hash=excluded.prompt_hash, "
            "model=excluded.model, thread_id=excluded.thread_id, turn=excluded.turn, "
            "parent_id=excluded.parent_id, retry_of=excluded.retry_of, "
            "identity=excluded.identity",
            (
                flow.id,
                created,
                facts.conversation,
                facts.request_hash,
                facts.prompt_hash,
                flow.model,
                thread_id,
                turn,
                parent,
                retry_of,
                ident.key_text,
            ),
        )
        self._link_tool_results(c, flow.id, parent, facts, prefix_len)
        for name in context:
            ensure_session(c, name, "manual", created)
            c.execute(
                "INSERT OR IGNORE INTO members (session, flow_id, how, reason) VALUES (?,?,?,?)",
                (name, flow.id, "context", f"captured inside fb.session({name!r})"),
            )
        if settings.auto_sessions and flow.request.messages:
            place(c, flow.id, ident, parent, created, settings.gap_s, known=known)
        return (thread_id, turn, parent)

    def _find_parent(
        self, flow: LLMFlow, facts: corr.RequestFacts, ident: corr.Identity
    ) -> tuple[str | None, str, int, int]:
        """(parent id, thread id, turn, length of the prefix the parent's request covered).

        Several earlier flows can share the prefix (retries, the same prompt to several models,
        two agents starting alike). The parent is the one whose answer is the assistant message
        we resend: same tool call ids when the provider has ids, else the same text and tool
        names; then the same client identity, the same model, not failed, the latest.
        """
        msgs = flow.request.messages
        # Every prefix that ends just before an assistant message, longest first; one query.
        spots = [i for i in range(len(msgs) - 1, 0, -1) if msgs[i].role == "assistant"]
        if not spots:
            return None, flow.id, 1, 0
        marks = ",".join("?" * len(spots))
        found: dict[str, list[Any]] = {}
        for r in self.db.rows(
            "SELECT flow_id, answer_sig, failed, thread_id, turn, created, identity, model, "
            f"conversation FROM facts WHERE conversation IN ({marks}) AND flow_id<>? "
            "AND created<=? ORDER BY created DESC",
            [*(facts.prefixes[i] for i in spots), flow.id, flow.timestamps.created],
        ):
            found.setdefault(r["conversation"], []).append(r)
        for i in spots:
            rows = found.get(facts.prefixes[i])
            if not rows:
                continue
            sig = corr.message_sig(msgs[i])
            sent_ids: set[str] = {p.id for p in msgs[i].parts if p.type == "tool_call" and p.id}
            called = self._call_ids([r["flow_id"] for r in rows]) if sent_ids else {}

            def rank(
                r: Any,
                sig: str = sig,
                sent_ids: set[str] = sent_ids,
                called: dict[str, set[str]] = called,
            ) -> tuple[int, int, int, int, int, float]:
                ids = called.get(r["flow_id"], set())
                id_match = (1 if ids == sent_ids else -1) if sent_ids and ids else 0
                return (
                    id_match,
                    int(r["answer_sig"] == sig),
                    int(r["identity"] == ident.key_text),
                    int(r["model"] == flow.model),
                    int(not r["failed"]),
                    r["created"] or 0.0,
                )

            best = max(rows, key=rank)
            return best["flow_id"], best["thread_id"] or best["flow_id"], (best["turn"] or 1) + 1, i
        return None, flow.id, 1, 0

    def _call_ids(self, flow_ids: list[str]) -> dict[str, set[str]]:
        marks = ",".join("?" * len(flow_ids))
        out: dict[str, set[str]] = {}
        for r in self.db.rows(
            f"SELECT flow_id, call_id FROM tool_calls WHERE flow_id IN ({marks}) "
            "AND call_id IS NOT NULL",
            flow_ids,
        ):
            out.setdefault(r[0], set()).add(r[1])
        return out

    def _find_retry(self, flow_id: str, request_hash: str, created: float) -> str | None:
        row = self.db.one(RETRY_SQL, (request_hash, flow_id, created))
        return row["flow_id"] if row else None

    def _link_tool_results(
        self, c: Any, flow_id: str, parent: str | None, facts: corr.RequestFacts, prefix_len: int
    ) -> None:
        # Only results after what the parent already sent are new answers; resent ones are not.
        c.execute("DELETE FROM chains WHERE flow_id=?", (flow_id,))
        for ref in facts.results:
            if ref.message_index < prefix_len:
                continue
            answers, how = None, ""
            if ref.call_id:
                row = c.execute(
                    "SELECT flow_id, name FROM tool_calls WHERE call_id=? AND flow_id<>? "
                    "ORDER BY rowid DESC LIMIT 1",
                    (ref.call_id, flow_id),
                ).fetchone()
                if row:
                    answers, how = row[0], "id"
                    # OpenAI's tool messages carry no tool name: take the call's.
                    ref = corr.ToolRef(ref.call_id, ref.name or row[1], ref.message_index)
            if answers is None and parent is not None and ref.name:
                row = c.execute(
                    "SELECT flow_id FROM tool_calls WHERE flow_id=? AND name=? LIMIT 1",
                    (parent, ref.name),
                ).fetchone()
                if row:
                    answers, how = row[0], "name"
            if answers is not None:
                c.execute(
                    "INSERT INTO chains (flow_id, answers, call_id, name, matched_by) "
                    "VALUES (?,?,?,?,?)",
                    (flow_id, answers, ref.call_id, ref.name, how),
                )

    def _completed(self, c: Any, flow: LLMFlow, settings: _BatchSettings) -> str | None:
        """Record the answer, failure and alerts (inside the caller's transaction); returns the
        notification to send, if any."""
        from flowbook.schema import summary_row

        calls = corr.tool_calls_made(flow)
        failed = corr.failed(flow)
        row = summary_row(flow)
        if settings.price_overrides and flow.usage is not None:
            from flowbook.analysis.pricing import cost_usd

            row["cost_usd"] = cost_usd(flow.provider, flow.model, flow.usage)
        thresholds = settings.thresholds
        reasons = row_alerts(row, thresholds)
        prev = c.execute("SELECT notified FROM facts WHERE flow_id=?", (flow.id,)).fetchone()
        notify = bool(reasons) and not (prev and prev[0])
        c.execute(
            "UPDATE facts SET answer_sig=?, failed=?, completed=1, alert=?, "
            "notified=MAX(notified, ?) WHERE flow_id=?",
            (corr.answer_sig(flow), int(failed), ",".join(reasons) or None, int(notify), flow.id),
        )
        c.execute("DELETE FROM tool_calls WHERE flow_id=?", (flow.id,))
        if calls:
            c.executemany(
                "INSERT INTO tool_calls (flow_id, call_id, name) VALUES (?,?,?)",
                [(flow.id, t.call_id, t.name) for t in calls],
            )
        if not (notify and settings.notification_enabled):
            return None
        return f"flowbook alert: flow {flow.id} ({flow.model or '?'}): " + describe(
            reasons, row, thresholds
        )

    # ---- the summary frame -------------------------------------------------------------------

    def enrich(self, df: pd.DataFrame) -> pd.DataFrame:
        """Fill ``session``, ``thread_id``, ``turn``, ``parent_id``, ``alert``; apply price
        overrides to ``cost_usd``. Returns a new frame (the input is not modified)."""
        if df.empty:
            return df
        self.reload_if_changed()
        overrides = bool(self.setting("price_overrides"))
        return self.overlay.apply(df, Thresholds.from_settings(self.setting), overrides)

    def close(self) -> None:
        """Stop the tracker thread, apply what is noted, close the sessions file."""
        self._closed = True
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.apply_noted()
        self.db.close()


class _Applied:
    """What a batch of puts did: links and placements to publish, alerts to send."""

    def __init__(self) -> None:
        self.links: dict[str, tuple[str | None, int | None, str | None]] = {}
        self.seen: dict[str, LLMFlow] = {}  # flows placed
        self.alerts: list[str] = []


class _BatchSettings:
    """The settings the tracker reads, read once per batch."""

    def __init__(self, tracker: SessionTracker) -> None:
        get = tracker.setting
        self.auto_sessions = bool(get("auto_sessions"))
        self.gap_s = float(get("auto_session_idle_minutes")) * 60
        self.price_overrides = bool(get("price_overrides"))
        self.notification_enabled = bool(get("notification_enabled"))
        self.thresholds = Thresholds.from_settings(get)


def _open_at(active: list[tuple[str, float, float | None]], when: float | None) -> list[str]:
    """Names of the contexts open at ``when`` (each once, in the order they were opened)."""
    if when is None:
        return []
    return list(
        dict.fromkeys(
            n
            for n, opened, closed in active
            if opened <= when and (closed is None or closed >= when)
        )
    )


def now() -> float:
    """The clock (one place, so the tracker's reasons and the API agree)."""
    return time.time()
