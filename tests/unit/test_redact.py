"""Secret masking: every kind fingerprinted, no false positives, JSON stays JSON."""

from __future__ import annotations

import base64
import json
import random
import string

import pytest

from flowbook.model import (
    FlowError,
    LLMFlow,
    LLMRequest,
    LLMResponse,
    Message,
    Part,
    StreamEvent,
    ToolCall,
)
from flowbook.redact import (
    RedactionRules,
    fingerprint,
    mask_headers,
    mask_text,
    mask_url,
    redact_flow,
)

_rng = random.Random(7)


def _rand(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


OPENAI = "sk-" + _rand(44) + "a1b2"
PROJECT = "sk-proj-" + _rand(60) + "Zz90"
ANTHROPIC = "sk-ant-api03-" + _rand(80, string.ascii_letters + string.digits + "_-") + "AA11"
GOOGLE = "AIzaSy" + _rand(33)
AWS_ID = "AKIA" + _rand(16, string.ascii_uppercase + string.digits)
GITHUB = "ghp_" + _rand(36)
SLACK = "xoxb-123456789012-" + _rand(24)
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0." + _rand(43)
SECRETS = [OPENAI, PROJECT, ANTHROPIC, GOOGLE, AWS_ID, GITHUB, SLACK, JWT]


def test_fingerprint_shape() -> None:
    assert fingerprint(OPENAI) == "sk-…a1b2"
    assert fingerprint(PROJECT) == "sk-proj-…Zz90"
    assert fingerprint(ANTHROPIC) == "sk-ant-…AA11"
    assert fingerprint(GOOGLE).startswith("AIza…") and fingerprint(GOOGLE).endswith(GOOGLE[-4:])
    assert fingerprint("short") == "…"  # too short to show any of it
    for s in SECRETS:
        fp = fingerprint(s)
        hidden = fp.split("…")[1]
        assert len(hidden) <= 4 and s not in fp


@pytest.mark.parametrize("secret", SECRETS)
def test_each_key_kind_is_masked_in_text(secret: str) -> None:
    out = mask_text(f"here is my key: {secret} thanks")
    assert secret not in out
    assert fingerprint(secret) in out
    assert out.startswith("here is my key: ") and out.endswith(" thanks")


def test_distinct_keys_keep_distinct_fingerprints() -> None:
    a, b = "sk-" + _rand(44) + "aaaa", "sk-" + _rand(44) + "bbbb"
    assert mask_text(a) != mask_text(b)
    assert mask_headers({"Authorization": f"Bearer {a}"}) != mask_headers(
        {"Authorization": f"Bearer {b}"}
    )


def test_headers() -> None:
    sigv4 = (
        f"AWS4-HMAC-SHA256 Credential={AWS_ID}/20240610/us-east-1/bedrock/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + _rand(64, "0123456789abcdef")
    )
    headers = {
        "Authorization": f"Bearer {OPENAI}",
        "x-api-key": ANTHROPIC,
        "X-Goog-Api-Key": GOOGLE,
        "api-key": "0123456789abcdef0123456789abcdef",
        "Cookie": "session=" + _rand(32) + "; theme=dark",
        "set-cookie": "sid=" + _rand(40) + "; Path=/; HttpOnly",
        "x-amz-security-token": _rand(300),
        "proxy-authorization": "Basic " + base64.b64encode(b"user:pass-word-1234").decode(),
        "content-type": "application/json",
        "x-ratelimit-remaining-tokens": "29000",
        "x-request-id": "req_" + _rand(24),
        "date": "Mon, 10 Jun 2024 06:13:20 GMT",
    }
    out = mask_headers(headers | {"x-amz-date": "20240610T061320Z", "authorization2": sigv4})
    assert out["Authorization"] == "Bearer sk-…a1b2"
    assert out["x-api-key"] == "sk-ant-…AA11"
    assert out["X-Goog-Api-Key"] == fingerprint(GOOGLE)
    assert out["api-key"] == "…cdef"
    assert out["Cookie"].startswith("session=…") and out["Cookie"].endswith("theme=…")
    assert out["set-cookie"].startswith("sid=…") and out["set-cookie"].endswith(
        "; Path=/; HttpOnly"
    )
    assert out["x-amz-security-token"].startswith("…")
    assert out["proxy-authorization"].startswith("Basic …")
    for name in ("content-type", "x-ratelimit-remaining-tokens", "x-request-id", "date"):
        assert out[name] == headers[name]
    signed = mask_headers({"Authorization": sigv4})["Authorization"]
    assert AWS_ID not in signed and sigv4.rsplit("=", 1)[1] not in signed
    assert "SignedHeaders=host;x-amz-date" in signed and "us-east-1/bedrock" in signed
    assert mask_headers(out) == out  # idempotent


def test_url_query_params() -> None:
    url = (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:"
        f"streamGenerateContent?alt=sse&key={GOOGLE}"
    )
    masked = mask_url(url)
    assert GOOGLE not in masked and masked.endswith(f"alt=sse&key={fingerprint(GOOGLE)}")
    for name in ("api_key", "access_token", "token"):
        value = _rand(30)
        out = mask_url(f"https://h/p?a=1&{name}={value}#frag")
        assert value not in out and out.startswith("https://h/p?a=1&") and out.endswith("#frag")
    assert mask_url("https://u:secretpassword123@h/x").startswith("https://u:…")
    plain = "https://api.openai.com/v1/chat/completions?stream=true&limit=20"
    assert mask_url(plain) == plain


def test_no_false_positives() -> None:
    benign = [
        "2024-06-10T06:13:20.123456Z",
        "2024-06-10 06:13:20+08:00",
        "1718000000",
        "1718000000123",
        "17180000001",
        "550e8400-e29b-41d4-a716-446655440000",
        "chatcmpl-9aBcDeFgHiJkLmNoPqRsTuVwXyZ012",
        "msg_01XFDUDYJgAACzvnptvVoYEL",
        "toolu_01A09q90qw90lq917835lq9",
        "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "task-management-overview-document-draft",
        '"max_tokens": 4096, "temperature": 0.7, "top_k": 40',
        "bearer of bad news, the bearer said",
        "x-ratelimit-reset-tokens: 6ms",
        "+08:00 +0800 12:34:56",
    ]
    for text in benign:
        assert mask_text(text) == text, text
    # Personal-data rules are off by default and bounded when enabled.
    rules = RedactionRules().enable("phone_cn", "phone_intl", "credit_card", "email")
    for text in benign:
        if text != "17180000001":  # an 11-digit number is a phone number's shape: fair game
            assert rules.mask_text(text) == text, text
    assert rules.mask_text("ts=1718000000123 id=1718000000") == "ts=1718000000123 id=1718000000"
    assert rules.mask_text("call 13812345678 now") == "call [REDACTED_PHONE] now"
    assert rules.mask_text("card 4111 1111 1111 1111") == "card [REDACTED_CARD]"
    assert rules.mask_text("mail a.b@example.com") == "mail [REDACTED_EMAIL]"


def test_base64_image_data_untouched() -> None:
    raw = bytes(_rng.randrange(256) for _ in range(60_000))
    b64 = base64.b64encode(raw).decode()
    # Key-shaped substrings inside base64 are not keys.
    b64 = b64[:1000] + "AIza" + GOOGLE[4:] + b64[1043:]
    b64 = b64[:2000] + AWS_ID + b64[2020:]
    assert mask_text(b64) == b64
    small = base64.b64encode(raw[:600]).decode()  # below the skip threshold: still untouched
    small = small[:100] + AWS_ID + small[120:]
    assert mask_text(f"data:image/png;base64,{small}") == f"data:image/png;base64,{small}"


def test_rules_are_configurable() -> None:
    rules = RedactionRules().disable("openai_key").add("ticket", r"TICKET-\d{6,}")
    out = rules.mask_text(f"{OPENAI} TICKET-12345678")
    assert OPENAI in out and "TICKET-12345678" not in out
    assert RedactionRules.empty().mask_text(OPENAI) == OPENAI
    with pytest.raises(KeyError):
        RedactionRules().disable("no_such_rule")


def _flow() -> LLMFlow:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": f'use "{OPENAI}" and\n"quotes\\" ok'}],
        "api_key": "abcdefgh12345678",
        "created": 1718000000,
    }
    sse = f'data: {{"choices":[{{"delta":{{"content":"key {GITHUB}"}}}}]}}\n\n'
    return LLMFlow(
        request=LLMRequest(
            url=f"https://h/v1/x?key={GOOGLE}",
            path=f"/v1/x?key={GOOGLE}",
            headers={"authorization": f"Bearer {PROJECT}"},
            body=json.dumps(body).encode(),
            model="gpt-4o",
            system=f"system with {ANTHROPIC}",
            messages=[
                Message("user", [Part("text", text=f"my key {OPENAI}")]),
                Message("tool", [Part("tool_result", tool_call_id="t1", content={"k": SLACK})]),
            ],
        ),
        response=LLMResponse(
            headers={"set-cookie": "sid=" + _rand(30)},
            body=sse.encode(),
            text=f"key {GITHUB}",
            tool_calls=[
                ToolCall(
                    id="c", name="f", arguments={"t": JWT}, arguments_raw=json.dumps({"t": JWT})
                )
            ],
            events=[StreamEvent(t=1.0, event=None, data={"content": f"key {GITHUB}"})],
        ),
        error=FlowError(type="authentication", message=f"Incorrect API key provided: {OPENAI}"),
    )


def test_redact_flow_masks_everything_and_keeps_json_valid() -> None:
    flow = _flow()
    original = json.dumps(flow.to_dict())
    red = redact_flow(flow)
    dumped = json.dumps(red.to_dict(), ensure_ascii=False)
    for secret in SECRETS:
        assert secret not in dumped, secret
    assert json.dumps(flow.to_dict()) == original  # the input flow is untouched
    body = json.loads(red.request.body or b"")
    assert body["created"] == 1718000000 and body["model"] == "gpt-4o"
    assert body["messages"][0]["content"].startswith('use "sk-…a1b2"')
    assert body["api_key"] == "…5678"
    assert json.loads(red.response.tool_calls[0].arguments_raw)["t"].startswith("eyJ…")  # type: ignore[union-attr]
    line = (red.response.body or b"").decode().split("\n")[0]  # type: ignore[union-attr]
    json.loads(line.removeprefix("data: "))
    assert red.request.headers["authorization"] == "Bearer sk-proj-…Zz90"
    assert redact_flow(red).to_dict() == red.to_dict()  # idempotent


def test_json_body_falls_back_to_structural_masking() -> None:
    # A match must not span two JSON strings (it would silently drop key "b").
    doc = {"a": "-----BEGIN PRIVATE KEY-----abc", "b": "def-----END PRIVATE KEY-----", "n": 1}
    rules = RedactionRules()
    out = rules.mask_body(json.dumps(doc).encode())
    assert out is not None
    parsed = json.loads(out)
    assert parsed["n"] == 1 and set(parsed) == {"a", "b", "n"}
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----"
    assert json.loads(rules.mask_body(json.dumps({"k": pem}).encode()) or b"") == {
        "k": "[REDACTED PRIVATE KEY]"
    }
    # A user rule whose replacement has a quote in it cannot break JSON either.
    quoting = RedactionRules.empty().add("q", r"secret\d+", replacement='"')
    parsed = json.loads(quoting.mask_body(b'{"x": "secret123 here"}') or b"")
    assert parsed == {"x": '" here'}


def test_binary_body_left_alone() -> None:
    frame = b"\x00\x00\x00\x9f\x00\x00\x00R\xff" + OPENAI.encode() + b"\xfe"
    assert RedactionRules().mask_body(frame) == frame
