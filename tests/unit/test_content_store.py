"""The content store and format 2 of the file store: chunks stored once, delta recipes, search
over distinct pieces, retention that keeps shared content, and the previous format's data dir."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from flowbook.model import (
    FlowMetadata,
    FlowState,
    FlowTimestamps,
    LLMFlow,
    LLMRequest,
    LLMResponse,
    Message,
    Part,
    StreamEvent,
    Tool,
    Usage,
)
from flowbook.store import chunking, content
from flowbook.store.file_store import FileStore
from flowbook.store.records import flow_line

FIXTURE_V1 = Path(__file__).resolve().parents[1] / "fixtures" / "datadir-v1"
SYSTEM = "You are a careful coding agent. Keep changes small and run the tests. " + " ".join(
    f"Rule {i}: edit file {i * 7} only after reading it, then run test {i * 13}."
    for i in range(110)
)
T0 = 1_700_000_000.0


def agent_flow(turn: int, t: float = T0, session: str = "s") -> LLMFlow:
    """Turn ``turn`` of an agent session: the whole history resent, plus one new message."""
    msgs: list[Message] = []
    for k in range(turn + 1):
        msgs.append(
            Message(
                "user", [Part("text", text=f"{session} turn {k}: please look at file_{k}.py " * 8)]
            )
        )
        if k < turn:
            msgs.append(Message("assistant", [Part("text", text=f"{session} done with step {k}.")]))
    tools = [
        Tool(f"tool_{i}", f"Tool {i} reads and edits files. " * 4, {"type": "object"})
        for i in range(20)
    ]
    body = json.dumps(
        {"model": "claude-sonnet-4-5", "system": SYSTEM, "messages": [m.to_dict() for m in msgs],
         "tools": [t.to_dict() for t in tools]}, separators=(",", ":")
    ).encode()  # fmt: skip
    sse = b"".join(
        b"event: content_block_delta\ndata: "
        b'{"type":"content_block_delta","delta":{"text":"%s"}}\n\n' % w.encode()
        for w in f"{session} done with step {turn}.".split()
    )
    return LLMFlow(
        id=f"{session}-turn-{turn:03d}",
        state=FlowState.COMPLETED,
        request=LLMRequest(
            url="https://api.anthropic.com/v1/messages", host="api.anthropic.com",
            path="/v1/messages", headers={"content-length": str(len(body))}, body=body,
            model="claude-sonnet-4-5", messages=msgs, system=SYSTEM, tools=tools, stream=True,
        ),
        response=LLMResponse(
            status_code=200, body=sse, text=f"{session} done with step {turn}.",
            usage=Usage(input=1000 + turn, output=7, source="reported"),
            events=[StreamEvent(t + 0.1 + k / 7, "delta", {"k": k}) for k in range(3)],
        ),
        metadata=FlowMetadata(provider="anthropic", api="messages"),
        timestamps=FlowTimestamps(created=t + turn, completed=t + turn + 0.5),
    )  # fmt: skip


def packed_count(fs: FileStore, needle: bytes) -> int:
    """How many times ``needle`` occurs in the stored (decompressed) packs."""
    rows = sqlite3.connect(fs.content.path).execute("SELECT data, did FROM packs").fetchall()
    return sum(fs.content._dctx_for(did).decompress(blob).count(needle) for blob, did in rows)


def test_chunks_rebuild_the_bytes_and_cut_alike_after_an_insertion() -> None:
    data = json.dumps([f"line {i} of some text" for i in range(5000)]).encode()
    cuts = chunking.chunks(data)
    assert b"".join(cuts) == data
    assert all(len(c) <= chunking.MAX_CHUNK for c in cuts)
    shifted = b'{"id":"another flow"}' + data[:30000] + b"NEW" + data[30000:]
    again = chunking.chunks(shifted)
    assert b"".join(again) == shifted
    shared = set(cuts) & set(again)
    assert sum(map(len, shared)) > 0.9 * len(data)


def _reference_cut_points(data: bytes) -> list[int]:
    """The cut points by their definition, one window at a time (slow, obviously right): a
    candidate after byte i where the low bits of the sum of the table values of the window
    ending at i (within the line) are 0; then the minimum and maximum chunk sizes."""
    table = [int(v) for v in chunking._TABLE]
    n = len(data)
    if n == 0:
        return []
    if n <= chunking.MIN_CHUNK:
        return [n]
    values = [table[b] for b in data]
    candidates = [
        i + 1
        for i in range(n)
        if sum(values[max(0, i - chunking.WINDOW + 1) : i + 1]) & chunking.MASK == 0
    ]
    return chunking._cuts(n, candidates)


def test_a_batch_is_cut_as_each_line_alone_and_as_defined() -> None:
    # The cut points decide which chunks dedupe against what is stored: cutting a whole write
    # at once (lines concatenated) must cut each line exactly as it would alone, and as the
    # definition says (stores written before the batched cutting share their chunks).
    import random

    rng = random.Random(7)
    lines = [b"", b"x", b"y" * 31, b"z" * 256, b"w" * 257]
    lines += [rng.randbytes(rng.choice([40, 300, 3000, 20000])) for _ in range(12)]
    lines += [json.dumps([f"item {i}" for i in range(k)]).encode() for k in (50, 900, 4000)]
    rng.shuffle(lines)
    together = chunking.cut_many(lines)
    assert together == [chunking.cut_many([line])[0] for line in lines]
    for line, cuts in zip(lines, together, strict=True):
        if len(line) <= 5000:
            assert cuts == _reference_cut_points(line)
        assert cuts == chunking.cut_points(line)
        assert (cuts[-1] if cuts else 0) == len(line)


def test_recipes_written_compressed_by_the_previous_version_still_read(tmp_path: Path) -> None:
    import zstandard

    from flowbook.store import recipes

    ops: list[bytes | tuple[int, int]] = [b"a" * 16, (3, 4), b"b" * 16]
    assert recipes.decode_ops(recipes.encode_ops(ops)) == ops
    old = zstandard.ZstdCompressor(level=3).compress(recipes.encode_ops(ops))
    assert recipes.decode_ops(old) == ops
    store = content.ContentStore(tmp_path)
    lines = [flow_line(agent_flow(i)) for i in range(4)]
    rhs = store.put_many(lines)
    # Rewrite every stored recipe of a form that version wrote (ops, not a named pack) as it
    # stored them: zstd frames.
    rows = store._conn.execute("SELECT rid, ops FROM recipes").fetchall()
    cctx = zstandard.ZstdCompressor(level=3)
    rows = [(rid, blob) for rid, blob in rows if recipes.decode_pack(blob) is None]
    assert rows
    for rid, blob in rows:
        store._conn.execute("UPDATE recipes SET ops=? WHERE rid=?", (cctx.compress(blob), rid))
    store.close()
    again = content.ContentStore(tmp_path)
    assert [again.get(rh) for rh in rhs] == lines
    again.close()


def test_recipes_name_the_pack_of_new_chunks_and_read_back_after_a_reopen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ordinary lines' recipes name their pack (not a digest per chunk); a delta of such a
    recipe still reads once the cache is gone, and after the named recipe's line expired."""
    import random

    from flowbook.store import recipes

    monkeypatch.setattr(content, "GRACE_S", 0.0)
    rng = random.Random(3)
    shared = rng.randbytes(8000)  # chunks every line repeats (a system prompt)
    plain = [rng.randbytes(6000) + shared + rng.randbytes(9000) for _ in range(6)]
    store = content.ContentStore(tmp_path)
    rhs = store.put_many(plain[:1]) + store.put_many(plain[1:])
    turns = [flow_line(agent_flow(i)) for i in range(6)]
    trhs = store.put_many(turns)
    rows = dict(store._conn.execute("SELECT rh, ops FROM recipes"))
    named = [recipes.decode_pack(rows[rh]) for rh in rhs]
    assert all(n is not None for n in named)
    # A line's own bytes are listed by length (2-3 bytes each), a repeated chunk by digest.
    assert all(isinstance(e, int) for e in named[0][1])  # type: ignore[index]
    assert all(any(isinstance(e, bytes) for e in n[1]) for n in named[1:])  # type: ignore[index]
    assert (
        sum(len(rows[rh]) for rh in rhs) < 17 * sum(len(chunking.cut_points(x)) for x in plain) / 3
    )
    assert recipes.decode_pack(rows[trhs[0]]) is not None  # the first turn: all new
    base = store._conn.execute("SELECT base FROM recipes WHERE rh=?", (trhs[1],)).fetchone()[0]
    assert base == trhs[0]  # the next turn is a delta of it
    store.close()
    again = content.ContentStore(tmp_path)  # nothing cached
    assert [again.get(rh) for rh in rhs + trhs] == plain + turns
    # The first turn's and the first plain line's lines are gone: the plain line's recipe and
    # its own chunks' rows go (its pack stays whole: it holds the chunk the others repeat),
    # the first turn's recipe and pack stay as the base of the next.
    got = again.collect(rhs[1:] + trhs[1:])
    assert got["recipes"] == 1 and got["chunks"] >= 2 and got["packs"] == 0
    again.close()
    third = content.ContentStore(tmp_path)
    assert [third.get(rh) for rh in rhs[1:] + trhs[1:]] == plain[1:] + turns[1:]
    with pytest.raises(content.ContentMissing):
        third.get(rhs[0])
    third.close()


def test_recipes_listing_every_digest_still_read_and_collect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recipes written before recipes named packs (a digest per chunk) read and collect."""
    from flowbook.store import recipes

    monkeypatch.setattr(content, "GRACE_S", 0.0)
    import random

    rng = random.Random(5)
    shared = rng.randbytes(3000)
    lines = [rng.randbytes(5000) + shared + rng.randbytes(7000) for _ in range(5)]
    store = content.ContentStore(tmp_path)
    rhs = store.put_many(lines)
    turns = [flow_line(agent_flow(i)) for i in range(4)]
    trhs = store.put_many(turns)
    # Rewrite every named-pack recipe as the previous version wrote it: the digest list.
    rewritten = 0
    for rid, blob in store._conn.execute("SELECT rid, ops FROM recipes").fetchall():
        pack = recipes.decode_pack(blob)
        if pack is not None:
            data = store._pack(pack[0])
            old = recipes.encode_ops(list(content.pack_digests(data, pack[1])))
            store._conn.execute("UPDATE recipes SET ops=? WHERE rid=?", (old, rid))
            rewritten += 1
    assert rewritten >= 6  # the five lines and the first turn
    store.close()
    again = content.ContentStore(tmp_path)
    assert [again.get(rh) for rh in rhs + trhs] == lines + turns
    again.collect(rhs[2:] + trhs[1:])
    again.close()
    third = content.ContentStore(tmp_path)
    assert [third.get(rh) for rh in rhs[2:] + trhs[1:]] == lines[2:] + turns[1:]
    third.close()


def test_one_write_of_many_lines_rotates_segments_and_reads_back(tmp_path: Path) -> None:
    from flowbook.store.segments import SegmentWriter, read_line

    writer = SegmentWriter(tmp_path, max_bytes=100)
    lines = [(f"line {i} " + "x" * (i * 7 % 60)).encode() + b"\n" for i in range(30)]
    places = writer.write_many(lines)
    writer.close()
    assert len({p for p, _ in places}) > 3  # rotated at the size limit
    for line, (path, off) in zip(lines, places, strict=True):
        assert read_line(tmp_path / path, off, len(line)) == line.rstrip(b"\n")
    for path in {p for p, _ in places}:
        size = (tmp_path / path).stat().st_size
        assert size <= 100 or sum(1 for p, _ in places if p == path) == 1


def test_delta_recipes_round_trip(tmp_path: Path) -> None:
    store = content.ContentStore(tmp_path)
    lines = [flow_line(agent_flow(i)) for i in range(12)]
    rhs = store.put_many(lines)
    assert len(set(rhs)) == 12
    depths = [r[0] for r in store._conn.execute("SELECT depth FROM recipes")]
    assert max(depths) >= 3  # later turns are deltas of earlier ones
    store.close()
    again = content.ContentStore(tmp_path)  # nothing cached: rebuilt from the database
    assert [again.get(rh) for rh in rhs] == lines
    stored = again._conn.execute("SELECT sum(len) FROM chunks").fetchone()[0]
    assert stored < sum(map(len, lines)) / 2
    again.close()


def test_agent_session_stores_the_system_prompt_once_and_search_maps_back(tmp_path: Path) -> None:
    flows = [agent_flow(i) for i in range(10)]
    with FileStore(tmp_path) as fs:
        fs.append_many(flows[:4])
        for f in flows[4:]:
            fs.append(f)
    with FileStore(tmp_path) as fs:
        for f in flows:
            assert flow_line(fs.get(f.id)) == flow_line(f)  # type: ignore[arg-type]
        idx = sqlite3.connect(fs.index_path)
        texts = [r[0] for r in idx.execute("SELECT pid FROM pieces")]
        n_system = len(fs.ids_matching_text("request", "Keep changes small and run"))
        assert n_system == 10
        hits = fs.ids_matching_text("content", "s turn 3: please look at file_3.py")
        assert hits == {f.id for f in flows[3:]}
        assert fs.ids_matching_text("response", "done with step 7.") == {"s-turn-007"}
        assert fs.ids_matching_text("request", "done with step 7.") == {f.id for f in flows[8:]}
        assert fs.ids_matching_text("content", "t8") == set()  # short: scans the pieces
        assert fs.ids_matching_text("request", "e_9") == {"s-turn-009"}
        # One piece per distinct text: the system prompt is indexed once, not ten times.
        assert len(texts) < 40
        holding = packed_count(fs, SYSTEM[2000:2060].encode())
        assert 1 <= holding <= 4  # raw body and parsed copy, not once per turn


def test_retention_keeps_content_a_newer_flow_shares(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(content, "GRACE_S", 0.0)
    now = T0 + 30 * 86400
    old = [agent_flow(i, t=T0) for i in range(5)]  # expired
    new = [agent_flow(i, t=now - 100) for i in range(5, 8)]  # same session, recent
    other = agent_flow(0, t=T0, session="zz-gone")
    with FileStore(tmp_path) as fs:
        fs.append_many([*old, other])
        fs.append_many(new)
        before = fs.content.size()
        assert fs.ids_matching_text("content", "s turn 2: please") == {f.id for f in old[2:] + new}
        assert fs.apply_retention(7, now=now) == 6
        assert set(fs.ids()) == {f.id for f in new}
        for f in new:
            assert flow_line(fs.get(f.id)) == flow_line(f)  # type: ignore[arg-type]
        # Messages the removed turns introduced are still found in the flows that carry them.
        assert fs.ids_matching_text("content", "s turn 2: please") == {f.id for f in new}
        assert fs.ids_matching_text("content", "zz-gone turn 0") == set()
        assert fs.ids_matching_text("request", "Keep changes small") == {f.id for f in new}
        # The other session's content went; the expired turns' recipes stay as long as the
        # kept turns are deltas of them.
        assert packed_count(fs, b"zz-gone turn 0") == 0
        assert packed_count(fs, b"s turn 2: please") >= 1
    with FileStore(tmp_path) as fs:  # and after a reopen (no caches)
        for f in new:
            assert flow_line(fs.get(f.id)) == flow_line(f)  # type: ignore[arg-type]
        assert fs.content.size() <= before


def test_content_without_a_line_is_harmless_and_collected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill between the content commit and the segment write leaves only unused content."""
    monkeypatch.setattr(content, "GRACE_S", 0.0)
    with FileStore(tmp_path) as fs:
        fs.append(agent_flow(0))
        fs.content.put_many([flow_line(agent_flow(1, session="orphan"))])  # line never written
    with FileStore(tmp_path) as fs:
        assert fs.ids() == ["s-turn-000"] and fs.recovery_report == []
        fs.apply_retention(7, now=T0 + 1)  # nothing expired: nothing collected
        assert len(fs) == 1
        fs.remove([])
        fs.append(agent_flow(1))
        fs.remove(["s-turn-001"])  # a removal collects what no line refers to
        n = sqlite3.connect(fs.content.path).execute("SELECT count(*) FROM recipes").fetchone()
        assert n[0] == 1
        assert flow_line(fs.get("s-turn-000")) == flow_line(agent_flow(0))  # type: ignore[arg-type]


def test_missing_content_is_reported_not_fatal(tmp_path: Path) -> None:
    with FileStore(tmp_path) as fs:
        fs.append(agent_flow(0))
        index_path = fs.index_path
    (tmp_path / "flows" / content.CONTENT_FILE).unlink()
    index_path.unlink()
    with FileStore(tmp_path) as fs:
        assert len(fs) == 0
        assert "content is missing" in " ".join(fs.recovery_report)


def test_a_data_dir_of_the_previous_format_opens_without_loss(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE_V1 / "data", tmp_path / "data")
    expected = [json.loads(x) for x in (FIXTURE_V1 / "v1-expected.jsonl").read_text().splitlines()]
    with FileStore(tmp_path / "data") as fs:
        assert "older format" in " ".join(fs.recovery_report)
        assert sorted(fs.ids()) == sorted(d["id"] for d in expected)
        for d in expected:
            got = fs.get(d["id"])
            assert got is not None
            if d["id"] == "v1-002":
                assert got.annotations.bookmarked and got.annotations.tags == ["keep", "zebra"]
                assert got.annotations.comment == "look"
                got.annotations = LLMFlow.from_dict(d).annotations
            assert got.to_dict() == d
        assert fs.get("v1-binary").response.body == bytes(range(256))  # type: ignore[union-attr]
        assert fs.ids_matching_text("content", "question 4 about zebras") == {
            "v1-004", "v1-005", "v1-binary"
        }  # fmt: skip
        frame = fs.summary_frame()
        assert bool(frame.set_index("id").loc["v1-002", "bookmarked"])
        fs.append(agent_flow(0))  # new flows go in the new format beside the old segments
    with FileStore(tmp_path / "data") as fs:
        assert fs.recovery_report == []
        assert len(fs) == len(expected) + 1
        assert fs.get("v1-003") is not None and fs.get("s-turn-000") is not None


def test_an_index_of_format_2_is_rebuilt_from_segments_and_content(tmp_path: Path) -> None:
    """The index is a cache: one written by the previous format (1 KB pages, FTS with column
    sizes) is thrown away and rebuilt, and the flows, search and annotations come back."""
    from flowbook.model import FlowAnnotations
    from flowbook.store import index

    flows = [agent_flow(i) for i in range(6)] + [agent_flow(0, session="other")]
    with FileStore(tmp_path) as fs:
        fs.append_many(flows)
        fs.set_annotations("s-turn-002", FlowAnnotations(bookmarked=True, tags=["keep"]))
        index_path = fs.index_path
    # Make it a format-2 index: the layout that version wrote, and its version mark.
    old = sqlite3.connect(index_path)
    old.execute("PRAGMA journal_mode=DELETE")
    old.execute("PRAGMA page_size=1024")
    old.execute("VACUUM")
    old.execute("DROP TABLE pfts")
    old.execute(
        "CREATE VIRTUAL TABLE pfts USING fts5(text, content='', tokenize='trigram', detail='none')"
    )
    old.execute("UPDATE meta SET value='2' WHERE key='schema'")
    old.commit()
    old.close()
    with FileStore(tmp_path) as fs:
        assert "older format" in " ".join(fs.recovery_report)
        assert "7 flow(s) indexed" in " ".join(fs.recovery_report)
        idx = sqlite3.connect(fs.index_path)
        assert idx.execute("PRAGMA page_size").fetchone()[0] == 4096
        assert index.meta_get(idx, "schema") == index.SCHEMA_VERSION != "2"
        assert (
            "columnsize=0"
            in idx.execute("SELECT sql FROM sqlite_schema WHERE name='pfts'").fetchone()[0]
        )
        for f in flows:
            if f.id != "s-turn-002":  # (its annotations changed)
                assert flow_line(fs.get(f.id)) == flow_line(f)  # type: ignore[arg-type]
        assert fs.ids_matching_text("content", "s turn 3: please look") == {
            f.id for f in flows[3:6]
        }
        assert fs.ids_matching_text("response", "other done with step 0.") == {"other-turn-000"}
        frame = fs.summary_frame().set_index("id")
        assert bool(frame.loc["s-turn-002", "bookmarked"])
        fs.remove(["s-turn-005"])  # deleting from the rebuilt FTS works
        assert fs.ids_matching_text("request", "s turn 5: please") == set()
    with FileStore(tmp_path) as fs:
        assert fs.recovery_report == []
        assert len(fs) == 6


def test_piece_texts_compressed_with_a_trained_dictionary_stay_searchable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flowbook.store import pieces

    monkeypatch.setattr(pieces, "_DICT_SAMPLES", 4000)
    monkeypatch.setattr(pieces, "_DICT_MIN_SAMPLES", 8)
    flows = [agent_flow(i, session=f"d{i}") for i in range(12)]
    with FileStore(tmp_path) as fs:
        fs.append_many(flows[:6])
        fs.append_many(flows[6:])
        idx = sqlite3.connect(fs.index_path)
        assert idx.execute("SELECT count(*) FROM pdicts").fetchone()[0] == 1
        assert fs.ids_matching_text("content", "d11 turn 5: please") == {"d11-turn-011"}
        fs.remove(["d11-turn-011"])  # FTS delete needs the text back through the dictionary
        assert fs.ids_matching_text("content", "d11 turn 5: please") == set()
    with FileStore(tmp_path) as fs:  # a new process-like reader
        assert fs.ids_matching_text("content", "d10 turn 10: please") == {"d10-turn-010"}


def test_content_dictionaries_are_trained_in_two_stages_and_every_pack_reads_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small dictionary early, a bigger one once more new content came; packs written with
    either (and before either) read back byte for byte, also after reopening."""
    import random

    monkeypatch.setattr(content, "DICT_STAGES", ((1024, 20_000), (4096, 80_000)))
    monkeypatch.setattr(content, "DICT_SAMPLE_CAP", 40_000)
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa", "lambda"]
    lines = [
        json.dumps({"i": i, "text": " ".join(rng.choice(words) for _ in range(150))}).encode()
        for i in range(300)
    ]
    store = content.ContentStore(tmp_path)
    rhs = []
    for i in range(0, len(lines), 10):
        rhs += store.put_many(lines[i : i + 10])
    dids = [r[0] for r in store._conn.execute("SELECT DISTINCT did FROM packs ORDER BY did")]
    assert store._conn.execute("SELECT count(*) FROM dicts").fetchone()[0] == 2
    assert len(dids) == 3  # none, the first dictionary, the second
    sizes = [len(r[0]) for r in store._conn.execute("SELECT data FROM dicts ORDER BY did")]
    assert sizes[0] <= 1024 < sizes[1] <= 4096
    store.close()
    again = content.ContentStore(tmp_path)
    assert again._did == dids[-1] and again._stage == 2
    assert [again.get(rh) for rh in rhs] == lines
    again.close()


def test_search_follows_branching_inheritance_only_as_far_as_each_link_reaches(
    tmp_path: Path,
) -> None:
    """Sessions that share a prefix and then branch: a hit at message position p of a flow is
    in the descendants whose links cover p, and stays found when the parent is removed."""

    def flow(fid: str, texts: list[str], k: int) -> LLMFlow:
        msgs = [Message("user" if i % 2 == 0 else "assistant", [Part("text", text=t)])
                for i, t in enumerate(texts)]  # fmt: skip
        return LLMFlow(
            id=fid,
            state=FlowState.COMPLETED,
            request=LLMRequest(url="https://api.anthropic.com/v1/messages", messages=msgs),
            response=LLMResponse(status_code=200, text=f"answer to {fid}"),
            timestamps=FlowTimestamps(created=T0 + k, completed=T0 + k + 0.5),
        )

    root = ["question alpha zero"]
    chain1 = [*root, "reply alpha one", "question alpha two"]
    chain2 = [*chain1, "reply alpha three", "question alpha four"]
    branch = [*root, "question beta branch"]
    flows = [
        flow("root", root, 0),
        flow("c1", chain1, 1),
        flow("c2", chain2, 2),
        flow("b1", branch, 3),
    ]
    with FileStore(tmp_path) as fs:
        fs.append_many(flows)
        idx = sqlite3.connect(fs.index_path)
        links = dict(idx.execute("SELECT f.id, i.n FROM inherit i JOIN flows f USING(fid)"))
        assert links == {"root": 0, "c1": 1, "c2": 3, "b1": 1}  # the scenario is what we meant
        assert fs.ids_matching_text("request", "question alpha zero") == {"root", "c1", "c2", "b1"}
        assert fs.ids_matching_text("request", "alpha two") == {"c1", "c2"}
        assert fs.ids_matching_text("request", "alpha four") == {"c2"}
        assert fs.ids_matching_text("request", "beta branch") == {"b1"}
        assert fs.ids_matching_text("content", "answer to c1") == {"c1"}
        fs.remove(["c1", "root"])
        assert fs.ids_matching_text("request", "question alpha zero") == {"c2", "b1"}
        assert fs.ids_matching_text("request", "alpha two") == {"c2"}
        assert fs.ids_matching_text("content", "answer to c1") == set()


def test_the_index_hands_free_pages_back_when_the_store_closes(tmp_path: Path) -> None:
    flows = [agent_flow(0, session=f"p{i}") for i in range(60)]
    with FileStore(tmp_path) as fs:
        fs.append_many(flows)
        fs.remove([f.id for f in flows[:50]])
        index_path = fs.index_path
        idx = sqlite3.connect(index_path)
        assert idx.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        assert idx.execute("PRAGMA freelist_count").fetchone()[0] > 0  # removal freed pages
        idx.close()
    idx = sqlite3.connect(index_path)
    assert idx.execute("PRAGMA freelist_count").fetchone()[0] == 0
    idx.close()
    with FileStore(tmp_path) as fs:
        assert len(fs) == 10 and fs.ids_matching_text("request", "p55 turn 0") == {"p55-turn-000"}


def test_collected_content_leaves_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Retention's collection hands every freed page back, not one per run."""
    monkeypatch.setattr(content, "GRACE_S", 0.0)
    flows = [agent_flow(0, session=f"c{i}-" + "x" * i) for i in range(80)]
    with FileStore(tmp_path) as fs:
        fs.append_many(flows)
        full = fs.content.size()
        fs.remove([f.id for f in flows[:70]])
        conn = sqlite3.connect(fs.content.path)
        assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
        conn.close()
        assert fs.content.size() < full * 0.6
        for f in flows[70:]:
            assert flow_line(fs.get(f.id)) == flow_line(f)  # type: ignore[arg-type]
