"""HAR 1.2 export: valid against the HAR schema, spec field names, real timings, the ``_llm``
extension, and loaded back by fb.load into the flows it was written from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from referencing import Registry, Resource

import flowbook as fb
from flowbook.io import har, har_import, source
from flowbook.model import LLMFlow
from tests.helpers.export_flows import fixture_flows

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "har-schema"
DEVTOOLS_HAR = Path(__file__).resolve().parents[1] / "fixtures" / "har" / "devtools-llm-calls.har"
# Every key HAR 1.2 defines for an entry, request and response (custom keys start with "_").
ENTRY_KEYS = {
    "pageref",
    "startedDateTime",
    "time",
    "request",
    "response",
    "cache",
    "timings",
    "serverIPAddress",
    "connection",
    "comment",
}
REQUEST_KEYS = {
    "method",
    "url",
    "httpVersion",
    "cookies",
    "headers",
    "queryString",
    "postData",
    "headersSize",
    "bodySize",
    "comment",
}
RESPONSE_KEYS = {
    "status",
    "statusText",
    "httpVersion",
    "cookies",
    "headers",
    "content",
    "redirectURL",
    "headersSize",
    "bodySize",
    "comment",
}


def validator() -> Draft7Validator:
    resources = []
    for p in SCHEMA_DIR.glob("*.json"):
        doc = json.loads(p.read_text())
        # draft-06 and draft-07 agree on every keyword these schemas use.
        doc["$schema"] = "http://json-schema.org/draft-07/schema#"
        resources.append((doc["$id"], Resource.from_contents(doc)))
    registry = Registry().with_resources(resources)
    return Draft7Validator({"$ref": "har.json#"}, registry=registry)


@pytest.fixture(scope="module")
def flows() -> list[LLMFlow]:
    return fixture_flows()


@pytest.fixture
def stored(data_dir: Path, flows: list[LLMFlow]) -> list[LLMFlow]:
    assert source.add_flows(flows) == [f.id for f in flows]
    return flows


def comparable(flow: LLMFlow) -> dict[str, Any]:
    """The flow as a dict without stream event times (see :func:`assert_same_flow`)."""
    d = flow.to_dict()
    d["metadata"]["extra"].pop("imported_at", None)
    for e in (d["response"] or {}).get("events", []):
        e.pop("t")
    return d


def assert_same_flow(loaded: LLMFlow, original: LLMFlow) -> None:
    """Equal flows; event arrival times equal to the microsecond HAR keeps."""
    assert comparable(loaded) == comparable(original)
    times = [e.t for e in (loaded.response.events if loaded.response else [])]
    expected = [e.t for e in (original.response.events if original.response else [])]
    assert times == pytest.approx(expected, abs=2e-6)


def test_har_validates_against_the_har_1_2_schema(stored: list[LLMFlow]) -> None:
    doc = json.loads(fb.export(None, "har"))
    errors = sorted(validator().iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
    assert doc["log"]["version"] == "1.2" and doc["log"]["creator"]["name"] == "flowbook"
    assert len(doc["log"]["entries"]) == len(stored)


def test_a_broken_har_fails_the_schema() -> None:
    """The validator can fail: the reference's wrong key name is caught."""
    entry = har.entry(fixture_flows()[0])
    entry["response"]["redirectUrl"] = entry["response"].pop("redirectURL")
    doc = {"log": {"version": "1.2", "creator": har.CREATOR, "entries": [entry]}}
    assert list(validator().iter_errors(doc))


def test_entries_use_only_spec_keys_and_real_timings(flows: list[LLMFlow]) -> None:
    for flow in flows:
        e = har.entry(flow)
        assert {k for k in e if not k.startswith("_")} <= ENTRY_KEYS
        assert {k for k in e["request"] if not k.startswith("_")} <= REQUEST_KEYS
        assert {k for k in e["response"] if not k.startswith("_")} <= RESPONSE_KEYS
        t = e["timings"]
        assert t["send"] == pytest.approx(2.0) and t["wait"] == pytest.approx(348.0)
        assert t["receive"] == pytest.approx(900.0)
        assert e["time"] == pytest.approx(t["send"] + t["wait"] + t["receive"])
        assert e["startedDateTime"].endswith("Z")


def test_streamed_entry_keeps_the_raw_stream_and_the_rebuilt_answer(flows: list[LLMFlow]) -> None:
    flow = next(
        f for f in flows if f.provider == "anthropic" and f.response and f.response.thinking
    )
    e = har.entry(flow)
    assert e["response"]["content"]["mimeType"].startswith("text/event-stream")
    assert "event: content_block_delta" in e["response"]["content"]["text"]
    ext = e["_llm"]
    assert ext["provider"] == "anthropic" and ext["api"] == "messages"
    assert ext["model"] == flow.model and ext["text"] == flow.response.text  # type: ignore[union-attr]
    assert ext["usage"]["output"] == flow.usage.output  # type: ignore[union-attr]
    assert ext["cost_usd"] == flow.metadata.cost_usd and ext["ttft_ms"] == pytest.approx(348.0)
    assert ext["thinking"] == flow.response.thinking  # type: ignore[union-attr]
    events = ext["stream_events"]
    assert len(events) == len(flow.response.events)  # type: ignore[union-attr]
    assert events[0]["offset_ms"] == pytest.approx(350.0) and events[0]["event"] == "message_start"
    tool_flow = next(
        f for f in flows if f.provider == "openai" and f.response and f.response.tool_calls
    )
    calls = har.entry(tool_flow)["_llm"]["tool_calls"]
    assert calls[0]["name"] == tool_flow.response.tool_calls[0].name  # type: ignore[union-attr]


def test_har_loads_back_into_equal_flows(
    stored: list[LLMFlow], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = fb.export(None, "har", tmp_path / "flows.har")
    assert isinstance(path, Path) and path.exists()
    from flowbook import api

    monkeypatch.setenv("FLOWBOOK_DATA_DIR", str(tmp_path / "other"))
    api._reset_for_tests()
    ids = fb.load(path)
    assert ids == [f.id for f in stored]
    for flow in stored:
        assert_same_flow(fb.get_flow(flow.id), flow)
    assert fb.load(path) == [], "loading twice adds nothing"


def test_devtools_har_imports_llm_calls_and_skips_the_rest(data_dir: Path) -> None:
    ids = fb.load(DEVTOOLS_HAR)
    assert len(ids) == 3
    flows = [fb.get_flow(i) for i in ids]
    openai_flow, anthropic_flow, gemini_flow = flows
    assert openai_flow.provider == "openai" and openai_flow.request.stream
    assert openai_flow.response.tool_calls[0].arguments == {"country": "UK"}  # type: ignore[union-attr]
    assert openai_flow.usage.source == "reported"  # type: ignore[union-attr]
    # The placeholder key was masked at rest, like live traffic.
    assert "DevToolsPlaceholderKey" not in json.dumps(openai_flow.to_dict())
    ts = openai_flow.timestamps
    assert ts.request_sent is not None  # blocked + send, then wait (time to first byte)
    assert (ts.request_sent - ts.created) * 1000 == pytest.approx(1.25 + 0.25, abs=0.01)
    assert ts.ttft_ms == pytest.approx(420.5, abs=0.01)
    assert anthropic_flow.provider == "anthropic" and anthropic_flow.response.tool_calls  # type: ignore[union-attr]
    assert gemini_flow.provider == "gemini" and gemini_flow.response.text  # type: ignore[union-attr]
    assert all(f.state == "completed" for f in flows)
    assert fb.load(DEVTOOLS_HAR) == [], "stable ids: a second load adds nothing"


def test_not_a_har_says_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a log object"):
        list(har_import.read({"log": {}}))
    bad = tmp_path / "x.har"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="unknown format"):
        fb.load(bad)


def test_an_entry_without_a_response_becomes_an_error_flow() -> None:
    entry = har.entry(fixture_flows()[0])
    entry["response"] = {
        "status": 0,
        "statusText": "",
        "httpVersion": "",
        "cookies": [],
        "headers": [],
        "content": {"size": 0, "mimeType": "x-unknown"},
        "redirectURL": "",
        "headersSize": -1,
        "bodySize": -1,
        "_error": "net::ERR_CONNECTION_RESET",
    }
    del entry["_llm"]
    (flow,) = har_import.read({"log": {"entries": [entry]}})
    assert flow.state == "error" and flow.response is None
    assert flow.error is not None and flow.error.message == "net::ERR_CONNECTION_RESET"
    assert flow.request.messages, "the request is still parsed"


def test_binary_event_streams_travel_as_base64() -> None:
    from flowbook.io.builder import build_flow
    from tests.helpers.export_flows import exchange_for

    flow = build_flow(
        exchange_for("bedrock/converse-stream-claude-reasoning.cassette.yaml", 0, 1e9)
    )
    assert flow is not None and flow.response is not None and flow.response.text
    e = har.entry(flow)
    assert e["response"]["content"]["encoding"] == "base64"
    (back,) = har_import.read({"log": {"entries": [e]}})
    assert back.response is not None and back.response.body == flow.response.body
    assert back.response.text == flow.response.text
    assert back.response.thinking == flow.response.thinking
