"""Configurable redaction: rules in the data dir's config, fb.redaction.preview, and no configured
secret in any export format or generated code."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import flowbook as fb
from flowbook.io import source
from flowbook.io.builder import Exchange, build_flow
from flowbook.model import LLMFlow
from flowbook.settings import ConfigError, ConfigManager

OPENAI_KEY = "sk-proj-Zq7Secret0penAIkey0123456789abcdEF"
GEMINI_KEY = "AIzaSyGem1niSecretKey0123456789abcdefgh"
TOOL_KEY = "sk-ant-api03-T00lCallSecret0123456789abcdef"
EVENT_KEY = "ghp_Str3amEventSecret0123456789abcdefghijk"
TICKET = "TICKET-884211"  # only the custom rule knows this one
EMAIL = "jane.doe@example.org"  # an opt-in rule
SECRET_PARTS = [
    "Zq7Secret0penAIkey",
    "Gem1niSecretKey",
    "T00lCallSecret",
    "Str3amEventSecret",
    TICKET,
    EMAIL,
]

SSE = (
    'data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":'
    '[{"index":0,"delta":{"role":"assistant","content":"Your token is ' + EVENT_KEY + '"}}]}\n\n'
    'data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":'
    '[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    "data: [DONE]\n\n"
)


def secret_flows() -> list[LLMFlow]:
    """Flows captured with masking at rest switched off (redact_sensitive=False)."""
    chat = {
        "model": "gpt-4o-mini",
        "stream": True,
        "messages": [
            {"role": "system", "content": f"Escalate {TICKET} to {EMAIL}."},
            {"role": "user", "content": f"my key is {OPENAI_KEY}"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "login", "arguments": json.dumps({"key": TOOL_KEY})},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": f"ok {TICKET}"},
        ],
    }
    a = Exchange(
        method="POST",
        url="https://api.openai.com/v1/chat/completions",
        request_headers={
            "Authorization": f"Bearer {OPENAI_KEY}",
            "Content-Type": "application/json",
        },
        request_body=json.dumps(chat).encode(),
        status=200,
        response_headers={"content-type": "text/event-stream"},
        response_body=SSE.encode(),
        response_body_decoded=True,
        created=1_780_000_000.0,
        first_byte=1_780_000_000.3,
        completed=1_780_000_001.0,
        flow_id="5ec7e75ec7e70001",
    )
    gem = {"contents": [{"role": "user", "parts": [{"text": f"hi {TICKET}"}]}]}
    b = Exchange(
        method="POST",
        url=f"https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:"
        f"generateContent?key={GEMINI_KEY}",
        request_headers={"content-type": "application/json"},
        request_body=json.dumps(gem).encode(),
        status=200,
        response_headers={"content-type": "application/json"},
        response_body=json.dumps(
            {
                "candidates": [
                    {
                        "content": {"role": "model", "parts": [{"text": f"noted {TICKET}"}]},
                        "finishReason": "STOP",
                    }
                ]
            }
        ).encode(),
        response_body_decoded=True,
        created=1_780_000_002.0,
        first_byte=1_780_000_002.5,
        completed=1_780_000_003.0,
        flow_id="5ec7e75ec7e70002",
    )
    flows = [build_flow(a, mask=False), build_flow(b, mask=False)]
    assert all(f is not None for f in flows)
    flows[0].annotations.comment = f"ask {EMAIL} about {OPENAI_KEY}"  # type: ignore[union-attr]
    return flows  # type: ignore[return-value]


@pytest.fixture
def stored(data_dir: Path) -> list[LLMFlow]:
    flows = secret_flows()
    source.add_flows(flows)
    # The raw secrets really are in the store (else the test below proves nothing).
    assert OPENAI_KEY in json.dumps(fb.get_flow(flows[0].id).to_dict())
    fb.redaction.add("ticket", r"TICKET-\d{6}", "[TICKET]")
    fb.redaction.enable("email")
    return flows


def everything_exported(ids: list[str], tmp_path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for fmt in ("har", "markdown", "json", "jsonl", "csv"):
        out[fmt] = str(fb.export(ids, fmt))
    out["mitmproxy"] = bytes(fb.export(ids, "mitmproxy")).decode("utf-8", "replace")  # type: ignore[arg-type]
    pq = fb.export(ids, "parquet", tmp_path / "pq")
    out["parquet"] = pd.read_parquet(pq).to_json()
    for flow_id in ids:
        for lang in ("curl", "python", "typescript", "go", "rust"):
            out[f"{lang} {flow_id}"] = fb.generate_code(flow_id, lang)
        out[f"sdk {flow_id}"] = fb.generate_code(flow_id, "python", sdk=True)
    return out


def test_no_configured_secret_in_any_export_or_code(stored: list[LLMFlow], tmp_path: Path) -> None:
    outputs = everything_exported([f.id for f in stored], tmp_path)
    for name, text in outputs.items():
        for part in SECRET_PARTS:
            assert part not in text, f"{part!r} leaked into {name}"
    assert "[TICKET]" in outputs["markdown"] and "[REDACTED_EMAIL]" in outputs["json"]
    assert 'os.environ["OPENAI_API_KEY"]' in outputs[f"python {stored[0].id}"]
    assert (
        "key=" in outputs[f"curl {stored[1].id}"]
        and "${GEMINI_API_KEY}" in outputs[f"curl {stored[1].id}"]
    )


def test_without_redaction_the_secrets_stay_and_a_warning_says_so(stored: list[LLMFlow]) -> None:
    with pytest.warns(UserWarning, match="secrets"):
        text = str(fb.export([stored[0].id], "json", redact_sensitive=False))
    assert TICKET in text and EMAIL in text


def test_rules_live_in_the_config_and_can_be_switched(
    stored: list[LLMFlow], data_dir: Path
) -> None:
    saved = json.loads((data_dir / "config.json").read_text())["redaction_rules"]
    assert {
        "name": "ticket",
        "pattern": r"TICKET-\d{6}",
        "replacement": "[TICKET]",
        "enabled": True,
    } in saved
    assert ConfigManager(data_dir).redaction_rules == saved, "read back by a new process"
    rules = fb.redaction.rules()
    assert {"openai_key", "bearer_token", "ticket", "email"} <= set(rules["name"])
    assert bool(rules.set_index("name").loc["email", "enabled"])
    fb.redaction.disable("openai_key", "ticket")
    text = str(fb.export([stored[0].id], "json"))
    assert OPENAI_KEY in json.loads(text)[0]["request"]["messages"][0]["parts"][0]["text"]
    assert TICKET in text
    # Header masking does not depend on the text rules: the Authorization header stays masked.
    assert json.loads(text)[0]["request"]["headers"]["authorization"].startswith("Bearer sk-")
    assert OPENAI_KEY not in json.loads(text)[0]["request"]["headers"]["authorization"]
    fb.redaction.remove("ticket")
    assert "ticket" not in set(fb.redaction.rules()["name"])
    fb.redaction.reset()
    assert not bool(fb.redaction.rules().set_index("name").loc["email", "enabled"])


def test_bad_rules_are_rejected_with_a_reason(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="bad regular expression"):
        fb.redaction.add("broken", "([a-z")
    with pytest.raises(ConfigError, match="needs a 'pattern'"):
        fb.config.redaction_rules = [{"name": "mine"}]
    with pytest.raises(KeyError, match="unknown redaction rules"):
        fb.redaction.enable("nope")


def test_preview_shows_what_would_be_masked_and_where(stored: list[LLMFlow]) -> None:
    df = fb.redaction.preview(stored[0].id)
    where = set(df["where"])
    assert "request.headers.authorization" in where
    assert "request.messages[0].parts[0].text" in where  # the user's key
    assert "request.system" in where  # the ticket and the email
    assert "request.messages[1].parts[0].arguments" in where  # the tool call's key
    assert any(w.startswith("response.events[") for w in where)
    assert "annotations.comment" in where
    assert {"openai_key", "ticket", "email", "github_token"} <= set(df["rule"])
    for part in SECRET_PARTS:  # the preview itself shows fingerprints only
        assert not df["found"].str.contains(part, regex=False).any()
    gem = fb.redaction.preview(stored[1].id)
    assert "request.url" in set(gem["where"])
