"""The store of a capture running in another process, behind the same façade as ``Store``.

An attached kernel (``fb.attach()``) gets a ``RemoteStore`` as its workspace's store, so
``fb.flows()``, ``fb.get_flow()``, exports and widgets do not know the difference:

- ``query`` runs in the capture process, which holds the live rows (flows streaming right now,
  with their growing token counts) and the file store; the summary frame comes back as an Arrow
  IPC stream, dtypes intact. One round trip, no second reader of the SQLite index;
- ``get`` and ``iter_flows`` fetch full flows as ``LLMFlow.to_dict()`` JSON;
- ``changed`` is a local ``ChangeFeed`` (the same coalescing psygnal signal), fed by a thread
  that long-polls the capture's numbered change log. It remembers the last sequence number it
  saw; after a dropped connection it asks for what followed and gets it replayed, and when the
  capture no longer keeps that far back (or it is another capture), it reports every id it
  knows as updated so listeners re-read.

``ControlClient`` is the transport (``flowbook.capture.control`` is the server): loopback HTTP,
the bearer token from ``<data_dir>/capture.token``, never through a proxy from the environment.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pyarrow as pa

from flowbook.filters import parse
from flowbook.filters.errors import FilterError
from flowbook.model import FlowAnnotations, LLMFlow
from flowbook.store.changes import ADDED, REMOVED, UPDATED, ChangeFeed
from flowbook.store.facade import Store
from flowbook.store.query import check_query_args

log = logging.getLogger(__name__)

TOKEN_FILE = "capture.token"
POLL_WAIT_S = 4.0
_ERRORS: dict[str, type[Exception]] = {
    "ValueError": ValueError,
    "KeyError": KeyError,
    "TypeError": TypeError,
    "RuntimeError": RuntimeError,
    "FileNotFoundError": FileNotFoundError,
    "PermissionError": PermissionError,
    "FilterError": FilterError,
}


class CaptureGone(ConnectionError):
    """The capture process does not answer (stopped, or not reachable)."""


class ControlClient:
    """Calls into a capture's control channel (``flowbook.capture.control``)."""

    def __init__(self, port: int, token: str, *, host: str = "127.0.0.1") -> None:
        self.base = f"http://{host}:{port}"
        self.client_id = uuid.uuid4().hex
        headers = {"Authorization": f"Bearer {token}", "X-Flowbook-Client": self.client_id}
        # trust_env=False: a kernel with HTTPS_PROXY pointing at flowbook must not loop through it.
        self._http = httpx.Client(
            base_url=self.base, headers=headers, trust_env=False, timeout=60.0
        )
        self._poll = httpx.Client(
            base_url=self.base, headers=headers, trust_env=False, timeout=POLL_WAIT_S + 30.0
        )
        # Errors a custom exception type of flowbook raised on the other side come back as it.
        self.errors: dict[str, type[Exception]] = dict(_ERRORS)
        self.closed = False

    @classmethod
    def for_data_dir(cls, data_dir: Path, port: int) -> ControlClient:
        try:
            token = (data_dir / TOKEN_FILE).read_text("utf-8").strip()
        except OSError as exc:
            raise CaptureGone(f"cannot read the capture's token in {data_dir}: {exc}") from None
        return cls(port, token)

    def _raise(self, r: httpx.Response) -> None:
        try:
            err = r.json()["error"]
            kind, msg = str(err["type"]), str(err["message"])
        except (ValueError, KeyError, TypeError):
            raise CaptureGone(f"capture answered {r.status_code}: {r.text[:200]}") from None
        exc = self.errors.get(kind, RuntimeError)
        raise exc(msg if exc is not RuntimeError else f"{kind}: {msg}")

    def call(self, method: str, **args: Any) -> Any:
        """Call ``method`` in the capture process; its exception is raised here."""
        if self.closed:
            raise CaptureGone("detached from the capture (fb.attach() to watch it again)")
        try:
            r = self._http.post("/v1/call", json={"method": method, "args": args})
        except httpx.HTTPError as exc:
            raise CaptureGone(f"the capture at {self.base} does not answer: {exc}") from None
        if r.status_code != 200:
            self._raise(r)
        return r.json()["result"]

    def query(self, **args: Any) -> pd.DataFrame:
        try:
            r = self._http.post("/v1/query", json=args)
        except httpx.HTTPError as exc:
            raise CaptureGone(f"the capture at {self.base} does not answer: {exc}") from None
        if r.status_code != 200:
            self._raise(r)
        df = pa.ipc.open_stream(r.content).read_all().to_pandas()
        df.attrs["total"] = int(r.headers.get("X-Flowbook-Total", len(df)))
        return df

    def changes(self, since: int, wait: float) -> dict[str, Any]:
        try:
            r = self._poll.get("/v1/changes", params={"since": since, "wait": wait})
        except httpx.HTTPError as exc:
            raise CaptureGone(str(exc)) from None
        if r.status_code != 200:
            self._raise(r)
        return dict(r.json())

    def close(self) -> None:
        self.closed = True
        self._http.close()
        self._poll.close()


class ChangePoller:
    """Follows the capture's change log from ``seq`` on; hands each change to ``on_change``."""

    def __init__(
        self,
        client: ControlClient,
        on_change: Callable[[dict[str, Any]], None],
        on_reset: Callable[[], None],
        *,
        instance: str,
        seq: int,
    ) -> None:
        self.client = client
        self.instance = instance
        self.seq = seq  # the last change seen: a reconnect resumes after it
        self.connected = True
        self._on_change, self._on_reset = on_change, on_reset
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flowbook-attach", daemon=True)
        self._thread.start()

    def poll_once(self, wait: float = 0.0) -> None:
        """Fetch and apply what happened after ``seq`` (the thread does this continuously)."""
        got = self.client.changes(self.seq, wait)
        if got["instance"] != self.instance or got["reset"]:
            self.instance = str(got["instance"])
            self.seq = int(got["seq"])
            self._on_reset()
            return
        for entry in got["changes"]:
            self._on_change(entry)
            self.seq = int(entry["seq"])

    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                self.poll_once(POLL_WAIT_S)
                self.connected, backoff = True, 0.2
            except CaptureGone:
                self.connected = False
                self._stop.wait(backoff)  # the capture may be restarting: keep asking, gently
                backoff = min(backoff * 2, 5.0)
            except Exception:  # a listener's bug must not end the feed
                log.exception("applying a change from the capture failed")

    def close(self) -> None:
        self._stop.set()


class RemoteRows:
    """``store.memory`` of an attached kernel: the summary rows the capture sent along with its
    changes (what the widgets' live refresh asks for), never a round trip per row.

    ``row(id)`` answers for every flow that changed since this kernel attached (None for the
    others, which the widgets then take from the frame, as in-kernel for flows not in memory);
    ``in_memory`` is False (no full flow is held here: a filter checks rows through the frame).
    """

    def __init__(self, store: RemoteStore) -> None:
        self._store = store
        self._rows: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def update(self, rows: dict[str, dict[str, Any]], removed: Iterable[str]) -> None:
        with self._lock:
            self._rows.update(rows)
            for fid in removed:
                self._rows.pop(fid, None)

    def clear(self) -> list[str]:
        with self._lock:
            ids = list(self._rows)
            self._rows.clear()
        return ids

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._rows)

    def row(self, flow_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._rows.get(flow_id)
        return None if row is None else dict(row)

    def in_memory(self, flow_id: str) -> bool:
        return False

    def get(self, flow_id: str) -> LLMFlow | None:
        return self._store.get(flow_id)

    def __contains__(self, flow_id: object) -> bool:
        with self._lock:
            return flow_id in self._rows


class RemoteStore(Store):
    """``Store``'s reading and annotating API, answered by a capture process.

    The recorder-side methods (``put``, ``touch``) are the capture's own; calling them here
    raises.
    """

    def __init__(self, data_dir: Path, client: ControlClient, *, instance: str, seq: int) -> None:
        # Deliberately not Store.__init__: nothing local to open, no file store, no writer.
        self.data_dir = Path(data_dir)
        self.client = client
        self._feed = ChangeFeed()
        self.rows = RemoteRows(self)
        self.memory = self.rows  # type: ignore[assignment]  # what the widgets read rows from
        self._intercept_listeners: list[Callable[[dict[str, Any]], None]] = []
        self.poller = ChangePoller(client, self._apply, self._reset, instance=instance, seq=seq)

    # ---- the change feed ---------------------------------------------------------------------

    @property
    def changed(self) -> ChangeFeed:
        """psygnal signal: one ``StoreChange`` per interval (≤ 4/s), as in-kernel."""
        return self._feed

    @property
    def last_seq(self) -> int:
        """Sequence number of the last change of the capture seen here."""
        return self.poller.seq

    def on_intercept_change(self, fn: Callable[[dict[str, Any]], None]) -> None:
        """Call ``fn(entry)`` when the capture's intercept queue or settings change (``entry``
        holds ``notice: [kind, flow_id, message]`` when the capture announced something)."""
        self._intercept_listeners.append(fn)

    def _apply(self, entry: dict[str, Any]) -> None:
        if entry.get("intercept"):
            for fn in list(self._intercept_listeners):
                fn(entry)
            return
        # Rows first: a listener woken by the feed reads them at once.
        self.rows.update(entry.get("rows") or {}, entry.get(REMOVED) or [])
        for kind in (ADDED, UPDATED, REMOVED):
            ids = entry.get(kind) or []
            if ids:
                self._feed.record(kind, list(ids))

    def _reset(self) -> None:
        # Too far behind to replay: every id may have changed. Listeners re-read what they show.
        try:
            ids = set(self.client.call("ids", include_history=False))
        except CaptureGone:
            return
        gone = set(self.rows.clear()) - ids  # rows held here may be stale: drop them all
        if ids:
            self._feed.record(UPDATED, ids)
        if gone:
            self._feed.record(REMOVED, gone)
        for fn in list(self._intercept_listeners):
            fn({"intercept": True})

    # ---- recorder side: not here -------------------------------------------------------------

    def put(self, flow: LLMFlow) -> None:
        raise RuntimeError("an attached kernel reads the capture's store; it does not record")

    def touch(self, flow: LLMFlow) -> None:
        raise RuntimeError("an attached kernel reads the capture's store; it does not record")

    def mark_capturing(self) -> None:
        pass

    @property
    def disk_if_open(self) -> None:  # type: ignore[override]
        """The file store is the capture process's; none is open here."""
        return None

    # ---- reading -------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.client.call("len"))

    def __contains__(self, flow_id: object) -> bool:
        return isinstance(flow_id, str) and bool(self.client.call("contains", id=flow_id))

    def in_memory(self, flow_id: str) -> bool:
        return bool(self.client.call("in_memory", id=flow_id))

    def in_progress_ids(self) -> list[str]:
        return list(self.client.call("in_progress_ids"))

    def frame(self, include_history: bool = False) -> pd.DataFrame:
        return self.client.query(include_history=include_history)

    def query(
        self,
        filter: str | None = None,
        *,
        sort_by: str = "timestamp",
        sort_order: str = "desc",
        page: int | None = None,
        page_size: int = 50,
        include_history: bool = False,
    ) -> pd.DataFrame:
        """As ``Store.query``, run by the capture process (which settles its recorder first)."""
        check_query_args(sort_by, sort_order, page, page_size)
        if filter:
            parse(filter)  # a bad filter raises here, with its column, before any round trip
        return self.client.query(
            filter=filter,
            sort_by=sort_by,
            sort_order=sort_order,
            page=page,
            page_size=page_size,
            include_history=include_history,
        )

    def get(self, flow_id: str) -> LLMFlow | None:
        d = self.client.call("get", id=flow_id)
        return None if d is None else LLMFlow.from_dict(d)

    def get_flows(self, ids: Iterable[str]) -> Iterator[LLMFlow]:
        for batch in self.iter_flows(list(ids)):
            yield from batch

    def iter_flows(
        self,
        ids: Iterable[str] | None = None,
        *,
        include_history: bool = False,
        batch_size: int = 256,
    ) -> Iterator[list[LLMFlow]]:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        wanted = (
            list(ids)
            if ids is not None
            else list(self.client.call("ids", include_history=include_history))
        )
        for i in range(0, len(wanted), batch_size):
            got = self.client.call("get_many", ids=wanted[i : i + batch_size])
            if got:
                yield [LLMFlow.from_dict(d) for d in got]

    def ids_matching(self, term: Any) -> set[str] | None:
        return None  # queries run in the capture process, which answers text terms itself

    # ---- writing annotations, removing -------------------------------------------------------

    def annotate(
        self,
        flow_id: str,
        bookmarked: bool | None = None,
        add_tags: list[str] | None = None,
        remove_tags: list[str] | None = None,
        comment: str | None = None,
    ) -> FlowAnnotations:
        d = self.client.call(
            "annotate",
            id=flow_id,
            bookmarked=bookmarked,
            add_tags=add_tags,
            remove_tags=remove_tags,
            comment=comment,
        )
        return FlowAnnotations.from_dict(d)

    def remove(self, ids: Iterable[str]) -> set[str]:
        return set(self.client.call("remove", ids=list(ids)))

    def clear(self) -> int:
        return int(self.client.call("clear"))

    def load(self, path: Path) -> list[str]:
        return list(self.client.call("load", path=str(Path(path).resolve())))

    def apply_retention(self, retention_days: float) -> int:
        return int(self.client.call("apply_retention", days=retention_days))

    def wait_idle(self, timeout: float = 10.0) -> bool:
        return bool(self.client.call("wait_idle", timeout=timeout))

    def close(self) -> None:
        """Stop following the capture (the capture itself keeps running)."""
        self.poller.close()
        self._feed.close()
        self.client.close()
