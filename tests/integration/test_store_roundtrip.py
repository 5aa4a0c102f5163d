"""Byte-exact round trip through the file store: what went over the wire comes back, bit for bit,
in a new process: every recorded fixture, and an agent session captured through the proxy."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import anthropic

import flowbook as fb
from flowbook.fake_upstream import FakeUpstream
from flowbook.model import (
    FlowMetadata,
    FlowState,
    FlowTimestamps,
    LLMFlow,
    LLMRequest,
    LLMResponse,
    StreamEvent,
)
from flowbook.store.file_store import FileStore
from flowbook.store.records import flow_line
from tests.helpers.fixtures import load_cassette

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"

DUMP = """
import hashlib, json, sys
from flowbook.store.file_store import FileStore
from flowbook.store.records import flow_line
out = {}
with FileStore(sys.argv[1]) as fs:
    for i in fs.ids():
        f = fs.get(i)
        out[i] = {
            "line": hashlib.sha256(flow_line(f)).hexdigest(),
            "request": (f.request.body or b"").hex(),
            "response": (f.response.body or b"").hex() if f.response else None,
            "times": [e.t for e in f.response.events] if f.response else [],
        }
print(json.dumps(out))
"""


def dump_in_new_process(data_dir: Path) -> dict[str, dict]:
    out = subprocess.run(
        [sys.executable, "-c", DUMP, str(data_dir)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def fixture_flows() -> list[LLMFlow]:
    """One flow per recorded exchange or body file, its bytes exactly as recorded."""
    flows: list[LLMFlow] = []
    t = 1_760_000_000.123456
    for path in sorted(REAL.rglob("*")):
        if not path.is_file() or path.name == "SOURCES.md":
            continue
        rel = path.relative_to(REAL).as_posix()
        if path.name.endswith(".cassette.yaml"):
            pairs = [(ia.request.body, ia.response.body) for ia in load_cassette(rel)]
        else:
            pairs = [(b"", path.read_bytes())]
        for k, (req_body, resp_body) in enumerate(pairs):
            # Chunks as they might arrive, each stamped with an arrival time.
            pieces = [resp_body[j : j + 97] for j in range(0, len(resp_body), 97)]
            events = [
                StreamEvent(t + j * 0.0173, None, piece.decode("latin-1"))
                for j, piece in enumerate(pieces)
            ]
            flows.append(
                LLMFlow(
                    id=f"{rel}#{k}",
                    state=FlowState.COMPLETED,
                    request=LLMRequest(body=req_body, host="fixture", path="/" + rel),
                    response=LLMResponse(status_code=200, body=resp_body, events=events),
                    metadata=FlowMetadata(provider="fixture", api="raw"),
                    timestamps=FlowTimestamps(created=t, completed=t + 1),
                )
            )
            t += 1.5
    return flows


def test_every_fixture_round_trips_byte_exact_in_a_new_process(tmp_path: Path) -> None:
    flows = fixture_flows()
    assert len(flows) >= 30
    with FileStore(tmp_path) as fs:
        fs.append_many(flows[: len(flows) // 2])
        for f in flows[len(flows) // 2 :]:
            fs.append(f)
    got = dump_in_new_process(tmp_path)
    assert set(got) == {f.id for f in flows}
    for f in flows:
        g = got[f.id]
        assert bytes.fromhex(g["request"]) == f.request.body
        assert f.response is not None
        assert bytes.fromhex(g["response"]) == f.response.body
        assert g["times"] == [e.t for e in f.response.events]
        assert g["line"] == hashlib.sha256(flow_line(f)).hexdigest()


SYSTEM = " ".join(
    f"Rule {i}: read file {i} before editing it, then run test {i * 3}." for i in range(130)
)
TOOLS = [
    {"name": f"tool_{i}", "description": f"Tool {i} edits files. " * 5,
     "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}
    for i in range(20)
]  # fmt: skip


def test_agent_session_through_the_proxy_is_stored_once_and_found(data_dir: Path) -> None:
    turns = 8
    with FakeUpstream() as up:
        mon = fb.start(port=0, mode=f"reverse:{up.url}", data_dir=data_dir)
        try:
            client = anthropic.Anthropic(
                base_url=mon.proxy_url, api_key="sk-ant-test", max_retries=0
            )
            history: list[dict] = []
            for i in range(turns):
                history.append(
                    {
                        "role": "user",
                        "content": f"Turn {i}: open src/file_{i}.py and fix bug {i * 11}.",
                    }
                )
                with client.messages.stream(
                    model="claude-sonnet-4-5",
                    max_tokens=256,
                    system=SYSTEM,
                    tools=TOOLS,  # type: ignore[arg-type]
                    messages=history,  # type: ignore[arg-type]
                ) as stream:
                    msg = stream.get_final_message()
                history.append(
                    {
                        "role": "assistant",
                        "content": [b.model_dump(exclude_none=True) for b in msg.content],
                    }
                )
            assert fb.wait_idle(30)
            sent = [r.body for r in up.requests]
        finally:
            fb.stop()
        frame = fb.flows(include_history=True, page=None)
        ids = list(frame.sort_values("timestamp")["id"])
        assert len(ids) == turns
        from flowbook import api

        api._reset_for_tests()  # closes the workspace and its store

    # A new process reads back exactly the bytes the upstream received.
    got = dump_in_new_process(data_dir)
    assert [bytes.fromhex(got[i]["request"]) for i in ids] == sent

    with FileStore(data_dir) as fs:
        # Turn 3's message is in the requests of turns 3..7, and search finds all of them.
        assert fs.ids_matching_text("content", "src/file_3.py and fix bug 33") == set(ids[3:])
        assert fs.ids_matching_text("request", "Rule 77: read file 77") == set(ids)
        # The system prompt is one piece, and its bytes are stored a bounded number of times
        # (raw body and parsed copy), not once per turn.
        import sqlite3

        idx = sqlite3.connect(fs.index_path)
        assert idx.execute("SELECT count(*) FROM pieces").fetchone()[0] < 4 * turns
        rows = sqlite3.connect(fs.content.path).execute("SELECT data, did FROM packs").fetchall()
        needle = SYSTEM[3000:3050].encode()
        copies = sum(fs.content._dctx_for(d).decompress(b).count(needle) for b, d in rows)
        assert 1 <= copies <= 4
