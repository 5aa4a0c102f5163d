"""The SSE decoder gives the same events however the bytes are split, for LF, CRLF and CR line
ends (its LF-only fast path and its general path must agree)."""

from __future__ import annotations

import random

import pytest

from flowbook.streams.sse import SSEDecoder

STREAM = (
    "".join(f'event: e{i}\ndata: {{"i": {i}, "s": "é{i}"}}\n\n' for i in range(40))
    + ": a comment\nid: 7\ndata: line one\ndata: line two\n\ndata: [DONE]\n\n"
)


@pytest.mark.parametrize("ends", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_any_split_gives_the_same_events(ends: str) -> None:
    data = STREAM.replace("\n", ends).encode()
    whole = SSEDecoder()
    ref = [(e.event, e.data) for e in [*whole.feed(data, 0.0), *whole.close(0.0)]]
    assert len(ref) == 42 and ref[0] == ("e0", {"i": 0, "s": "é0"})
    assert ref[40] == (None, "line one\nline two") and ref[41] == (None, "[DONE]")
    rng = random.Random(11)
    for _ in range(150):
        d, out, i = SSEDecoder(), [], 0
        while i < len(data):
            j = i + rng.randint(1, 48)  # splits inside CRLF pairs and UTF-8 sequences too
            out += d.feed(data[i:j], 0.0)
            i = j
        out += d.close(0.0)
        assert [(e.event, e.data) for e in out] == ref


def test_an_unterminated_last_event_is_kept_and_reported() -> None:
    d = SSEDecoder()
    events = [*d.feed(b'data: {"a": 1}\n\ndata: {"b": 2}', 0.0), *d.close(0.0)]
    assert [e.data for e in events] == [{"a": 1}, {"b": 2}]
    assert d.errors == ["stream ended inside an SSE event (no blank line after it)"]
