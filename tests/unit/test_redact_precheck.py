"""The masking pre-check (flowbook.redact._Prepared) never skips text that a rule would change.

The pre-check lets the recorder skip the rules' substitutions on text without secrets; it must be
conservative: whenever it says "nothing can match", applying every enabled rule must leave the
text unchanged. Checked against the rules applied unconditionally, on recorded traffic and on
texts built to sit on the edges (case variants, Unicode case folding, secrets split by quotes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowbook.redact import DEFAULT, RedactionRules

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "real"

EDGE_TEXTS = [
    "",
    "plain words and nothing else",
    "Authorization: Bearer abcdefghijklmnop1234",
    "authorization: BEARER abcdefghijklmnop1234",
    "BeArEr abcdefghijklmnopqrstuvwxyzABCDEFGH",
    '{"api_key": "abcdefgh12345678"}',
    '{"API_KEY":"abcdefgh12345678"}',
    '{\\"api_key\\": \\"abcdefgh12345678\\"}',
    "password = hunter2hunter2",
    "PASSWD: hunter2hunter2",
    "api_\u212aey: abcdefgh12345678",
    "pa\u017f\u017fwd: abcdefgh12345678",  # long s: (?i) matches it as s
    "x sk-proj-abc123def456ghi789jkl0 y",
    "sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345",
    "AIza" + "A" * 35,
    "id AKIAABCDEFGHIJKLMNOP end",
    "ghp_" + "a1" * 20,
    "github_pat_" + "a" * 30,
    "xoxb-1234567890-abc",
    "hf_" + "a" * 34,
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig",
    "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----",
    "tokens: 12, completion_tokens: 3",
    "record = 12345678901234",
    "secret_key=" + "z" * 20,
    "İstanbul ß straße ﬀ " * 20,
    "\u212aEY=abcdefgh12345678",  # Kelvin sign: (?i) matches it as k (but KEY alone is no name)
]


def _recorded_texts() -> list[str]:
    texts: list[str] = []
    for path in sorted(FIXTURES.rglob("*"))[:400]:
        if path.is_file() and path.stat().st_size < 2_000_000:
            try:
                texts.append(path.read_text("utf-8"))
            except UnicodeDecodeError:
                continue
    return texts


def _unconditional(rules: RedactionRules, text: str) -> str:
    for rule in rules.rules:
        if rule.enabled:
            text = rule.apply(text)
    return text


def _rule_sets() -> list[RedactionRules]:
    personal = RedactionRules().enable("email", "phone_cn", "phone_intl", "credit_card")
    custom = RedactionRules().add("internal", r"corp-[0-9]{6}")
    return [DEFAULT, RedactionRules(), personal, custom, RedactionRules().disable("bearer_token")]


@pytest.mark.parametrize("rules", _rule_sets(), ids=["default", "fresh", "personal", "custom",
                                                     "no-bearer"])  # fmt: skip
def test_precheck_is_conservative(rules: RedactionRules) -> None:
    texts = EDGE_TEXTS + _recorded_texts() + ["corp-123456 and mail a@b.example"]
    assert len(texts) > len(EDGE_TEXTS) + 10, "the recorded fixtures were not found"
    prep = rules._prepared()
    skipped = 0
    for text in texts:
        expected = _unconditional(rules, text)
        if not prep.may_match(text):
            skipped += 1
            assert expected == text, f"pre-check skipped text a rule changes: {text[:120]!r}"
        assert rules.mask_text(text) == expected
    assert skipped > 0  # the check does skip text without secrets


def test_edge_secrets_are_masked() -> None:
    for text in EDGE_TEXTS[2 : EDGE_TEXTS.index("tokens: 12, completion_tokens: 3")]:
        assert DEFAULT.mask_text(text) != text, text


def test_prepared_follows_rule_changes() -> None:
    rules = RedactionRules()
    text = "ticket corp-654321"
    assert rules.mask_text(text) == text
    rules.add("internal", r"corp-[0-9]{6}")  # appended in place
    assert rules.mask_text(text) != text
    rules.rules[-1] = rules.rules[0]  # replaced in place
    assert rules.mask_text(text) == text
    rules.disable("openai_key")
    assert rules.mask_text("k sk-proj-abc123def456ghi789jkl0") == "k sk-proj-abc123def456ghi789jkl0"


def test_json_bodies_stay_valid() -> None:
    body = json.dumps({"messages": [{"content": "my key is sk-proj-abc123def456ghi789jkl0"}]})
    masked = DEFAULT.mask_body(body.encode())
    assert masked is not None and "abc123def456" not in masked.decode()
    json.loads(masked)
