"""Table views: one (filter, sort) over the store, kept in order as flows arrive and change.

A view is built once from the summary DataFrame (vectorised: filter mask, sort keys, one
lexsort) and then maintained incrementally: each coalesced store change brings a few ids, whose
fresh summary rows are filtered and merged into a :class:`~flowbook.ui.ordering.SortedRefs`
(``searchsorted`` into one chunk). A live update therefore costs O(changed), and a page costs
O(page): nothing on those paths touches every row, so the table refreshes as fast with a million
flows stored as with a thousand.

Rows are identified by a *ref*: the row number in the snapshot frame the view was built from, or
a number past its end for flows that arrived later.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from flowbook.filters import Filter, parse
from flowbook.schema import COLUMNS, frame_from_rows, is_final_state
from flowbook.ui.ordering import SortedRefs, StringCodes

if TYPE_CHECKING:
    from flowbook.ui.source import StoreSource

# What a table row shows, in the order of the page payload.
PAGE_COLUMNS = [
    "id", "timestamp", "provider", "api", "model", "state", "status_code", "latency_ms",
    "ttft_ms", "input_tokens", "output_tokens", "cost_usd", "preview", "bookmarked", "stream",
    "error_type",
]  # fmt: skip
PAGE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("time_ms", pa.float64()),
        ("provider", pa.string()),
        ("api", pa.string()),
        ("model", pa.string()),
        ("state", pa.string()),
        ("status", pa.int32()),
        ("latency_ms", pa.float64()),
        ("ttft_ms", pa.float64()),
        ("tokens_in", pa.float64()),
        ("tokens_out", pa.float64()),
        ("cost_usd", pa.float64()),
        ("preview", pa.string()),
        ("bookmarked", pa.bool_()),
        ("stream", pa.bool_()),
        ("error", pa.string()),
    ]
)
STRING_COLUMNS = {c for c, t in COLUMNS.items() if t.startswith("string")}
# A huge view being rebuilt costs O(N); a batch this large relative to the view is cheaper so.
REBUILD_SHARE = 0.25


class TableView:
    """The rows of one (filter, sort) in order; ``apply`` merges changes, ``page`` reads them."""

    def __init__(
        self,
        source: StoreSource,
        filter_expr: str = "",
        sort_by: str = "timestamp",
        sort_order: str = "desc",
        include_history: bool = False,
    ) -> None:
        if sort_by not in COLUMNS:
            raise ValueError(f"cannot sort by {sort_by!r}: columns are {', '.join(COLUMNS)}")
        if sort_order not in ("asc", "desc"):
            raise ValueError(f"sort_order must be 'asc' or 'desc', got {sort_order!r}")
        self.source = source
        self.filter_expr = filter_expr.strip()
        # Raises FilterError (with its position) before any work is done.
        self.filter: Filter | None = parse(self.filter_expr) if self.filter_expr else None
        self.sort_by, self.sort_order = sort_by, sort_order
        self.include_history = include_history
        self.revision = 0
        self._build()

    # ---- building ----------------------------------------------------------------------------

    def _build(self) -> None:
        # The frame is used as it is (no filtered copy: copying a million rows of Arrow strings
        # costs seconds); base refs map to frame rows through ``_sel`` (None: all rows).
        df = self.source.frame(self.include_history)
        sel: np.ndarray | None = None
        if self.filter is not None and len(df):
            mask = self.filter.mask(df, source=self.source.flow_source(self.include_history))
            sel = np.flatnonzero(mask.to_numpy(dtype=bool, na_value=False))
        self._frame = df
        self._sel = sel
        n = len(df) if sel is None else len(sel)
        self._n_base = n
        self._page_base = RowTaker(page_base(df))
        self._base_ids = pa.array(df["id"].array) if len(df) else pa.array([], pa.string())
        self._ids_set: pa.Array | None = None  # one-chunk copy, made when first needed
        self._codes = (
            StringCodes(pa.array(df[self.sort_by].array))
            if self.sort_by in STRING_COLUMNS
            else None
        )
        keys = self._column_keys(df[self.sort_by]) if len(df) else np.empty(0)
        if sel is not None:
            keys = keys[sel]
        # Current key of every ref (grows as flows arrive).
        self._keys = np.empty(max(16, n * 2 if n < 1024 else n + n // 4), dtype=np.float64)
        self._keys[:n] = keys
        self._n_refs = n
        refs = np.arange(n, dtype=np.int64)
        self._sorted = SortedRefs(keys, self._ties(refs), refs)
        # ref -> id for flows that came after the build; id -> ref for those and for base rows
        # whose id we know cheaply (still in progress at build time, or shown on a page).
        self._extra_ids: dict[int, str] = {}
        self._ref_of: dict[str, int] = {}
        self._absent: set[int] = set()  # refs currently not in the view (filtered out)
        self._fresh: set[int] = set()  # base refs whose row changed since the build
        self._newest_ts = -math.inf
        if n:
            final = pc.is_in(pa.array(df["state"].array), value_set=_FINAL_STATES)
            live_rows = np.flatnonzero(~pc.fill_null(final, False).to_numpy(zero_copy_only=False))
            for row in live_rows.tolist():
                ref = self._ref_for_row(row)
                if ref is not None:
                    self._ref_of[str(self._base_ids[row].as_py())] = ref
            ts = df["timestamp"].astype("int64").to_numpy()
            ts_valid = ts[~df["timestamp"].isna().to_numpy()]
            if len(ts_valid):
                self._newest_ts = float(ts_valid.max()) / 1e9  # over all rows: a safe bound
        self.revision += 1

    def _row_of(self, ref: int) -> int:
        """The frame row of a base ref."""
        return ref if self._sel is None else int(self._sel[ref])

    def _ref_for_row(self, row: int) -> int | None:
        """The base ref of a frame row, None if the filter left it out."""
        if self._sel is None:
            return row
        j = int(np.searchsorted(self._sel, row))
        return j if j < len(self._sel) and int(self._sel[j]) == row else None

    def _column_keys(self, column: pd.Series) -> np.ndarray:
        """Sort keys of a frame column: float64, ascending-sortable, NaN last."""
        if self._codes is not None:
            keys = self._codes.codes(pa.array(column.array))
        elif str(column.dtype).startswith("datetime"):
            keys = column.astype("int64").to_numpy().astype(np.float64)
            keys[column.isna().to_numpy()] = np.nan
        else:
            keys = column.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
        return self._finish_keys(keys)

    def _finish_keys(self, keys: np.ndarray) -> np.ndarray:
        keys = -keys if self.sort_order == "desc" else keys.copy()
        keys[np.isnan(keys)] = np.inf  # missing values last, both ways (as fb.flows())
        return keys

    def _row_key(self, row: dict[str, Any]) -> float:
        value = row.get(self.sort_by)
        if self._codes is not None:
            k = self._codes.code(None if value is None else str(value))
        elif value is None or (isinstance(value, float) and math.isnan(value)):
            k = math.nan
        elif self.sort_by == "timestamp":
            k = float(value) * 1e9  # epoch seconds in rows, ns in frames
        else:
            k = float(value)
        return float(self._finish_keys(np.array([k]))[0])

    def _ties(self, refs: np.ndarray) -> np.ndarray:
        # Equal keys: newest arrival first when descending, as a stable sort of arrival order.
        return -refs if self.sort_order == "desc" else refs

    # ---- reading -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._sorted)

    @property
    def frame(self) -> pd.DataFrame:
        """The summary frame the view was built from (all rows, before the filter)."""
        return self._frame

    def _id_of(self, ref: int) -> str:
        if ref >= self._n_base:
            return self._extra_ids[ref]
        return str(self._base_ids[self._row_of(ref)].as_py())

    def ids(self, offset: int, limit: int) -> list[str]:
        """Flow ids at view positions ``offset .. offset+limit-1``."""
        return [self._id_of(int(r)) for r in self._sorted.window(offset, limit)]

    def page(self, offset: int, limit: int) -> pa.Table:
        """The rows at positions ``offset ..`` as an Arrow table (``PAGE_SCHEMA``). O(limit)."""
        refs = [int(r) for r in self._sorted.window(max(0, offset), max(0, limit))]
        ids = [self._id_of(r) for r in refs]
        for fid, ref in zip(ids, refs, strict=True):
            self._ref_of.setdefault(fid, ref)  # a shown row is cheap to find when it changes
        live_ids = [fid for fid, r in zip(ids, refs, strict=True) if self._is_live_ref(r)]
        fresh = {r["id"]: r for r in self.source.rows(live_ids)} if live_ids else {}
        base_refs = [
            r for fid, r in zip(ids, refs, strict=True) if fid not in fresh and r < self._n_base
        ]
        taken = self._page_base.rows([self._row_of(r) for r in base_refs])
        base_rows = dict(zip(base_refs, taken, strict=True))
        rows = [
            page_row(fresh[fid]) if fid in fresh else base_rows[r]
            for fid, r in zip(ids, refs, strict=True)
            if fid in fresh or r in base_rows
        ]
        return pa.Table.from_pylist(rows, schema=PAGE_SCHEMA)

    def _is_live_ref(self, ref: int) -> bool:
        return ref >= self._n_base or ref in self._fresh

    def position(self, flow_id: str) -> int | None:
        """Where a flow sits in the view, if the view knows it cheaply (it was shown or is new)."""
        ref = self._ref_of.get(flow_id)
        if ref is None or ref in self._absent:
            return None
        return self._sorted.position(self._keys[ref], int(self._ties(np.array([ref]))[0]))

    # ---- changing ----------------------------------------------------------------------------

    def apply(
        self, changed: frozenset[str] | set[str], removed: frozenset[str] = frozenset()
    ) -> bool:
        """Merge store changes; True if the view's rows or order changed."""
        if removed:
            self._build()  # rare (retention, clear): rebuild
            return True
        if not changed:
            return False
        if len(changed) > max(1000, REBUILD_SHARE * len(self)):
            self._build()
            return True
        rows = self.source.rows(changed)
        if not rows:
            return False
        self._locate_unknown(rows)
        matches = self._matching(rows)
        touched = False
        for row, ok in zip(rows, matches, strict=True):
            touched |= self._merge(row, ok)
        if touched:
            self.revision += 1
        return touched

    def _locate_unknown(self, rows: list[dict[str, Any]]) -> None:
        # An id the view has no ref for is either new or an old base row changed (a bookmark
        # set from Python, say). Only an id created no later than the newest base row can be
        # the latter; those few are looked up in the base ids in one vectorised pass.
        maybe_old = [
            r["id"]
            for r in rows
            if r["id"] not in self._ref_of
            and r.get("timestamp") is not None
            and float(r["timestamp"]) <= self._newest_ts
        ]
        if not maybe_old or not len(self._base_ids):
            return
        if self._ids_set is None:
            ids = self._base_ids
            self._ids_set = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
        found = pc.index_in(pa.array(maybe_old, pa.string()), value_set=self._ids_set)
        for fid, idx in zip(maybe_old, found.to_pylist(), strict=True):
            ref = None if idx is None else self._ref_for_row(int(idx))
            if ref is not None:
                self._ref_of[fid] = ref
            # A row the filter left out is not in the view: it is merged like a new one.

    def _matching(self, rows: list[dict[str, Any]]) -> list[bool]:
        flt = self.filter
        if flt is None:
            return [True] * len(rows)
        # Flows in memory (new and live ones are) are matched one by one (microseconds, the
        # same answer as the vectorised mask); the rest go through a small frame.
        flows = self.source.memory_flows([r["id"] for r in rows])
        out: dict[str, bool] = {fid: flt.matches(f) for fid, f in flows.items()}
        rest = [r for r in rows if r["id"] not in out]
        if rest:
            df = frame_from_rows(rest)
            mask = flt.mask(df, source=self.source.flow_source(self.include_history))
            out.update(
                zip((r["id"] for r in rest), (bool(x) for x in mask.to_numpy()), strict=True)
            )
        return [out[r["id"]] for r in rows]

    def _merge(self, row: dict[str, Any], matches: bool) -> bool:
        fid = row["id"]
        ref = self._ref_of.get(fid)
        key = self._row_key(row)
        if ref is None:
            if not matches:
                return False
            ref = self._new_ref(fid)
        else:
            was_in = ref not in self._absent
            tie = int(self._ties(np.array([ref]))[0])
            if ref < self._n_base:
                self._fresh.add(ref)
            old = self._keys[ref]
            if was_in and matches and old == key:
                return True  # same place; its cells changed
            if was_in:
                self._sorted.remove(old, tie, ref)
            if not matches:
                self._absent.add(ref)
                return was_in
            self._absent.discard(ref)
        self._keys[ref] = key
        self._sorted.insert(key, int(self._ties(np.array([ref]))[0]), ref)
        return True

    def _new_ref(self, fid: str) -> int:
        ref = self._n_refs
        if ref >= len(self._keys):  # amortised O(1): grow by half
            grown = np.empty(len(self._keys) + len(self._keys) // 2 + 16, dtype=np.float64)
            grown[: len(self._keys)] = self._keys
            self._keys = grown
        self._n_refs += 1
        self._extra_ids[ref] = fid
        self._ref_of[fid] = ref
        return ref


_FINAL_STATES = pa.array(["completed", "error", "cancelled"])


_RENAME = {"status_code": "status", "input_tokens": "tokens_in", "output_tokens": "tokens_out",
           "error_type": "error"}  # fmt: skip


def page_row(row: dict[str, Any]) -> dict[str, Any]:
    """One store summary row (``timestamp`` in epoch seconds) as a page row."""
    out = {_RENAME.get(c, c): _clean(row.get(c)) for c in PAGE_COLUMNS if c != "timestamp"}
    ts = _clean(row.get("timestamp"))
    out["time_ms"] = None if ts is None else float(ts) * 1000.0
    out["bookmarked"] = bool(out["bookmarked"])
    out["stream"] = bool(out["stream"])
    return out


def page_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Summary rows (``timestamp`` in epoch seconds) as the compact page payload."""
    return pa.Table.from_pylist([page_row(r) for r in rows], schema=PAGE_SCHEMA)


def page_base(df: pd.DataFrame) -> pa.Table:
    """The page columns of a whole summary frame, as Arrow (once per view build, vectorised,
    zero-copy where Arrow allows; chunks are kept, see ``RowTaker``)."""
    if not len(df):
        return PAGE_SCHEMA.empty_table()
    ts = df["timestamp"]
    time_ms = ts.astype("int64").to_numpy() / 1e6
    cols: dict[str, Any] = {}
    for f in PAGE_SCHEMA:
        if f.name == "time_ms":
            arr = pa.array(time_ms, pa.float64(), mask=ts.isna().to_numpy())
        else:
            src = next(c for c in PAGE_COLUMNS if _RENAME.get(c, c) == f.name)
            arr = pa.array(df[src].array, from_pandas=True)
            if src == "cost_usd":  # NaN means unknown: null, shown blank (never $0)
                arr = pc.if_else(pc.is_nan(arr), pa.scalar(None, pa.float64()), arr)
            if arr.type != f.type:
                arr = arr.cast(f.type)
        cols[f.name] = arr
    return pa.table(cols, schema=PAGE_SCHEMA)


class RowTaker:
    """Rows of a (possibly many-chunk) Arrow table by position in O(rows + chunks).

    ``Table.take`` on chunked columns may concatenate every chunk first (O(N) per page), and
    combining the chunks once costs about a second at 1M rows; taking from each record batch
    instead touches only the rows asked for."""

    def __init__(self, table: pa.Table) -> None:
        self._batches = table.to_batches()
        self._schema = table.schema
        sizes = [b.num_rows for b in self._batches]
        self._starts = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)

    def rows(self, refs: list[int]) -> list[dict[str, Any]]:
        if not refs:
            return []
        idx = np.asarray(refs, dtype=np.int64)
        which = np.searchsorted(self._starts, idx, "right") - 1
        out: list[dict[str, Any] | None] = [None] * len(refs)
        for b in np.unique(which).tolist():
            sel = np.flatnonzero(which == b)
            local = pa.array(idx[sel] - self._starts[b], pa.int64())
            for pos, row in zip(
                sel.tolist(), self._batches[b].take(local).to_pylist(), strict=True
            ):
                out[pos] = row
        return [r for r in out if r is not None]


def _clean(v: Any) -> Any:
    # pandas NA/NaN and numpy scalars to plain Python (None for missing).
    if v is None or v is pd.NA:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def ipc_bytes(table: pa.Table) -> bytes:
    """An Arrow IPC stream (what @uwdata/flechette's ``tableFromIPC`` reads)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def is_live_state(state: str | None) -> bool:
    """Streaming / intercepted / pending rows: the ones the table marks as live."""
    return bool(state) and not is_final_state(str(state))


__all__ = ["PAGE_COLUMNS", "PAGE_SCHEMA", "TableView", "ipc_bytes", "page_table"]
