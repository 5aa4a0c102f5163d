"""Hypothesis-generated hostile text (quotes, backticks, fences, HTML, control characters,
unicode) round-trips through every export format and back."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowbook.io import har_import, mitmproxy_io
from flowbook.io.builder import Exchange, build_flow
from flowbook.io.exporter import export
from flowbook.io.importer import read_flows
from flowbook.model import LLMFlow
from flowbook.redact import RedactionRules

TEXT = st.text(
    st.characters(exclude_categories=("Cs",)), min_size=1, max_size=60
) | st.sampled_from(
    [
        "```",
        "````\n```",
        "</details><script>x</script>",
        "| a | b |",
        "\r\n\r\n",
        "$`\\'\"",
        "~~~",
        "<!-- -->",
        "\u2028",
        "# heading",
        "x" * 1700,
    ]
)
SETTINGS = settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
NO_TEXT_RULES = RedactionRules.empty()  # the content itself must come back unchanged


def flow_with(text: str) -> LLMFlow:
    req = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    resp = {
        "id": "r1",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }
    x = Exchange(
        method="POST",
        url="https://api.openai.com/v1/chat/completions",
        request_headers={"content-type": "application/json"},
        request_body=json.dumps(req, ensure_ascii=False).encode(),
        status=200,
        response_headers={"content-type": "application/json"},
        response_body=json.dumps(resp, ensure_ascii=False).encode(),
        response_body_decoded=True,
        created=1_780_000_000.0,
        first_byte=1_780_000_000.2,
        completed=1_780_000_000.5,
        flow_id="4057113e00000001",
    )
    flow = build_flow(x, mask=False)
    assert flow is not None and flow.response is not None
    return flow


def fenced_blocks(md: str) -> list[str]:
    """Contents of every fenced block, parsed the CommonMark way (a closing fence has at least
    as many backticks as the opening one and nothing else on its line)."""
    blocks, lines, i = [], md.split("\n"), 0
    while i < len(lines):
        m = re.fullmatch(r"(`{3,})(\w*)", lines[i])
        if m:
            fence, j = m.group(1), i + 1
            while not re.fullmatch(rf"`{{{len(fence)},}}", lines[j]):
                j += 1
            blocks.append("\n".join(lines[i + 1 : j]))
            i = j
        i += 1
    return blocks


@SETTINGS
@given(text=TEXT)
def test_hostile_text_round_trips_through_every_format(text: str, tmp_path: Path) -> None:
    flow = flow_with(text)
    assert flow.response.text == text and flow.request.messages[0].text == text  # type: ignore[union-attr]

    def out(fmt: str) -> str:
        return str(export([flow], fmt, rules=NO_TEXT_RULES))

    back = next(iter(har_import.read(json.loads(out("har")))))
    assert back.response.text == text and back.request.messages[0].text == text  # type: ignore[union-attr]
    for fmt in ("json", "jsonl"):
        path = export([flow], fmt, tmp_path / f"f.{fmt}", rules=NO_TEXT_RULES)
        assert read_flows(path)[0].to_dict() == flow.to_dict()
    mitm = export([flow], "mitmproxy", rules=NO_TEXT_RULES)
    again = next(iter(mitmproxy_io.read(io.BytesIO(mitm))))  # type: ignore[arg-type]
    assert again.response.text == text  # type: ignore[union-attr]
    blocks = fenced_blocks(out("markdown"))

    # Markdown is line based: CR, LF and CRLF all end a line.
    def lines(s: str) -> str:
        return s.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")

    assert lines(text) in [lines(b) for b in blocks]
    df = pd.read_csv(io.StringIO(out("csv")), keep_default_na=False, dtype=str)
    assert list(df["id"]) == [flow.id] and df.loc[0, "model"] == "gpt-4o-mini"
