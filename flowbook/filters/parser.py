"""Recursive-descent parser: expression text -> tree of ``flowbook.filters.ast`` nodes.

Grammar (precedence NOT > AND > OR; adjacent terms are ANDed)::

    expr    := and (("OR" | "|") and)*
    and     := not (("AND" | "&")? not)*
    not     := ("NOT" | "!") not | primary
    primary := "(" expr ")" | term
    term    := key ":" value | "~" operator [argument] | bare-word (a URL regex, as in mitmproxy)
"""

from __future__ import annotations

import difflib

from flowbook.filters import terms
from flowbook.filters.ast import And, Const, Node, Not, Or, TextTerm
from flowbook.filters.errors import FilterError
from flowbook.filters.lexer import MITM_STOP, Cursor
from flowbook.filters.matchers import TextMatcher, compile_regex

# Deep nesting is bounded so that hostile input gives a FilterError, not a RecursionError.
MAX_DEPTH = 100


def parse_tree(text: str) -> Node:
    """Parse ``text`` into a node tree; an empty expression matches every flow."""
    try:
        return _Parser(text).parse()
    except FilterError as exc:
        raise exc.with_expression(text) from None


class _Parser:
    def __init__(self, text: str) -> None:
        self.cur = Cursor(text)
        self.depth = 0

    def parse(self) -> Node:
        cur = self.cur
        cur.skip_ws()
        if cur.eof:
            return Const(True, "~all")
        node = self.parse_or()
        cur.skip_ws()
        if not cur.eof:
            if cur.peek() == ")":
                raise FilterError("unmatched ')'", cur.pos, "remove it or add a '(' before")
            raise FilterError(f"unexpected {cur.peek()!r}", cur.pos, "expected AND, OR or a term")
        return node

    def _operator(self) -> str | None:
        """The boolean operator at the cursor (consumed), or None."""
        cur = self.cur
        cur.skip_ws()
        c = cur.peek()
        if c == "&":
            cur.pos += 1
            return "and"
        if c == "|":
            cur.pos += 1
            return "or"
        if c == "!":
            cur.pos += 1
            return "not"
        word = cur.keyword_at()
        if word:
            cur.pos += len(word)
        return word

    def _peek_operator(self) -> str | None:
        save = self.cur.pos
        op = self._operator()
        self.cur.pos = save
        return op

    def parse_or(self) -> Node:
        items = [self.parse_and()]
        while self._peek_operator() == "or":
            self._operator()
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def parse_and(self) -> Node:
        items = [self.parse_not()]
        while True:
            op = self._peek_operator()
            if op == "and":
                self._operator()
            elif op == "or" or not self._starts_term():
                break
            items.append(self.parse_not())
        return items[0] if len(items) == 1 else And(tuple(items))

    def _starts_term(self) -> bool:
        cur = self.cur
        cur.skip_ws()
        return not cur.eof and cur.peek() not in ")&|"

    def parse_not(self) -> Node:
        if self._peek_operator() == "not":
            self._operator()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise FilterError("expression nested too deeply", self.cur.pos, "simplify it")
            node = Not(self.parse_not())
            self.depth -= 1
            return node
        return self.parse_primary()

    def parse_primary(self) -> Node:
        cur = self.cur
        cur.skip_ws()
        start = cur.pos
        c = cur.peek()
        if c == "":
            raise FilterError(
                "expression ends where a term was expected",
                start,
                "add a term such as model:gpt-4 or ~e, or remove the trailing operator",
            )
        if c == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise FilterError("expression nested too deeply", start, "simplify it")
            cur.pos += 1
            cur.skip_ws()
            if cur.peek() == ")":
                raise FilterError("empty parentheses", start, "put a term inside ( )")
            node = self.parse_or()
            cur.skip_ws()
            if cur.peek() != ")":
                raise FilterError(
                    "'(' is never closed", start, "add a ')' (or check quotes and regexes inside)"
                )
            cur.pos += 1
            self.depth -= 1
            return node
        if c == ")":
            raise FilterError("unexpected ')'", start, "a term is missing before it")
        if c in "&|":
            raise FilterError(f"operator {c!r} needs a term before it", start, "write e.g. ~e & ~s")
        if self._peek_operator() in ("and", "or"):
            raise FilterError(
                "AND/OR needs a term before it", start, 'quote the word to search it: "and"'
            )
        if c == "~":
            return terms.tilde_term(cur, start)
        if c in ("'", '"'):
            return self._bare_regex(cur.quoted(), start)
        key = cur.identifier()
        if key and cur.peek() == ":":
            lowered = key.lower()
            if terms.is_known_key(lowered):
                cur.pos += 1
                return terms.key_term(cur, lowered, start)
            if lowered not in ("http", "https") and not cur.peek(1).isdigit():
                raise FilterError(
                    f"unknown key {key!r}",
                    start,
                    _suggest(lowered, terms.all_key_names(), terms.canonical_key_names()),
                )
        cur.pos = start
        return self._bare_regex(cur.word(MITM_STOP), start)

    def _bare_regex(self, pattern: str, start: int) -> Node:
        # mitmproxy: "rex  Equivalent to ~u rex" (a naked word is a URL regex).
        compile_regex(pattern, 0, start)
        return TextTerm("url", TextMatcher("regex", pattern))


def _suggest(word: str, names: list[str], documented: list[str]) -> str:
    close = difflib.get_close_matches(word, names, n=3, cutoff=0.6)
    known = ", ".join(documented)
    lead = f"did you mean {' or '.join(close)}? " if close else ""
    return f"{lead}known: {known}"
