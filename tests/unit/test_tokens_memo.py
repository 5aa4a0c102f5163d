"""Token counts are memoised by (text, model), and the memo follows the encoders."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flowbook.analysis import tokens


class CountingEncoder:
    """Splits on whitespace and counts how often it was asked."""

    def __init__(self, name: str, per_word: int = 1) -> None:
        self.name = name
        self.per_word = per_word
        self.calls = 0

    def encode_ordinary(self, text: str) -> list[int]:
        self.calls += 1
        return [0] * (len(text.split()) * self.per_word)


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    tokens.reset_cache()
    yield
    tokens.reset_cache()


def test_a_repeated_text_is_encoded_once() -> None:
    enc = CountingEncoder("o200k_base")
    tokens.set_encoder("o200k_base", enc)
    first = tokens.count_tokens_method("the same system prompt", "gpt-4o")
    again = tokens.count_tokens_method("the same system prompt", "gpt-4o")
    assert first == again == (4, True, "tiktoken:o200k_base")
    assert enc.calls == 1
    tokens.count_tokens_method("another text", "gpt-4o")
    assert enc.calls == 2


def test_the_memo_is_dropped_when_an_encoder_changes() -> None:
    tokens.set_encoder("o200k_base", CountingEncoder("o200k_base"))
    assert tokens.count_tokens_method("a b c", "gpt-4o")[0] == 3
    tokens.set_encoder("o200k_base", CountingEncoder("o200k_base", per_word=2))
    assert tokens.count_tokens_method("a b c", "gpt-4o")[0] == 6


def test_the_memo_is_bounded_and_long_texts_are_not_kept() -> None:
    enc = CountingEncoder("o200k_base")
    tokens.set_encoder("o200k_base", enc)
    for i in range(tokens._COUNT_MEMO_MAX + 50):
        tokens.count_tokens_method(f"text {i}", "gpt-4o")
    assert len(tokens._count_memo) <= tokens._COUNT_MEMO_MAX
    long_text = "word " * (tokens._COUNT_MEMO_TEXT_MAX // 5 + 10)
    calls = enc.calls
    tokens.count_tokens_method(long_text, "gpt-4o")
    tokens.count_tokens_method(long_text, "gpt-4o")
    assert enc.calls == calls + 2
