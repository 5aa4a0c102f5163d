"""Search over distinct pieces of content, each indexed once, mapped back to every flow.

A flow's searchable text is cut into pieces: the system prompt, each message, the tool list
(request scope) and the response text (response scope). A piece is keyed by its content
(messages by ``flowbook.model.message_hash``, the one content hash of the model), so the system
prompt an agent resends 150 times is one piece, indexed once.

Tables (in the index, a cache rebuilt from the stored flows):

* ``pieces(pid, h, scope, text)``: one row per distinct piece; ``text`` zstd-compressed, the one
  copy of the text the search checks candidates against;
* ``pfts`` (request pieces) and ``pfts_resp`` (response pieces): FTS5, contentless, trigram,
  ``detail=none``, ``columnsize=0`` (a fraction of the text's size). A query asks for every
  trigram of the needle, then each candidate piece's text is checked for the literal needle
  (trigrams alone do not say they are adjacent). The text copy stays because that check is
  per candidate: rebuilding a piece's text from the content store (read the line, parse the
  flow) costs ~0.25 ms, so a common word's 20,000 candidates would take seconds;
* ``occ(pid, fid, pos)``: where a piece occurs. A flow whose messages extend an earlier flow's
  (``inherit(fid, parent, n)``: its first ``n`` messages are the parent's) lists only the
  pieces after that prefix, so an agent session's occurrences grow linearly, not with the square
  of its length. A hit at message position ``pos`` of flow F is in every descendant reached
  through links with ``n > pos``. Pieces that are not messages have ``pos = NOT_INHERITED``.

FTS5 here cannot delete from a contentless table by rowid alone (no ``contentless_delete``
before SQLite 3.43), so removing a piece sends FTS5's ``delete`` command with its text, which
``pieces.text`` keeps.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import zstandard

from flowbook.model import LLMFlow, message_hash

REQUEST, RESPONSE = 1, 2
NOT_INHERITED = 1 << 30
_KEY = 16

SCHEMA = """
CREATE TABLE IF NOT EXISTS pieces(
    pid INTEGER PRIMARY KEY, h BLOB UNIQUE NOT NULL, scope INTEGER NOT NULL, text BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS pdicts(did INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS occ(
    fid INTEGER NOT NULL, pos INTEGER NOT NULL, pid INTEGER NOT NULL,
    PRIMARY KEY(fid, pos, pid)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS occ_pid ON occ(pid);
CREATE TABLE IF NOT EXISTS inherit(
    fid INTEGER PRIMARY KEY, parent INTEGER NOT NULL, n INTEGER NOT NULL, lh BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS inherit_parent ON inherit(parent) WHERE n > 0;
CREATE INDEX IF NOT EXISTS inherit_lh ON inherit(lh);
CREATE VIRTUAL TABLE IF NOT EXISTS pfts USING fts5(
    text, content='', tokenize='trigram', detail='none', columnsize=0);
CREATE VIRTUAL TABLE IF NOT EXISTS pfts_resp USING fts5(
    text, content='', tokenize='trigram', detail='none', columnsize=0);
"""
# One FTS table per scope: a ``request:`` search reads only request pieces' postings (a
# common word is in most responses too), and FTS5 with ``detail=none`` has no column filter.
_FTS = {REQUEST: "pfts", RESPONSE: "pfts_resp"}

# Piece texts are short (a message), and short texts compress about a third better with a
# zstd dictionary trained on their kind: each index trains one from its first pieces
# (``pdicts``, keyed by the dictionary id every zstd frame carries).
_DICT_BYTES = 16 << 10
_DICT_SAMPLES = 256 << 10
_DICT_MIN_SAMPLES = 100
_dctx: dict[int, zstandard.ZstdDecompressor] = {0: zstandard.ZstdDecompressor()}


@dataclass
class _Trainer:
    cctx: zstandard.ZstdCompressor
    trained: bool
    samples: list[bytes] = field(default_factory=list)
    size: int = 0


class IndexConnection(sqlite3.Connection):
    """The index's write connection: it carries the piece-text compressor it trains."""

    piece_trainer: _Trainer | None = None


def _compress(conn: sqlite3.Connection, data: bytes) -> bytes:
    t = getattr(conn, "piece_trainer", None)
    if t is None:
        row = conn.execute("SELECT data FROM pdicts ORDER BY rowid DESC").fetchone()
        if row is None:
            t = _Trainer(zstandard.ZstdCompressor(level=3), False)
        else:
            d = zstandard.ZstdCompressionDict(row[0])
            t = _Trainer(zstandard.ZstdCompressor(level=3, dict_data=d), True)
        if not isinstance(conn, IndexConnection):
            return zstandard.ZstdCompressor(level=3).compress(data)
        conn.piece_trainer = t
    blob = t.cctx.compress(data)
    if not t.trained:
        t.samples.append(data)
        t.size += len(data)
        if t.size >= _DICT_SAMPLES and len(t.samples) >= _DICT_MIN_SAMPLES:
            try:
                samples: list[bytes | bytearray | memoryview] = list(t.samples)
                d = zstandard.train_dictionary(_DICT_BYTES, samples)
            except zstandard.ZstdError:
                t.samples, t.size = [], 0
                return blob
            conn.execute("INSERT OR REPLACE INTO pdicts VALUES(?, ?)", (d.dict_id(), d.as_bytes()))
            t.cctx = zstandard.ZstdCompressor(level=3, dict_data=d)
            t.trained, t.samples = True, []
    return blob


def _decompress(conn: sqlite3.Connection, blob: bytes) -> bytes:
    return _decompressor(conn, zstandard.get_frame_parameters(blob).dict_id).decompress(blob)


def _decompressor(conn: sqlite3.Connection, did: int) -> zstandard.ZstdDecompressor:
    dctx = _dctx.get(did)
    if dctx is None:
        row = conn.execute("SELECT data FROM pdicts WHERE did=?", (did,)).fetchone()
        if row is None:
            raise LookupError(f"piece dictionary {did} is missing")
        dctx = _dctx[did] = zstandard.ZstdDecompressor(
            dict_data=zstandard.ZstdCompressionDict(row[0])
        )
    return dctx


def _key(tag: bytes, text: str) -> bytes:
    return hashlib.blake2b(tag + text.encode("utf-8"), digest_size=_KEY).digest()


@dataclass
class FlowPieces:
    """A flow's pieces: (key, scope, text, position) and its message list's prefix hashes."""

    items: list[tuple[bytes, int, str, int]] = field(default_factory=list)
    prefixes: list[bytes] = field(default_factory=list)  # prefixes[k]: first k+1 messages


def flow_pieces(flow: LLMFlow) -> FlowPieces:
    """Cut a flow's search text into pieces (what ``request:``/``response:`` search)."""
    out = FlowPieces()
    req = flow.request
    if req.system:
        out.items.append((_key(b"s", req.system), REQUEST, req.system, NOT_INHERITED))
    acc = b""
    for pos, m in enumerate(req.messages):
        key = bytes.fromhex(message_hash(m))[:_KEY]
        acc = hashlib.blake2b(acc + key, digest_size=_KEY).digest()
        out.prefixes.append(acc)
        text = m.plain_text()
        if text:
            out.items.append((key, REQUEST, text, pos))
    tools = "\n".join(f"{t.name} {t.description or ''}" for t in req.tools)
    if tools:
        out.items.append((_key(b"t", tools), REQUEST, tools, NOT_INHERITED))
    response = flow.response.plain_text() if flow.response else ""
    if flow.error and flow.error.message:
        response = f"{response}\n{flow.error.message}" if response else flow.error.message
    if response:
        out.items.append((_key(b"r", response), RESPONSE, response, NOT_INHERITED))
    return out


def add(conn: sqlite3.Connection, fid: int, fp: FlowPieces) -> None:
    """Index a flow's pieces (inside the caller's transaction)."""
    n = parent = 0
    if len(fp.prefixes) > 1:
        cands = fp.prefixes[:-1]
        marks = ",".join("?" * len(cands))
        found = dict(
            conn.execute(
                f"SELECT lh, max(fid) FROM inherit WHERE lh IN ({marks}) AND fid != ? GROUP BY lh",
                [*cands, fid],
            ).fetchall()
        )
        for k in range(len(cands), 0, -1):
            hit = found.get(cands[k - 1])
            if hit is not None:
                n, parent = k, int(hit)
                break
    lh = fp.prefixes[-1] if fp.prefixes else b""
    conn.execute("INSERT INTO inherit VALUES(?, ?, ?, ?)", (fid, parent, n, lh))
    rows = []
    for key, scope, text, pos in fp.items:
        if pos < n:
            continue  # the parent lists it (or its own ancestors do)
        rows.append((fid, pos, _piece_id(conn, key, scope, text)))
    conn.executemany("INSERT OR IGNORE INTO occ VALUES(?, ?, ?)", rows)


def _piece_id(conn: sqlite3.Connection, key: bytes, scope: int, text: str) -> int:
    row = conn.execute("SELECT pid FROM pieces WHERE h=?", (key,)).fetchone()
    if row:
        return int(row[0])
    cur = conn.execute(
        "INSERT INTO pieces(h, scope, text) VALUES(?, ?, ?)",
        (key, scope, _compress(conn, text.encode("utf-8"))),
    )
    pid = cur.lastrowid
    assert pid is not None
    conn.execute(f"INSERT INTO {_FTS[scope]}(rowid, text) VALUES(?, ?)", (pid, text))
    return pid


def _detach_children(conn: sqlite3.Connection, fids: Sequence[int]) -> None:
    """Give flows that inherit from one of ``fids`` (and stay) their inherited pieces' rows.

    Pure SQL over the links: the rows of every ancestor below the running prefix length.
    """
    gone = set(fids)
    children = []
    for i in range(0, len(fids), 500):
        part = list(fids[i : i + 500])
        q = f"SELECT fid FROM inherit WHERE n > 0 AND parent IN ({','.join('?' * len(part))})"
        children += [r[0] for r in conn.execute(q, part) if r[0] not in gone]
    for child in children:
        conn.execute(
            "WITH RECURSIVE a(fid, lim) AS ("
            " SELECT parent, n FROM inherit WHERE fid=? AND n > 0"
            " UNION SELECT i.parent, min(a.lim, i.n) FROM inherit i JOIN a ON i.fid=a.fid"
            " WHERE i.n > 0)"
            " INSERT OR IGNORE INTO occ SELECT ?, o.pos, o.pid FROM a JOIN occ o ON o.fid=a.fid"
            " WHERE o.pos < a.lim",
            (child, child),
        )
        conn.execute("UPDATE inherit SET parent=0, n=0 WHERE fid=?", (child,))


def remove(conn: sqlite3.Connection, fids: Sequence[int]) -> None:
    """Drop flows' occurrences; pieces no flow lists any more leave the FTS (caller's txn).

    Flows that inherited messages from a removed one get those pieces' rows first, so no
    piece a remaining flow carries is lost with its parent.
    """
    _detach_children(conn, fids)
    touched: set[int] = set()
    for fid in fids:
        touched.update(r[0] for r in conn.execute("SELECT pid FROM occ WHERE fid=?", (fid,)))
        conn.execute("DELETE FROM occ WHERE fid=?", (fid,))
        conn.execute("DELETE FROM inherit WHERE fid=?", (fid,))
    for pid in touched:
        if conn.execute("SELECT 1 FROM occ WHERE pid=? LIMIT 1", (pid,)).fetchone():
            continue
        row = conn.execute("SELECT scope, text FROM pieces WHERE pid=?", (pid,)).fetchone()
        text = _decompress(conn, row[1]).decode("utf-8")
        fts = _FTS[row[0]]
        conn.execute(f"INSERT INTO {fts}({fts}, rowid, text) VALUES('delete', ?, ?)", (pid, text))
        conn.execute("DELETE FROM pieces WHERE pid=?", (pid,))


def _trigram_query(needle: str) -> str:
    grams = dict.fromkeys(needle[i : i + 3] for i in range(len(needle) - 2))
    return " AND ".join('"' + g.replace('"', '""') + '"' for g in grams)


def matching_pieces(conn: sqlite3.Connection, scopes: Sequence[int], text: str) -> list[int]:
    """Piece ids in ``scopes`` whose text contains ``text`` (case-insensitive, literal)."""
    out: list[int] = []
    for scope in scopes:
        out += _matching(conn, int(scope), text)
    return out


def _matching(conn: sqlite3.Connection, scope: int, text: str) -> list[int]:
    needle = text.lower()
    if len(text) >= 3:
        fts = _FTS[scope]
        sql = (
            f"SELECT p.pid, p.text FROM {fts} JOIN pieces p ON p.pid={fts}.rowid "
            f"WHERE {fts} MATCH ?"
        )
        rows: Iterable[tuple[int, bytes]] = conn.execute(sql, (_trigram_query(text),))
        if len(text) == 3:  # one trigram: the index's answer is exact
            return [pid for pid, _ in rows]
    else:
        rows = conn.execute("SELECT pid, text FROM pieces WHERE scope=?", (scope,))
    if needle.isascii():
        # Compare bytes: no UTF-8 decode per candidate (an ASCII needle matches the same
        # bytes in the UTF-8 text; ``bytes.lower`` folds only ASCII letters, which are the
        # only letters such a needle can match).
        raw = needle.encode("ascii")
        out = []
        params = zstandard.get_frame_parameters
        for pid, blob in rows:
            dctx = _dctx.get(params(blob).dict_id) or _decompressor(conn, params(blob).dict_id)
            data = dctx.decompress(blob)
            # Found as is: found folded too (folding ASCII keeps every byte's position).
            if raw in data or raw in data.lower():
                out.append(pid)
        return out
    return [pid for pid, blob in rows if needle in _decompress(conn, blob).decode("utf-8").lower()]


def _json_ints(values: Iterable[int]) -> str:
    return "[" + ",".join(map(str, values)) + "]"  # ints read from the index


def flows_with(conn: sqlite3.Connection, pids: Sequence[int]) -> set[str]:
    """Ids of every flow that carries one of ``pids`` (directly or through inheritance).

    Read-only (the id lists go in as JSON through ``json_each``; a temporary table cost a
    transaction and a row write per hit). Inheritance is followed breadth-first, keeping for
    each flow the smallest message position a hit reached it at: a child inherits the hit when
    its link covers that position (``n > pos``).
    """
    if not pids:
        return set()
    if conn.execute("SELECT 1 FROM inherit WHERE n > 0 LIMIT 1").fetchone() is None:
        # No flow inherits (ordinary traffic): the occurrences are the whole answer.
        rows = conn.execute(
            "SELECT f.id FROM occ o JOIN flows f ON f.fid=o.fid"
            " WHERE o.pid IN (SELECT value FROM json_each(?))",
            (_json_ints(pids),),
        )
        return {r[0] for r in rows}
    out: set[str] = set()
    best: dict[int, int] = {}
    rows = conn.execute(
        "SELECT o.fid, o.pos, f.id FROM occ o LEFT JOIN flows f ON f.fid=o.fid"
        " WHERE o.pid IN (SELECT value FROM json_each(?))",
        (_json_ints(pids),),
    )
    for fid, pos, flow_id in rows:
        if flow_id is not None:
            out.add(flow_id)
        if pos < best.get(fid, NOT_INHERITED):
            best[fid] = pos
    frontier = {fid: pos for fid, pos in best.items() if pos < NOT_INHERITED}
    while frontier:
        reached: dict[int, int] = {}
        rows = conn.execute(
            "SELECT fid, parent, n FROM inherit"
            " WHERE parent IN (SELECT value FROM json_each(?)) AND n > 0",
            (_json_ints(frontier),),
        )
        for fid, parent, n in rows:
            pos = frontier[parent]
            if n > pos and pos < best.get(fid, NOT_INHERITED):
                best[fid] = reached[fid] = pos
        if reached:
            q = "SELECT id FROM flows WHERE fid IN (SELECT value FROM json_each(?))"
            out.update(r[0] for r in conn.execute(q, (_json_ints(reached),)))
        frontier = reached
    return out
