"""The detail widget's kernel side with the real proxy and fake upstream: ``fb.show`` and
``%flowmon show``, notes saved through the store (tags removed too), live refresh of a flow
that is still streaming, and the static HTML fallback where widgets do not render."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import openai
import pytest

import flowbook as fb
from flowbook.fake_upstream import FakeUpstream
from flowbook.magics import MagicUsageError, run_line
from flowbook.ui.detail import FlowDetail
from tests.helpers.flows import only_flow, wait_for

pytestmark = pytest.mark.integration


def _ask(proxy_url: str, text: str) -> None:
    client = openai.OpenAI(base_url=proxy_url + "/v1", api_key="sk-test-1234567890abcdef")
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}], max_tokens=50
    )


def test_show_and_magic_show_build_the_detail_widget(proxy_url: str) -> None:
    _ask(proxy_url, "hello detail")
    flow = only_flow()
    w = fb.show(flow.id)
    assert isinstance(w, FlowDetail)
    assert w.payload["response"]["text"] == "Echo: hello detail"
    assert w.payload["overview"]["usage_source"] == "reported"
    m = run_line(f"show {flow.id}")
    assert isinstance(m, FlowDetail) and m.payload["id"] == flow.id
    with pytest.raises(MagicUsageError, match="no flow with id 'nope'"):
        run_line("show nope")
    # Where widgets do not render, the output carries the escaped HTML summary.
    data, _meta = w._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    assert "Echo: hello detail" in data["text/html"]


def test_notes_are_saved_exactly_and_persisted(proxy_url: str, data_dir: Path) -> None:
    _ask(proxy_url, "annotate me")
    flow = only_flow()
    w = fb.show(flow.id)
    w.annotate(bookmarked=True, tags=["keep", "look"], comment="first")
    w.annotate(bookmarked=True, tags=["look", "new"], comment="second")
    assert w.payload["notes"]["tags"] == ["look", "new"]
    stored = fb.get_flow(flow.id).annotations
    assert (stored.bookmarked, stored.tags, stored.comment) == (True, ["look", "new"], "second")
    assert fb.flows("tag:keep").empty and list(fb.flows("tag:new")["id"]) == [flow.id]
    # A bad tag is refused with a message; nothing changes.
    with pytest.raises(ValueError, match="without commas"):
        w.annotate(bookmarked=False, tags=["a,b"], comment="")
    assert fb.get_flow(flow.id).annotations.tags == ["look", "new"]
    # The browser's message path answers with ok/error.
    sent: list[dict[str, object]] = []
    w.send = lambda content, buffers=None: sent.append(content)  # type: ignore[method-assign]
    w._on_custom(w, {"type": "annotate", "req": 7, "tags": ["x,y"]}, [])
    assert sent[-1]["ok"] is False and sent[-1]["req"] == 7 and "commas" in str(sent[-1]["error"])


def test_a_streaming_flow_refreshes_until_it_completes(data_dir: Path) -> None:
    with FakeUpstream() as up:
        mon = fb.start(port=0, mode=f"reverse:{up.url}", data_dir=data_dir)
        try:
            body = {
                "model": "gpt-4o-mini",
                "stream": True,
                "messages": [{"role": "user", "content": "one two three four five six seven"}],
            }
            done = threading.Event()

            def call() -> None:
                with httpx.stream(
                    "POST",
                    f"{mon.proxy_url}/v1/chat/completions",
                    json=body,
                    timeout=30,
                    headers={"x-fake-delay": "0.8"},  # ~8 s of stream: time to open the widget
                ) as r:
                    for _ in r.iter_bytes():
                        pass
                done.set()

            threading.Thread(target=call, daemon=True).start()
            assert wait_for(lambda: "streaming" in set(fb.flows()["state"]), 20)
            flow_id = fb.flows().iloc[0]["id"]
            w = fb.show(flow_id)
            assert w.payload["state"] == "streaming"
            assert done.wait(30)
            # The store's change signal re-sends the payload; no re-run of the cell needed.
            assert wait_for(lambda: w.payload["state"] == "completed", 20), w.payload["state"]
            assert w.payload["response"]["text"] == "Echo: one two three four five six seven"
            assert w._unwatch is None  # a final flow stops listening
        finally:
            fb.stop()


def test_code_tab_follows_the_code_generator(proxy_url: str) -> None:
    from flowbook.ui.detail_payload import code_generator

    _ask(proxy_url, "code for this")
    w = fb.show(only_flow().id)
    sent: list[dict[str, object]] = []
    w.send = lambda content, buffers=None: sent.append(content)  # type: ignore[method-assign]
    w._on_custom(w, {"type": "code", "format": "curl", "req": 3}, [])
    reply = sent[-1]
    assert reply["req"] == 3
    if code_generator() is None:  # a build without fb.generate_code: no Code tab, a clear reply
        assert w.payload["code_formats"] == []
        assert reply["ok"] is False and "not available" in str(reply["error"])
    else:
        assert "curl" in w.payload["code_formats"] and reply["ok"] is True
        code = str(reply["code"])
        assert "code for this" in code and "sk-test-1234567890abcdef" not in code
        w._on_custom(w, {"type": "code", "format": "cobol", "req": 4}, [])
        assert sent[-1]["ok"] is False and "cobol" in str(sent[-1]["error"])
