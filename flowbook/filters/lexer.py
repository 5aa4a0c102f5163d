"""Character-level scanning for the filter parser.

The language is context-sensitive (a ``/`` starts a regex only after ``key:``; after a mitmproxy
operator the argument runs to the next space or parenthesis, as in mitmproxy), so the parser
drives a cursor over the text and calls these helpers instead of consuming a token stream.
"""

from __future__ import annotations

from flowbook.filters.errors import FilterError

# mitmproxy's word: anything but whitespace, parentheses, "~" and quotes
# (pyparsing CharsNotIn("()~'\"" + whitespace) in mitmproxy/flowfilter.py).
MITM_STOP = frozenset("()~'\"")
# A key's value also stops at & and |, so "model:gpt&provider:openai" reads as an AND.
VALUE_STOP = frozenset("()'\"&|")
KEYWORDS = ("and", "or", "not")
_BOUNDARY = frozenset("()!~'\"&|")


class Cursor:
    """A position in the expression text with the scanning primitives the parser needs."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    @property
    def eof(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self, k: int = 0) -> str:
        i = self.pos + k
        return self.text[i] if i < len(self.text) else ""

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def keyword_at(self) -> str | None:
        """The boolean keyword (and/or/not, any case) that starts here, if one does."""
        for word in KEYWORDS:
            end = self.pos + len(word)
            if self.text[self.pos : end].lower() == word:
                nxt = self.text[end] if end < len(self.text) else ""
                if nxt == "" or nxt.isspace() or nxt in _BOUNDARY:
                    return word
        return None

    def identifier(self) -> str:
        """Read ``[A-Za-z_][A-Za-z0-9_]*`` (may be empty)."""
        start = self.pos
        while self.pos < len(self.text) and (
            self.text[self.pos].isascii()
            and (self.text[self.pos].isalnum() or self.text[self.pos] == "_")
        ):
            self.pos += 1
        return self.text[start : self.pos]

    def word(self, stop: frozenset[str]) -> str:
        """Read up to whitespace or a stop character."""
        start = self.pos
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c.isspace() or c in stop:
                break
            self.pos += 1
        return self.text[start : self.pos]

    def quoted(self) -> str:
        """Read a '…' or "…" string; a backslash makes the next character literal."""
        quote = self.text[self.pos]
        start = self.pos
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if c == quote:
                self.pos += 1
                return "".join(out)
            out.append(c)
            self.pos += 1
        raise FilterError(
            "unterminated quoted value",
            start,
            f"close it with {quote}; write \\{quote} for a literal quote inside",
        )

    def regex_literal(self) -> str:
        """Read ``/…/``; ``\\/`` stands for a slash, other backslashes stay (``/\\d+/``)."""
        start = self.pos
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c == "\\" and self.pos + 1 < len(self.text):
                nxt = self.text[self.pos + 1]
                out.append(nxt if nxt == "/" else c + nxt)
                self.pos += 2
                continue
            if c == "/":
                self.pos += 1
                return "".join(out)
            out.append(c)
            self.pos += 1
        raise FilterError(
            "unterminated regular expression", start, "end it with / (write \\/ for a slash)"
        )

    def mitm_argument(self) -> str | None:
        """Read a mitmproxy operator's argument: a quoted string or a word; None if absent."""
        self.skip_ws()
        c = self.peek()
        if c in ("'", '"'):
            return self.quoted()
        if c == "" or c in MITM_STOP:
            return None
        return self.word(MITM_STOP)
