"""Order-keeping structures for table views: a chunked sorted index and string sort codes.

A table view over a million flows must take new rows and changed rows in time proportional to
the change, not to the view: ``SortedRefs`` keeps row references sorted by a float key in numpy
chunks of about a thousand, so an insert or delete moves one chunk (``searchsorted`` to find it),
and reading a window of rows touches only the chunks it spans. ``StringCodes`` turns string
columns into order-preserving float codes once (vectorised in Arrow) and gives a code to a
string never seen before by bisection, so string columns sort with the same machinery.
"""

from __future__ import annotations

import bisect
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

CHUNK = 1024  # a chunk splits at twice this size


class SortedRefs:
    """Row references (int) ordered by ``(key, tie)``; ``key`` float64 (no NaN), ``tie`` int64."""

    def __init__(self, keys: np.ndarray, ties: np.ndarray, refs: np.ndarray) -> None:
        order = np.lexsort((ties, keys))
        k, t, r = keys[order], ties[order], refs[order]
        self._k: list[np.ndarray] = []
        self._t: list[np.ndarray] = []
        self._r: list[np.ndarray] = []
        for i in range(0, len(k), CHUNK):
            self._k.append(k[i : i + CHUNK].copy())
            self._t.append(t[i : i + CHUNK].copy())
            self._r.append(r[i : i + CHUNK].copy())
        self._reindex()

    def _reindex(self) -> None:
        # Per-chunk last key/tie and start offsets: O(chunks), a few hundred at 1M rows.
        self._lastk = np.array([c[-1] for c in self._k], dtype=np.float64)
        self._lastt = np.array([c[-1] for c in self._t], dtype=np.int64)
        sizes = np.fromiter((len(c) for c in self._k), dtype=np.int64, count=len(self._k))
        self._starts = np.concatenate(([0], np.cumsum(sizes)))

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _chunk_for(self, key: float, tie: int) -> int:
        i = int(np.searchsorted(self._lastk, key, "left"))
        n = len(self._lastk)
        while i < n and self._lastk[i] == key and self._lastt[i] < tie:
            i += 1
        return min(i, n - 1)

    @staticmethod
    def _pos_in(k: np.ndarray, t: np.ndarray, key: float, tie: int) -> int:
        lo = int(np.searchsorted(k, key, "left"))
        hi = int(np.searchsorted(k, key, "right"))
        return lo + int(np.searchsorted(t[lo:hi], tie, "left"))

    def insert(self, key: float, tie: int, ref: int) -> None:
        if not self._k:
            self._k, self._t, self._r = [np.array([key])], [np.array([tie])], [np.array([ref])]
            self._reindex()
            return
        c = self._chunk_for(key, tie)
        k, t, r = self._k[c], self._t[c], self._r[c]
        p = self._pos_in(k, t, key, tie)
        k, t, r = np.insert(k, p, key), np.insert(t, p, tie), np.insert(r, p, ref)
        if len(k) > 2 * CHUNK:
            h = len(k) // 2
            self._k[c : c + 1] = [k[:h], k[h:]]
            self._t[c : c + 1] = [t[:h], t[h:]]
            self._r[c : c + 1] = [r[:h], r[h:]]
            self._reindex()
        else:
            self._k[c], self._t[c], self._r[c] = k, t, r
            self._starts[c + 1 :] += 1  # no split: only later offsets and this chunk's end move
            self._lastk[c], self._lastt[c] = k[-1], t[-1]

    def remove(self, key: float, tie: int, ref: int) -> bool:
        """Remove the entry; False if it is not there."""
        if not self._k:
            return False
        c = self._chunk_for(key, tie)
        k, t, r = self._k[c], self._t[c], self._r[c]
        p = self._pos_in(k, t, key, tie)
        if p >= len(k) or r[p] != ref:
            return False
        if len(k) > 1:
            self._k[c], self._t[c], self._r[c] = np.delete(k, p), np.delete(t, p), np.delete(r, p)
            self._starts[c + 1 :] -= 1
            self._lastk[c], self._lastt[c] = self._k[c][-1], self._t[c][-1]
            return True
        del self._k[c], self._t[c], self._r[c]
        if self._k:
            self._reindex()
        else:
            self._lastk = np.empty(0)
            self._lastt = np.empty(0, dtype=np.int64)
            self._starts = np.zeros(1, dtype=np.int64)
        return True

    def position(self, key: float, tie: int) -> int:
        """The index the entry ``(key, tie)`` has (or would have)."""
        if not self._k:
            return 0
        c = self._chunk_for(key, tie)
        return int(self._starts[c]) + self._pos_in(self._k[c], self._t[c], key, tie)

    def window(self, offset: int, limit: int) -> np.ndarray:
        """The refs at positions ``offset .. offset+limit-1`` (fewer at the end)."""
        end = min(offset + limit, len(self))
        if offset >= end:
            return np.empty(0, dtype=np.int64)
        c = int(np.searchsorted(self._starts, offset, "right")) - 1
        parts = []
        pos = offset
        while pos < end:
            start = int(self._starts[c])
            take = self._r[c][pos - start : end - start]
            parts.append(take)
            pos += len(take)
            c += 1
        return np.concatenate(parts)


class StringCodes:
    """Order-preserving float codes for the values of one string column (null -> NaN)."""

    def __init__(self, column: pa.ChunkedArray | pa.Array) -> None:
        uniq = pc.unique(column.drop_null())
        self._base = uniq.take(pc.sort_indices(uniq))  # sorted distinct values, in Arrow
        # Values first seen after the view was built: (value, code) sorted by value; their codes
        # sit between the integer codes of the base values around them.
        self._extra: list[tuple[str, float]] = []
        self._extra_values: list[str] = []

    def codes(self, column: pa.ChunkedArray | pa.Array) -> np.ndarray:
        """Codes of a whole column, vectorised (the column the codes were built from)."""
        idx = pc.index_in(column, value_set=self._base)
        return idx.to_numpy(zero_copy_only=False).astype(np.float64)  # null -> NaN

    def code(self, value: str | None) -> float:
        """The code of one value; a new value gets one between its neighbours."""
        if value is None:
            return math.nan
        base = self._base
        lo, hi = 0, len(base)
        while lo < hi:  # first base value >= value
            mid = (lo + hi) // 2
            if base[mid].as_py() < value:
                lo = mid + 1
            else:
                hi = mid
        if lo < len(base) and base[lo].as_py() == value:
            return float(lo)
        low, high = float(lo - 1), float(lo)
        j = bisect.bisect_left(self._extra_values, value)
        if j < len(self._extra) and self._extra[j][0] == value:
            return self._extra[j][1]
        if j > 0 and self._extra[j - 1][1] > low:
            low = self._extra[j - 1][1]
        if j < len(self._extra) and self._extra[j][1] < high:
            high = self._extra[j][1]
        code = (low + high) / 2
        if not low < code < high:
            raise OverflowError("no float left between two sort codes; rebuild the view")
        self._extra.insert(j, (value, code))
        self._extra_values.insert(j, value)
        return code


__all__ = ["CHUNK", "SortedRefs", "StringCodes"]
