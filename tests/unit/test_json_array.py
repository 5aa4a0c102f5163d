"""JSONArrayDecoder: Gemini's growing JSON array, any chunking, junk reported not raised."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from flowbook.streams import make_decoder
from flowbook.streams.content_encoding import ContentDecoder
from flowbook.streams.json_array import JSONArrayDecoder
from tests.helpers.fixtures import load_cassette, read_fixture, split_random

DECODED = "gemini/stream-json-array-thought-functioncall-gzip.response-1.decoded.json"
CASSETTE = "gemini/stream-json-array-thought-functioncall-gzip.cassette.yaml"


def decode(pieces: list[bytes]) -> tuple[list[object], list[str]]:
    dec = JSONArrayDecoder()
    out = []
    for i, piece in enumerate(pieces):
        out += [e.data for e in dec.feed(piece, float(i))]
    out += [e.data for e in dec.close(float(len(pieces)))]
    return out, dec.errors


def test_make_decoder_builds_it() -> None:
    assert isinstance(make_decoder("json_array"), JSONArrayDecoder)


def test_recorded_array_whole_and_in_random_chunks() -> None:
    body = read_fixture(DECODED)
    assert b"\n,\r\n{" in body  # the recording's separator, CRLF included
    expected = json.loads(body)
    assert decode([body]) == (expected, [])
    for seed in range(8):
        assert decode(split_random(body, seed, 1, 9)) == (expected, [])
    # One byte at a time: every boundary, including inside strings and escapes.
    assert decode([body[i : i + 1] for i in range(len(body))]) == (expected, [])


def test_gzip_cassette_bodies_decode_to_the_array_elements() -> None:
    for ia in load_cassette(CASSETTE):
        assert ia.response.content_encoding == "gzip"
        expected = json.loads(ia.response.decoded_body())
        for seed in range(4):
            content = ContentDecoder("gzip")
            pieces = [content.feed(p) for p in split_random(ia.response.body, seed, 1, 40)]
            assert decode(pieces) == (expected, [])


def test_events_arrive_as_soon_as_each_element_closes() -> None:
    dec = JSONArrayDecoder()
    assert dec.feed(b'[{"a": 1') == []
    first = dec.feed(b"}\n,\r\n{")
    assert [e.data for e in first] == [{"a": 1}]
    assert [e.data for e in dec.feed(b'"b": 2}\n]', 5.0)] == [{"b": 2}]
    assert dec.close() == [] and dec.errors == []


def test_braces_quotes_and_escapes_inside_strings_do_not_count() -> None:
    value = {"t": 'x}{"\\\\"}', "u": "é🙂 \\u00e9", "n": [{"k": "]"}]}
    body = b"[" + json.dumps(value, ensure_ascii=False).encode() + b"]"
    for i in range(1, len(body)):
        assert decode([body[:i], body[i:]]) == ([value], [])


def test_bare_object_body_decodes_as_one_event() -> None:
    body = b'{"error": {"code": 500, "message": "boom", "status": "INTERNAL"}}\n'
    assert decode([body]) == ([json.loads(body)], [])


def test_junk_between_elements_is_reported_and_skipped() -> None:
    data, errors = decode([b'[{"a": 1},\n garbage\n, {"b": 2}]'])
    assert data == [{"a": 1}, {"b": 2}]
    assert len(errors) == 1 and "garbage" in errors[0]


def test_element_that_does_not_parse_is_reported() -> None:
    data, errors = decode([b'[{"a": nope}, {"b": 2}]'])
    assert data == [{"b": 2}]
    assert len(errors) == 1 and "does not parse" in errors[0]


def test_torn_element_and_unclosed_array_are_reported_on_close() -> None:
    data, errors = decode([b'[{"a": 1}, {"b": "cut'])
    assert data == [{"a": 1}]
    assert len(errors) == 1 and "inside a JSON array element" in errors[0]
    data, errors = decode([b'[{"a": 1}\n'])
    assert data == [{"a": 1}]
    assert errors == ["stream ended before the JSON array was closed"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(
    elements=st.lists(st.dictionaries(st.text(max_size=6), json_values, max_size=4), max_size=4),
    seed=st.integers(0, 1000),
    indent=st.sampled_from([None, 2]),
)
def test_any_array_of_objects_round_trips_under_any_chunking(
    elements: list[dict[str, object]], seed: int, indent: int | None
) -> None:
    body = (
        "[" + "\n,\r\n".join(json.dumps(e, indent=indent, ensure_ascii=False) for e in elements)
    ) + "\n]"
    assert decode(split_random(body.encode(), seed, 1, 7)) == (elements, [])
