"""The content store: every stored line cut into chunks, each distinct chunk kept once, zstd.

``<root>/content.sqlite`` holds three tables:

* ``packs(pid, data, t, did)``: the chunks a write added, concatenated and zstd-compressed
  together (one frame finds the repeats inside a flow: the parsed messages repeat the raw body),
  with the dictionary ``did`` of ``dicts`` (0: none) once the store has trained one;
* ``chunks(h, pid, off, len)``: where each distinct chunk (by ``chunking.digest``) lives;
* ``recipes(rid, rh, base, depth, ops, t)``: how to rebuild a line: the chunk list of ``base``
  (another recipe) with ranges copied from it and new chunks in between. An agent's turn N+1
  repeats turn N's line with a few insertions, so its recipe is a handful of ranges and the new
  chunks, not the full list (a full list would grow with the square of the session's length).
  Chains are cut at ``MAX_DEPTH`` so rebuilding stays a few lookups. When no delta wins
  (ordinary traffic), the recipe names the pack holding the line's new chunks (in order) and
  lists only the digests of chunks stored before (``recipes.encode_pack``): ~2 bytes per new
  chunk instead of 17, and a line whose chunks are all new reads as one pack, no lookups.

A segment line refers to its recipe by ``rh``. Writes commit here before the line is written,
so a line never refers to content that is not stored; a kill in between leaves unreferenced
content, which ``collect`` (run by retention) removes along with the content of expired flows.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import zstandard

from flowbook.store import chunking
from flowbook.store.recipes import decode_ops, decode_pack, diff_ops, encode_ops, encode_pack

CONTENT_FILE = "content.sqlite"
MAX_DEPTH = 40
ZSTD_LEVEL = 3
# (``recipes`` is a rowid table with a unique index on ``rh``: rows arrive in rowid order and
# fill their pages, where a table keyed by a random hash leaves half of every page empty.)
# A zstd dictionary trained on the first new chunks a store sees: packs are small (one write's
# new bytes), and small inputs compress about twice as well with a dictionary of their kind.
# Two stages (dictionary bytes, new chunk bytes seen before training): a small one early, then,
# for a store that keeps seeing new content (ordinary traffic), zstd's default size, which packs
# it ~10% smaller again. The second costs 110 KB, so it waits for 16 MB of new content (a
# 150-turn agent session adds ~6 MB). Each is trained on the last ``DICT_SAMPLE_CAP`` bytes.
DICT_STAGES = ((16 << 10, 256 << 10), (110 << 10, 16 << 20))
DICT_SAMPLE_CAP = 2 << 20
WAL_CHECKPOINT_PAGES = 16384  # of 1 KB
GRACE_S = 600.0  # content younger than this is never collected: another process may be
# about to write the line that refers to it

SCHEMA = """
CREATE TABLE IF NOT EXISTS packs(
    pid INTEGER PRIMARY KEY, data BLOB NOT NULL, t REAL NOT NULL, did INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dicts(did INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS chunks(
    h BLOB PRIMARY KEY, pid INTEGER NOT NULL, off INTEGER NOT NULL, len INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS recipes(
    rid INTEGER PRIMARY KEY, rh BLOB UNIQUE NOT NULL, base BLOB, depth INTEGER NOT NULL,
    ops BLOB NOT NULL, t REAL NOT NULL);
"""


def pack_digests(data: bytes, entries: list[bytes | int]) -> list[bytes]:
    """The chunk digests of a line whose recipe names the pack ``data`` (``encode_pack``)."""
    if len(data) != sum(e for e in entries if isinstance(e, int)):
        raise ContentMissing("a pack does not match its recipe's chunk lengths")
    mv = memoryview(data)
    out = []
    start = 0
    for e in entries:
        if isinstance(e, int):
            out.append(
                hashlib.blake2b(mv[start : start + e], digest_size=chunking.DIGEST_BYTES).digest()
            )
            start += e
        else:
            out.append(e)
    return out


class ContentMissing(LookupError):
    """A recipe or chunk a line refers to is not in the content store."""


class ContentStore:
    """Chunks, packs and recipes in ``content.sqlite``. The caller serialises writes."""

    def __init__(self, root: Path) -> None:
        self.path = root / CONTENT_FILE
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        # Both only act before the first table exists. Small pages: a pack is a few KB, and a
        # row that does not fill a page wastes the rest; incremental vacuum lets collect()
        # hand freed pages back to the disk.
        self._conn.execute("PRAGMA page_size=1024")
        self._conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before the segment line that refers to it is written (and
        # fsynced within half a second), so even a power cut leaves no line without content.
        self._conn.execute("PRAGMA synchronous=FULL")
        # Checkpoint every 16 MB of WAL, not every 1 MB (the default, 1000 pages): a write of
        # a few hundred flows adds megabytes, and each checkpoint copies pages into the file
        # and fsyncs it again; fewer of them copy the same interior pages less often.
        self._conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        # Chunk digests are random keys: lookups hit every part of the tree, so give it cache.
        self._conn.execute("PRAGMA cache_size=-65536")
        self._conn.executescript(SCHEMA)
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                p.chmod(0o600)
        self._rconn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._rlock = threading.Lock()
        self._cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        self._did = 0
        self._stage = 0  # dictionaries trained so far
        self._samples: list[bytes] = []
        self._sample_bytes = 0
        self._seen = 0  # new chunk bytes since the last dictionary (or the open)
        self._dctx: dict[int, zstandard.ZstdDecompressor] = {0: zstandard.ZstdDecompressor()}
        self._load_dict()
        # Recent recipes' full chunk lists (bases for the next writes, and reads of a chain).
        self._lists: OrderedDict[bytes, list[bytes]] = OrderedDict()
        self._depth: dict[bytes, int] = {}
        # chunk digest -> the most recent recipe holding it: picks the base of a new recipe.
        self._holder: OrderedDict[bytes, bytes] = OrderedDict()
        self._packs: OrderedDict[int, bytes] = OrderedDict()  # decompressed, for reads

    def _load_dict(self) -> None:
        """Compress with the newest stored dictionary (none: plain zstd)."""
        self._stage = self._conn.execute("SELECT count(*) FROM dicts").fetchone()[0]
        row = self._conn.execute("SELECT did, data FROM dicts ORDER BY did DESC").fetchone()
        if row is not None:
            self._use_dict(row[0], row[1])
        else:
            self._cctx, self._did = zstandard.ZstdCompressor(level=ZSTD_LEVEL), 0

    def _use_dict(self, did: int, data: bytes) -> None:
        d = zstandard.ZstdCompressionDict(data)
        self._cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, dict_data=d)
        self._did = did
        self._samples, self._sample_bytes, self._seen = [], 0, 0

    def _dctx_for(self, did: int) -> zstandard.ZstdDecompressor:
        dctx = self._dctx.get(did)
        if dctx is None:
            row = self._rconn.execute("SELECT data FROM dicts WHERE did=?", (did,)).fetchone()
            if row is None:
                raise ContentMissing(f"compression dictionary {did} is not stored")
            dctx = zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(row[0]))
            self._dctx[did] = dctx
        return dctx

    def _learn(self, fresh: Iterable[bytes]) -> None:
        """Collect samples; train the store's next dictionary once there are enough."""
        size, needed = DICT_STAGES[self._stage]
        for c in fresh:
            self._seen += len(c)
            if self._seen > needed - DICT_SAMPLE_CAP:
                self._samples.append(c)
                self._sample_bytes += len(c)
        if self._seen < needed or len(self._samples) < 64:
            return
        try:
            samples: list[bytes | bytearray | memoryview] = list(self._samples)
            data = zstandard.train_dictionary(size, samples).as_bytes()
        except zstandard.ZstdError:
            # Too uniform to learn from: try again after as much new content.
            self._samples, self._sample_bytes, self._seen = [], 0, 0
            return
        cur = self._conn.execute("INSERT INTO dicts(data) VALUES(?)", (data,))
        assert cur.lastrowid is not None
        self._use_dict(cur.lastrowid, data)
        self._stage += 1

    # -- writing ---------------------------------------------------------------------------

    def put_many(self, lines: Iterable[bytes]) -> list[bytes]:
        """Store lines (one transaction); return each one's recipe hash, in order.

        The whole write is cut, hashed and looked up at once: one pass of ``chunking.cut_many``,
        one query for the recipes and one for the chunks already stored, and the new rows of
        every table inserted together, so a batch of flows costs a handful of statements.
        """
        lines = list(lines)
        if not lines:
            return []
        cut_lists = chunking.cut_many(lines)
        digests_of: list[list[bytes]] = []
        blake = hashlib.blake2b
        size = chunking.DIGEST_BYTES
        for line, cuts in zip(lines, cut_lists, strict=True):
            mv = memoryview(line)
            digests_of.append(
                [
                    blake(mv[s:e], digest_size=size).digest()
                    for s, e in zip([0, *cuts], cuts, strict=False)
                ]
            )
        rhs = [blake(b"".join(ds), digest_size=size).digest() for ds in digests_of]
        conn = self._conn
        # IMMEDIATE: the write lock first, so what the lookups below find stays true until
        # the commit (another process may share the data dir).
        conn.execute("BEGIN IMMEDIATE")
        try:
            now = time.time()
            stored = self._present("SELECT rh FROM recipes WHERE rh IN ", rhs)
            known = self._present(
                "SELECT h FROM chunks WHERE h IN ", [d for ds in digests_of for d in ds]
            )
            chunk_rows: list[tuple[bytes, int, int, int]] = []
            recipe_rows: list[tuple[bytes, bytes | None, int, bytes, float]] = []
            for line, cuts, digests, rh in zip(lines, cut_lists, digests_of, rhs, strict=True):
                if rh in stored:
                    self._remember(rh, digests, self._depth.get(rh, 0))
                    continue
                # (digest, offset in the pack, length) of each chunk this line adds
                spans = list(zip(digests, [0, *cuts], cuts, strict=False))
                uniq = set(digests)
                # The line as pack entries: a new chunk's length (it goes in this line's pack,
                # in order) or a stored chunk's digest.
                entries: list[bytes | int]
                if len(uniq) == len(digests) and known.isdisjoint(uniq):
                    data = line  # every chunk is new (ordinary traffic): the pack is the line
                    fresh = [(d, s, e - s) for d, s, e in spans]
                    entries = [n for _, _, n in fresh]
                else:
                    mv = memoryview(line)
                    parts: list[memoryview] = []
                    fresh = []
                    entries = []
                    seen: set[bytes] = set()
                    off = 0
                    for d, s, e in spans:
                        if d not in known and d not in seen:
                            seen.add(d)
                            parts.append(mv[s:e])
                            fresh.append((d, off, e - s))
                            entries.append(e - s)
                            off += e - s
                        else:
                            entries.append(d)
                    data = b"".join(parts)
                pid = None
                if fresh:
                    cur = conn.execute(
                        "INSERT INTO packs(data, t, did) VALUES(?, ?, ?)",
                        (self._cctx.compress(data), now, self._did),
                    )
                    if self._stage < len(DICT_STAGES):
                        self._learn(data[o : o + n] for _, o, n in fresh)
                    pid = cur.lastrowid
                    assert pid is not None
                    chunk_rows += [(d, pid, o, n) for d, o, n in fresh]
                    known.update(d for d, _, _ in fresh)
                base, ops, depth = self._recipe(digests)
                if base is None and pid is not None:
                    # No delta wins: name this line's pack (2 bytes a new chunk, not 17).
                    blob = encode_pack(pid, entries)
                else:
                    blob = encode_ops(ops)
                recipe_rows.append((rh, base, depth, blob, now))
                stored.add(rh)
                self._remember(rh, digests, depth)
            conn.executemany("INSERT OR IGNORE INTO chunks VALUES(?, ?, ?, ?)", chunk_rows)
            conn.executemany(
                "INSERT INTO recipes(rh, base, depth, ops, t) VALUES(?, ?, ?, ?, ?)", recipe_rows
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            # What the cache learned may name content the rollback took back.
            self._lists.clear()
            self._holder.clear()
            self._depth.clear()
            self._load_dict()  # a dictionary trained in the rolled-back transaction is gone
            raise
        return rhs

    def _recipe(self, digests: list[bytes]) -> tuple[bytes | None, list, int]:
        """(base, ops, depth) of a new recipe: a delta of a recent one when that is smaller."""
        base = self._pick_base(digests)
        if base is None:
            return None, list(digests), 0
        # A copied range costs 9 bytes, a listed digest 17: keep the delta when it is clearly
        # smaller than the full list (else a reader pays the chain for nothing).
        limit = 0.7 * 17 * len(digests)
        inside = set(self._lists[base])
        shared = sum(1 for d in digests if d in inside)
        # A delta lists every digest the base lacks: with too few shared, it cannot win
        # (ordinary traffic shares a system prompt's chunk or two), so skip computing it.
        if 17 * (len(digests) - shared) + 9 < limit:
            delta = diff_ops(self._lists[base], digests)
            copies = sum(1 for op in delta if not isinstance(op, bytes))
            if 9 * copies + 17 * (len(delta) - copies) < limit:
                return base, delta, self._depth[base] + 1
        return None, list(digests), 0

    def _present(self, select: str, keys: list[bytes]) -> set[bytes]:
        """Which of ``keys`` the query ``select`` + ``(?, ...)`` finds."""
        found: set[bytes] = set()
        uniq = list(dict.fromkeys(keys))
        for i in range(0, len(uniq), 500):
            part = uniq[i : i + 500]
            found.update(
                r[0] for r in self._conn.execute(f"{select}({','.join('?' * len(part))})", part)
            )
        return found

    def _pick_base(self, digests: list[bytes]) -> bytes | None:
        votes: dict[bytes, int] = {}
        for d in digests:
            rh = self._holder.get(d)
            if rh is not None:
                votes[rh] = votes.get(rh, 0) + 1
        if not votes:
            return None
        best = max(votes, key=lambda r: votes[r])
        if best not in self._lists or self._depth.get(best, MAX_DEPTH) >= MAX_DEPTH:
            return None
        return best

    def _remember(self, rh: bytes, digests: list[bytes], depth: int) -> None:
        self._lists[rh] = digests
        self._lists.move_to_end(rh)
        self._depth[rh] = depth
        while len(self._lists) > 64:
            old, _ = self._lists.popitem(last=False)
            self._depth.pop(old, None)
        for d in digests:
            self._holder[d] = rh
            self._holder.move_to_end(d)
        while len(self._holder) > 200_000:
            self._holder.popitem(last=False)

    # -- reading ---------------------------------------------------------------------------

    def get(self, rh: bytes) -> bytes:
        """The line stored under recipe ``rh``; ContentMissing when any part is gone."""
        with self._rlock:
            cached = self._lists.get(rh)
            if cached is not None:
                return self._assemble(cached)
            row = self._rconn.execute("SELECT base, ops FROM recipes WHERE rh=?", (rh,)).fetchone()
            if row is None:
                raise ContentMissing(f"recipe {rh.hex()} is not stored")
            pack = decode_pack(row[1])
            if pack is not None:
                pid, entries = pack
                data = self._pack(pid)
                if all(isinstance(e, int) for e in entries):  # the line is the whole pack
                    if len(data) != sum(entries):  # type: ignore[arg-type]
                        raise ContentMissing(f"pack {pid} does not hold recipe {rh.hex()}")
                    return data
                return self._assemble(pack_digests(data, entries))
            return self._assemble(self._resolve(rh, 0, row))

    def _resolve(self, rh: bytes, hops: int, row: tuple | None = None) -> list[bytes]:
        cached = self._lists.get(rh)
        if cached is not None:
            return cached
        if row is None:
            row = self._rconn.execute("SELECT base, ops FROM recipes WHERE rh=?", (rh,)).fetchone()
        if row is None or hops > MAX_DEPTH + 1:
            raise ContentMissing(f"recipe {rh.hex()} is not stored")
        pack = decode_pack(row[1])
        if pack is not None:
            return pack_digests(self._pack(pack[0]), pack[1])
        base = self._resolve(row[0], hops + 1) if row[0] is not None else []
        out: list[bytes] = []
        for op in decode_ops(row[1]):
            if isinstance(op, bytes):
                out.append(op)
            else:
                out += base[op[0] : op[0] + op[1]]
        return out

    def _assemble(self, digests: list[bytes]) -> bytes:
        where: dict[bytes, tuple[int, int, int]] = {}
        uniq = list(dict.fromkeys(digests))
        for i in range(0, len(uniq), 500):
            part = uniq[i : i + 500]
            q = f"SELECT h, pid, off, len FROM chunks WHERE h IN ({','.join('?' * len(part))})"
            for h, pid, off, length in self._rconn.execute(q, part):
                where[h] = (pid, off, length)
        out = []
        for d in digests:
            loc = where.get(d)
            if loc is None:
                raise ContentMissing(f"chunk {d.hex()} is not stored")
            data = self._pack(loc[0])
            out.append(data[loc[1] : loc[1] + loc[2]])
        return b"".join(out)

    def _pack(self, pid: int) -> bytes:
        """Pack ``pid`` decompressed (the last 64 read are kept)."""
        data = self._packs.get(pid)
        if data is None:
            row = self._rconn.execute("SELECT data, did FROM packs WHERE pid=?", (pid,))
            blob = row.fetchone()
            if blob is None:
                raise ContentMissing(f"pack {pid} is not stored")
            data = self._packs[pid] = self._dctx_for(blob[1]).decompress(blob[0])
            while len(self._packs) > 64:
                self._packs.popitem(last=False)
        else:
            self._packs.move_to_end(pid)
        return data

    # -- collecting ------------------------------------------------------------------------

    def collect(self, live: Iterable[bytes], now: float | None = None) -> dict[str, int]:
        """Delete recipes, chunks and packs no live recipe needs (older than ``GRACE_S``).

        ``live`` are the recipe hashes the stored lines refer to. Their bases are live too.
        A pack goes when none of its chunks is needed; a pack with some needed chunks stays
        whole (its unneeded chunks' rows go, so new writes store those bytes afresh).
        """
        cutoff = (time.time() if now is None else now) - GRACE_S
        live = set(live)
        with self._rlock:
            self._lists.clear()
            self._holder.clear()
            self._depth.clear()
            self._packs.clear()
        conn = self._conn
        recipes = {rh: (base, ops, t) for rh, base, ops, t in conn.execute(
            "SELECT rh, base, ops, t FROM recipes")}  # fmt: skip
        keep: set[bytes] = set()
        stack = [rh for rh in live if rh in recipes]
        stack += [rh for rh, (_, _, t) in recipes.items() if t >= cutoff]
        while stack:
            rh = stack.pop()
            if rh in keep:
                continue
            keep.add(rh)
            base = recipes[rh][0]
            if base is not None and base in recipes:
                stack.append(base)
        # The chunks live lines use: their resolved lists (a base's own new chunks are not
        # needed just because a live recipe is a delta of it).
        is_base = {base for base, _, _ in recipes.values() if base is not None}
        memo: dict[bytes, list[bytes]] = {}
        # A recipe that names a pack keeps that pack and all its chunks (plus the stored chunks
        # it lists); its new chunks' digests are only worked out (from the pack) when it is
        # the base of a delta.
        own_packs: dict[bytes, tuple[int, list[bytes | int]]] = {}
        for rh, (_, ops, _) in recipes.items():
            pack = decode_pack(ops)
            if pack is not None:
                own_packs[rh] = pack

        def resolved(rh: bytes) -> list[bytes]:
            got = memo.get(rh)
            if got is not None:
                return got
            if rh in own_packs:
                pid, entries = own_packs[rh]
                row = conn.execute("SELECT data, did FROM packs WHERE pid=?", (pid,)).fetchone()
                if row is None:
                    return []
                with self._rlock:
                    dctx = self._dctx_for(row[1])
                memo[rh] = digests = pack_digests(dctx.decompress(row[0]), entries)
                return digests
            base, ops, _ = recipes[rh]
            base_list = resolved(base) if base is not None and base in recipes else []
            out: list[bytes] = []
            for op in decode_ops(ops):
                out += [op] if isinstance(op, bytes) else base_list[op[0] : op[0] + op[1]]
            if rh in is_base:
                memo[rh] = out
            return out

        needed: set[bytes] = set()
        # Packs a kept recipe names stay whole: a line's new chunks, and a base's (rebuilding
        # a delta reads its base's digests, which for such a base come from its pack).
        whole = {own_packs[rh][0] for rh in keep if rh in own_packs}
        for rh in live | {rh for rh, (_, _, t) in recipes.items() if t >= cutoff}:
            if rh in own_packs:
                needed.update(e for e in own_packs[rh][1] if isinstance(e, bytes))
            elif rh in recipes:
                needed.update(resolved(rh))
        dead_recipes = [rh for rh in recipes if rh not in keep]
        young = {r[0] for r in conn.execute("SELECT pid FROM packs WHERE t >= ?", (cutoff,))}
        dead_chunks = []
        live_packs: set[int] = young | whole
        for h, pid in conn.execute("SELECT h, pid FROM chunks"):
            if h in needed or pid in whole:
                live_packs.add(pid)
            elif pid not in young:
                dead_chunks.append(h)
        dead_packs = [r[0] for r in conn.execute("SELECT pid FROM packs") if r[0] not in live_packs]
        conn.execute("BEGIN")
        conn.executemany("DELETE FROM recipes WHERE rh=?", [(r,) for r in dead_recipes])
        conn.executemany("DELETE FROM chunks WHERE h=?", [(h,) for h in dead_chunks])
        conn.executemany("DELETE FROM packs WHERE pid=?", [(p,) for p in dead_packs])
        conn.execute("COMMIT")
        if dead_packs:
            conn.execute("PRAGMA incremental_vacuum").fetchall()  # a step frees one page
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return {"recipes": len(dead_recipes), "chunks": len(dead_chunks), "packs": len(dead_packs)}

    def size(self) -> int:
        """Bytes of the content files on disk."""
        return sum(
            p.stat().st_size for p in (Path(str(self.path) + s) for s in ("", "-wal")) if p.exists()
        )

    def close(self) -> None:
        with self._rlock:
            self._rconn.close()
            self._conn.close()
