"""Secret masking for flows at rest and in exports (docs/architecture.md, "Secrets").

A secret is replaced by a short *fingerprint*: a public type marker (``sk-``, ``sk-ant-``,
``AIza`` …) and the last four characters, e.g. ``sk-…a1b2``, so flows sent with different keys
stay distinguishable while no usable part of a key is kept. Masking is idempotent: a fingerprint
contains ``…``, which no secret pattern accepts, so masking twice changes nothing.

Compared with the reference's rules (docs/reference-flow-monitor.md §6.2), fixed here:

* every pattern is anchored on both sides (no more 11-digit "phone numbers" inside epoch
  timestamps or ids; no ``AIza``/``AKIA`` hits in the middle of base64 image data);
* ``sk-`` keys need a digit and a letter (kebab-case words are not keys) and are no longer
  shadowed by a broader rule; ``Bearer`` tokens keep their scheme;
* header masking keeps the scheme and AWS SigV4's non-secret parts, and understands cookies;
* JSON bodies stay valid JSON, tool-call structs and stream events are masked too;
* personal-data rules (email, phone, card, CN id) exist but are opt-in, with checksums/bounds.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from flowbook.model import LLMFlow, Part

ELLIPSIS = "…"
# Public type markers kept in a fingerprint, longest first.
_MARKERS = (
    "sk-ant-", "sk-proj-", "sk-svcacct-", "sk-admin-", "sk-or-", "sk-", "github_pat_", "ghp_",
    "gho_", "ghu_", "ghs_", "ghr_", "xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xoxo-",
    "hf_", "gsk_", "xai-", "AIza", "AKIA", "ASIA", "eyJ",
)  # fmt: skip


def fingerprint(secret: str) -> str:
    """``<type marker>…<last 4>`` for a secret; only ``…`` (plus marker) when it is short.

    At most four characters of the secret's random part are kept, and only when at least twelve
    remain hidden.
    """
    s = secret.strip()
    marker = next((m for m in _MARKERS if s.startswith(m)), "")
    tail = s[-4:] if len(s) - len(marker) >= 12 else ""
    return f"{marker}{ELLIPSIS}{tail}"


@dataclass(frozen=True)
class RedactionRule:
    """One pattern. ``group`` is the part that is secret (0 = the whole match); it is replaced by
    ``replacement`` or, when that is None, by its fingerprint. ``check`` can veto a match;
    ``before`` (searched in the 64 characters up to and including the match's first one) lets a
    fast pattern anchor on a short tail and confirm the longer context afterwards."""

    name: str
    pattern: re.Pattern[str]
    group: int = 0
    replacement: str | None = None
    enabled: bool = True
    check: Callable[[str], bool] | None = None
    before: re.Pattern[str] | None = None

    def _masked(self, m: re.Match[str], text: str) -> str | None:
        """What the match becomes, or None when this match is not a secret after all."""
        secret = m.group(self.group)
        if not secret or ELLIPSIS in secret or (self.check and not self.check(secret)):
            return None
        if self.before and not self.before.search(text[max(0, m.start() - 64) : m.start() + 1]):
            return None
        masked = self.replacement if self.replacement is not None else fingerprint(secret)
        start, end = m.start(self.group) - m.start(), m.end(self.group) - m.start()
        whole = m.group(0)
        return whole[:start] + masked + whole[end:]

    def apply(self, text: str) -> str:
        return self.pattern.sub(lambda m: self._masked(m, text) or m.group(0), text)

    def findings(self, text: str) -> list[tuple[str, str]]:
        """(matched text, what it becomes) for every match this rule would mask in ``text``."""
        out = []
        for m in self.pattern.finditer(text):
            masked = self._masked(m, text)
            if masked is not None and masked != m.group(0):
                out.append((m.group(0), masked))
        return out

    def to_dict(self) -> dict[str, Any]:
        """The rule as it is written in config.json's ``redaction_rules``."""
        return {"name": self.name, "pattern": self.pattern.pattern,
                "replacement": self.replacement, "enabled": self.enabled}  # fmt: skip


def _has_digit_and_letter(s: str) -> bool:
    return any(c.isdigit() for c in s) and any(c.isalpha() for c in s)


def _luhn(s: str) -> bool:
    digits = [int(c) for c in s if c.isdigit()]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2)
                for i, d in enumerate(reversed(digits)))  # fmt: skip
    return len(digits) in (15, 16) and total % 10 == 0


def _cn_id(s: str) -> bool:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(c) * w for c, w in zip(s[:17], weights, strict=True))
    return "10X98765432"[total % 11] == s[17].upper()


_NOT_BEFORE = r"[A-Za-z0-9_\-]"  # a secret does not continue a longer token on its left
_E = r"(?![A-Za-z0-9_\-])"
_SECRET_NAMES = (
    r"(?:x-)?(?:goog-)?api[_-]?key|apikey|access[_-]?token|refresh[_-]?token|id[_-]?token|"
    r"session[_-]?token|security[_-]?token|client[_-]?secret|secret[_-]?(?:access[_-]?)?key|"
    r"private[_-]?key|password|passwd"  # also AWS's aws_secret_access_key / SecretAccessKey
)
# Long runs of base64 alphabet are inline media (images, audio): never searched, which keeps
# masking a body with a 5 MB image fast and free of accidental matches in random data.
_DATA_RUN = re.compile(r"[A-Za-z0-9+/=]{4096,}")


def _prefixed(prefix: str, rest: str) -> str:
    """``prefix`` + ``rest``, with the left boundary checked *after* the literal prefix so that
    the regex engine can search for the literal first (about 25x faster than a leading
    look-behind)."""
    return f"{prefix}(?<!{_NOT_BEFORE}{prefix}){rest}"


def _rule(name: str, pattern: str, **kw: Any) -> RedactionRule:
    return RedactionRule(name, re.compile(pattern), **kw)


# name, pattern, replacement, check: personal-data rules, off unless enabled.
_PERSONAL: tuple[tuple[str, str, str, Callable[[str], bool] | None], ...] = (
    ("email", r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
     r"(?![\w-])", "[REDACTED_EMAIL]", None),
    ("phone_cn", r"(?<![\d.:\-])1[3-9]\d{9}(?![\d.:])", "[REDACTED_PHONE]", None),
    ("phone_intl", r"(?<![\w+:])\+\d{1,3}[-.\s]?\(?\d{1,4}\)?[-.\s]?\d{1,4}[-.\s]?\d{1,9}(?!\d)",
     "[REDACTED_PHONE]", lambda s: sum(c.isdigit() for c in s) >= 9),
    ("credit_card", r"(?<![\d\-])\d{4}[-\s]?\d{4}[-\s]?\d{4}[-\s]?\d{3,4}(?![\d\-])",
     "[REDACTED_CARD]", _luhn),
    ("id_card_cn", r"(?<![\dA-Za-z])\d{17}[\dXx](?![\dA-Za-z])", "[REDACTED_ID]", _cn_id),
)  # fmt: skip

DEFAULT_RULES: tuple[RedactionRule, ...] = (
    _rule("private_key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----[^\"]*?"
          r"-----END [A-Z ]*PRIVATE KEY-----", replacement="[REDACTED PRIVATE KEY]"),
    _rule("anthropic_key", _prefixed("sk-ant-", r"[A-Za-z0-9_\-]{20,}")),
    _rule("openai_key", _prefixed("sk-", r"[A-Za-z0-9_\-]{20,}"), check=_has_digit_and_letter),
    _rule("google_api_key", _prefixed("AIza", r"[0-9A-Za-z_\-]{35}") + _E),
    _rule("aws_access_key_id",
          r"A(?<![A-Za-z0-9]A)(?:KIA|SIA|BIA|CCA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    _rule("github_token", _prefixed("gh", "[pousr]_[A-Za-z0-9]{36,}") + "|"
          + _prefixed("github_pat_", "[A-Za-z0-9_]{22,}")),
    _rule("slack_token", _prefixed("xox", r"[abposr]-[A-Za-z0-9\-]{10,}")),
    _rule("vendor_token", _prefixed("hf_", "[A-Za-z0-9]{30,}") + "|"
          + _prefixed("gsk_", "[A-Za-z0-9]{40,}") + "|" + _prefixed("xai-", "[A-Za-z0-9]{40,}")),
    _rule("jwt", _prefixed("eyJ", r"[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*")),
    _rule("bearer_token", r"[Bb](?<![A-Za-z0-9][Bb])(?i:earer)\s+([A-Za-z0-9._~+/=\-]{16,})",
          group=1, check=lambda s: len(s) >= 32 or any(c.isdigit() for c in s)),
    # Anchored on the name's last letter (fast), the whole name is confirmed by ``before``.
    _rule("secret_assignment", r"[yYnNtTdD](?<=(?i:key|ken|ret|ord|swd))(?:\\?[\"'])?\s*[:=]\s*"
          r"(?:\\?[\"'])?([^\s\"'&,;\\<>(){}\[\]$]{8,})", group=1,
          before=re.compile(r"(?i)(?<![A-Za-z0-9])(?:" + _SECRET_NAMES + r")\Z")),
    *(RedactionRule(n, re.compile(p), replacement=r, enabled=False, check=c)
      for n, p, r, c in _PERSONAL),
)  # fmt: skip

# Header names whose whole value is secret (lowercase), and a pattern for custom ones.
SECRET_HEADERS = frozenset(
    {
        "authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key",
        "cookie", "set-cookie", "x-amz-security-token", "x-auth-token", "x-access-token",
        "anthropic-api-key", "openai-api-key", "x-csrf-token", "x-xsrf-token",
    }
)  # fmt: skip
_SECRET_HEADER_NAME = re.compile(
    r"(?:^|-)(?:api-?key|apikey|auth-token|access-token|session-token|security-token|secret)(?:$|-)"
)
SECRET_QUERY_PARAMS = frozenset(
    {
        "key", "api_key", "api-key", "apikey", "access_token", "token", "id_token",
        "refresh_token", "client_secret", "password", "sig", "signature", "code",
        "x-amz-signature", "x-amz-credential", "x-amz-security-token", "x-goog-signature",
    }
)  # fmt: skip
# JSON object keys whose string value is secret (normalised: lowercase, no "-" or "_").
_SECRET_KEYS = frozenset(
    {
        "apikey", "xapikey", "xgoogapikey", "authorization", "proxyauthorization", "cookie",
        "setcookie", "accesstoken", "refreshtoken", "idtoken", "sessiontoken", "clientsecret",
        "password", "secretkey", "secretaccesskey", "awssecretaccesskey", "xamzsecuritytoken",
    }
)  # fmt: skip
_SIGV4_PART = re.compile(r"(Credential=)([A-Z0-9]+)|(Signature=)([0-9a-fA-F]+)")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://[^/@:?#]*:)([^/@?#]+)(@)")


@dataclass
class RedactionRules:
    """The configurable rule set: text rules, secret header names and secret query parameters.

    ``RedactionRules()`` has the defaults; ``add`` appends a pattern, ``disable``/``enable``
    switch rules by name (``enable("email")`` turns on an opt-in one), ``defaults=False`` starts
    with no text rules at all (headers and query parameters are still masked).
    """

    rules: list[RedactionRule] = field(default_factory=lambda: list(DEFAULT_RULES))
    headers: set[str] = field(default_factory=lambda: set(SECRET_HEADERS))
    query_params: set[str] = field(default_factory=lambda: set(SECRET_QUERY_PARAMS))

    @classmethod
    def empty(cls) -> RedactionRules:
        """Rules with no text patterns (only the header and query-parameter lists)."""
        return cls(rules=[])

    def add(
        self,
        name: str,
        pattern: str | re.Pattern[str],
        *,
        group: int = 0,
        replacement: str | None = None,
    ) -> RedactionRules:
        """Add a text rule; ``group`` is the secret part, replaced by its fingerprint by default."""
        compiled = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern)
        self.rules.append(RedactionRule(name, compiled, group=group, replacement=replacement))
        return self

    def _switch(self, names: Iterable[str], on: bool) -> RedactionRules:
        wanted = set(names)
        unknown = wanted - {r.name for r in self.rules}
        if unknown:
            raise KeyError(f"unknown redaction rules: {sorted(unknown)}")
        self.rules = [replace(r, enabled=on) if r.name in wanted else r for r in self.rules]
        return self

    def disable(self, *names: str) -> RedactionRules:
        """Turn rules off by name."""
        return self._switch(names, False)

    def enable(self, *names: str) -> RedactionRules:
        """Turn rules on by name (the personal-data rules are off by default)."""
        return self._switch(names, True)

    # --- masking --------------------------------------------------------------------------

    def mask_text(self, text: str) -> str:
        """Replace key-shaped strings in free text (or raw JSON) by their fingerprints.

        Runs of 4096+ base64 characters (inline media) are skipped."""
        if not text:
            return text
        prep = self._prepared()
        if not prep.rules:
            return text
        pieces: list[str] = []
        pos = 0
        runs = _DATA_RUN.finditer(text) if len(text) >= 4096 else ()
        for m in runs:
            pieces += [_apply(prep, text[pos : m.start()]), m.group()]
            pos = m.end()
        pieces.append(_apply(prep, text[pos:]))
        return "".join(pieces)

    def _prepared(self) -> _Prepared:
        # The enabled rules and their pre-check, rebuilt only when ``rules`` changed (a new list,
        # or an element added, removed or replaced in place; the list comparison checks identity
        # first, element by element, in C): this runs for every header value
        # and body the recorder masks, where rebuilding cost more than the masking.
        prep: _Prepared | None = self.__dict__.get("_prep")
        rules = self.rules
        if prep is None or not prep.current(rules):
            prep = _Prepared.build(rules)
            self.__dict__["_prep"] = prep
        return prep

    def _is_secret_header(self, name: str) -> bool:
        n = name.strip().lower()
        return n in self.headers or bool(_SECRET_HEADER_NAME.search(n))

    def mask_header_value(self, name: str, value: str) -> str:
        """Mask one header value; non-secret headers only get the text rules."""
        n = name.strip().lower()
        if ELLIPSIS in value:
            return value  # already masked
        if not self._is_secret_header(n):
            return self.mask_text(value)
        if n in ("authorization", "proxy-authorization"):
            if value.startswith("AWS4-"):
                return _SIGV4_PART.sub(
                    lambda m: (
                        f"{m.group(1)}{fingerprint(m.group(2))}"
                        if m.group(1)
                        else f"{m.group(3)}{fingerprint(m.group(4))}"
                    ),
                    value,
                )
            scheme, sep, token = value.partition(" ")
            if sep and scheme.isalpha() and token.strip():
                return f"{scheme} {fingerprint(token)}"
            return fingerprint(value)
        if n == "cookie":
            return "; ".join(_mask_pair(p) for p in value.split(";"))
        if n == "set-cookie":
            first, sep, attrs = value.partition(";")
            return _mask_pair(first) + sep + attrs
        return fingerprint(value)

    def mask_headers(self, headers: dict[str, str]) -> dict[str, str]:
        """A copy of ``headers`` with secret values fingerprinted (names keep their case)."""
        return {k: self.mask_header_value(k, v) for k, v in headers.items()}

    def mask_url(self, url: str) -> str:
        """Mask secret query parameters (``key=``, ``api_key=``, ``access_token=`` …), URL
        passwords and key-shaped strings anywhere in the URL."""
        if not url:
            return url
        url = _USERINFO.sub(lambda m: m.group(1) + fingerprint(m.group(2)) + m.group(3), url)
        base, qmark, rest = url.partition("?")
        if qmark:
            query, hashmark, frag = rest.partition("#")
            pairs = []
            for pair in re.split(r"([&;])", query):
                name, eq, value = pair.partition("=")
                if eq and name.lower() in self.query_params and value and ELLIPSIS not in value:
                    pair = f"{name}={fingerprint(value)}"
                pairs.append(pair)
            url = base + qmark + "".join(pairs) + hashmark + frag
        return self.mask_text(url)

    def mask_body(self, body: bytes | None) -> bytes | None:
        """Mask a raw body. UTF-8 text is masked in place (JSON stays valid JSON, its formatting
        untouched); binary bodies (AWS event-stream frames with CRCs) are left as they are."""
        if not body:
            return body
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return body
        masked = self.mask_text(text)
        if masked == text:
            return body
        if text.lstrip()[:1] in ("{", "[") and not _same_json_shape(text, masked):
            # A match crossed JSON syntax (or a replacement added a quote): mask the parsed
            # document instead, which can only ever change string values.
            try:
                doc = json.loads(text)
            except ValueError:
                return masked.encode("utf-8")
            return json.dumps(self.mask_obj(doc), ensure_ascii=False).encode("utf-8")
        return masked.encode("utf-8")

    def mask_obj(self, value: Any) -> Any:
        """Mask a JSON-like value: strings by the text rules, secret-named keys wholesale,
        ``headers`` mappings as headers."""
        if isinstance(value, str):
            return self.mask_text(value)
        if isinstance(value, bytes):
            return self.mask_body(value)
        if isinstance(value, list | tuple):
            return [self.mask_obj(v) for v in value]
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            for k, v in value.items():
                key = str(k).lower().replace("-", "").replace("_", "")
                if isinstance(v, str) and (key in _SECRET_KEYS or self._is_secret_header(str(k))):
                    out[k] = self.mask_header_value(str(k), v) if v else v
                    if out[k] == v and v and ELLIPSIS not in v:
                        out[k] = fingerprint(v)
                elif key == "headers" and isinstance(v, dict):
                    out[k] = self.mask_headers({str(a): str(b) for a, b in v.items()})
                else:
                    out[k] = self.mask_obj(v)
            return out
        return value


def _same_json_shape(text: str, masked: str) -> bool:
    """Masking inside string values never adds or removes a quote and keeps the JSON valid."""
    if masked.count('"') != text.count('"'):
        return False
    try:
        json.loads(masked)
    except ValueError:
        return False
    return True


def _apply(prep: _Prepared, text: str) -> str:
    # One cheap "could anything match at all" spares the rules' substitutions on the common
    # text without secrets (the recorder masks every header value and body it records).
    if not prep.may_match(text):
        return text
    for rule in prep.rules:
        text = rule.apply(text)
    return text


# Pre-check for the default rules: substrings (casefolded) one of which every match of the rule
# contains, so text holding none of them cannot match. Found with ``in``, which is a fast C
# scan, where one alternation of all the patterns tries every rule at every position (about
# 40x slower on a 3 KB SSE body). Casefolding keeps the check conservative for the rules'
# case-insensitive parts (``(?i:earer)`` also matches the Kelvin sign K or long s, which
# casefold to k and s). A rule not listed here (a user's own, or an opt-in one) is pre-checked
# by its own pattern.
_NEEDLES_BY_NAME: dict[str, tuple[str, ...]] = {
    "private_key": ("private key-----",),
    "anthropic_key": ("sk-ant-",),
    "openai_key": ("sk-",),
    "google_api_key": ("aiza",),
    "aws_access_key_id": ("akia", "asia", "abia", "acca"),
    "github_token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    "slack_token": ("xoxa-", "xoxb-", "xoxp-", "xoxo-", "xoxs-", "xoxr-"),
    "vendor_token": ("hf_", "gsk_", "xai-"),
    "jwt": ("eyj",),
    "bearer_token": ("earer",),
}
# Keyed by the default rule's compiled pattern (module-level, alive for good, so its id is never
# reused): a user's rule that reuses a default's name with another pattern gets no needles.
_DEFAULT_NEEDLES: dict[int, tuple[str, ...]] = {
    id(r.pattern): _NEEDLES_BY_NAME[r.name] for r in DEFAULT_RULES if r.name in _NEEDLES_BY_NAME
}
# secret_assignment: a secret-ish name's last three letters, an optional quote, then ``:`` or
# ``=`` (run on the casefolded text, so no ignore-case needed), searched only when one of the
# names is in the text at all (plain ``in``: an SSE body of chat chunks holds none of them).
_ASSIGNMENT_NAMES = ("key", "ken", "ret", "ord", "swd")
_ASSIGNMENT_CHECK = re.compile(r"(?:ke[yn]|ret|ord|swd)(?:\\?[\"'])?\s*[:=]")
_DEFAULT_CHECKS: frozenset[int] = frozenset(
    id(r.pattern) for r in DEFAULT_RULES if r.name == "secret_assignment"
)


@dataclass(frozen=True)
class _Prepared:
    """The enabled rules of a :class:`RedactionRules` and a conservative pre-check for them."""

    source: list[RedactionRule]
    snapshot: list[RedactionRule]  # a copy of ``source`` when this was built
    rules: tuple[RedactionRule, ...]
    needles: re.Pattern[str] | None  # one alternation of the casefolded literal needles
    assignment: bool  # the secret_assignment rule is enabled
    others: re.Pattern[str] | None  # rules with no needle: one alternation of their patterns
    no_precheck: bool  # some rule could not be combined: always run the rules

    @classmethod
    def build(cls, rules: list[RedactionRule]) -> _Prepared:
        enabled = tuple(r for r in rules if r.enabled)
        needles: list[str] = []
        assignment = False
        rest: list[re.Pattern[str]] = []
        for r in enabled:
            if id(r.pattern) in _DEFAULT_NEEDLES:
                needles += _DEFAULT_NEEDLES[id(r.pattern)]
            elif id(r.pattern) in _DEFAULT_CHECKS:
                assignment = True
            else:
                rest.append(r.pattern)
        others = _combined(tuple(rest)) if rest else None
        alternation = "|".join(re.escape(n) for n in dict.fromkeys(needles))
        return cls(
            source=rules,
            snapshot=list(rules),
            rules=enabled,
            needles=re.compile(alternation) if alternation else None,
            assignment=assignment,
            others=others,
            no_precheck=bool(rest) and others is None,
        )

    def current(self, rules: list[RedactionRule]) -> bool:
        """Still describes ``rules`` (the same list, with the same elements)?"""
        return self.source is rules and self.snapshot == rules

    def may_match(self, text: str) -> bool:
        """False only when no enabled rule can match ``text``."""
        if self.no_precheck:
            return True
        if self.others is not None and self.others.search(text) is not None:
            return True
        if self.needles is None and not self.assignment:
            return False
        folded = text.casefold()
        if self.needles is not None and self.needles.search(folded) is not None:
            return True
        return (
            self.assignment
            and any(name in folded for name in _ASSIGNMENT_NAMES)
            and _ASSIGNMENT_CHECK.search(folded) is not None
        )


_FLAG_LETTERS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"), (re.VERBOSE, "x"))
_BACKREF = re.compile(r"\\[1-9]|\(\?P=")


@functools.lru_cache(maxsize=32)
def _combined(patterns: tuple[re.Pattern[str], ...]) -> re.Pattern[str] | None:
    """An alternation of every pattern (each with its own flags), or None when they cannot be
    combined faithfully (back-references, global inline flags, clashing group names)."""
    parts = []
    for p in patterns:
        if _BACKREF.search(p.pattern):
            return None
        letters = "".join(ch for flag, ch in _FLAG_LETTERS if p.flags & flag)
        parts.append(f"(?{letters}:{p.pattern})" if letters else f"(?:{p.pattern})")
    try:
        return re.compile("|".join(parts))
    except re.error:
        return None


def _mask_pair(pair: str) -> str:
    name, eq, value = pair.strip().partition("=")
    if not eq:
        return fingerprint(name) if name else name
    return f"{name}={fingerprint(value) if value else value}"


DEFAULT = RedactionRules()
_RULE_KEYS = {"name", "pattern", "replacement", "enabled", "group"}


def check_rule_dicts(entries: list[Any]) -> list[dict[str, Any]]:
    """Validate config entries ``{name, pattern?, replacement?, enabled?}``; raise ValueError
    saying which entry is wrong and why. An entry named like a default rule may omit
    ``pattern`` (it then only switches the rule or changes its replacement)."""
    defaults = {r.name for r in DEFAULT_RULES}
    out: list[dict[str, Any]] = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("name"), str) or not e["name"]:
            raise ValueError(f"entry {i} must be an object with a non-empty 'name', got {e!r}")
        unknown = set(e) - _RULE_KEYS
        if unknown:
            raise ValueError(f"entry {e['name']!r}: unknown keys {sorted(unknown)}; "
                             f"allowed: name, pattern, replacement, enabled, group")  # fmt: skip
        pattern = e.get("pattern")
        if pattern is None and e["name"] not in defaults:
            raise ValueError(f"rule {e['name']!r} is not a default rule, so it needs a 'pattern'")
        if pattern is not None:
            if not isinstance(pattern, str):
                raise ValueError(f"rule {e['name']!r}: 'pattern' must be a string")
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"rule {e['name']!r}: bad regular expression: {exc}") from None
            if int(e.get("group", 0)) > compiled.groups:
                raise ValueError(f"rule {e['name']!r}: 'group' exceeds the pattern's groups")
        if e.get("replacement") is not None and not isinstance(e["replacement"], str):
            raise ValueError(f"rule {e['name']!r}: 'replacement' must be a string or null")
        if not isinstance(e.get("enabled", True), bool):
            raise ValueError(f"rule {e['name']!r}: 'enabled' must be true or false")
        out.append(dict(e))
    return out


def rules_from_config(entries: list[dict[str, Any]] | None) -> RedactionRules:
    """The default rules with the config's entries applied: an entry named like a default rule
    switches it (``enabled``) or replaces its pattern/replacement; a new name adds a rule."""
    rules = RedactionRules()
    for e in check_rule_dicts(list(entries or [])):
        names = [r.name for r in rules.rules]
        enabled = bool(e.get("enabled", True))
        if e["name"] in names:
            i = names.index(e["name"])
            r = rules.rules[i]
            changes: dict[str, Any] = {"enabled": enabled}
            if "replacement" in e:
                changes["replacement"] = e["replacement"]
            if e.get("pattern") is not None and e["pattern"] != r.pattern.pattern:
                changes.update(pattern=re.compile(e["pattern"]), group=int(e.get("group", 0)),
                               check=None, before=None)  # fmt: skip
            rules.rules[i] = replace(r, **changes)
        else:
            rules.rules.append(
                RedactionRule(
                    e["name"],
                    re.compile(e["pattern"]),
                    group=int(e.get("group", 0)),
                    replacement=e.get("replacement"),
                    enabled=enabled,
                )
            )
    return rules


def mask_headers(headers: dict[str, str]) -> dict[str, str]:
    """Mask secret headers with the default rules (see :meth:`RedactionRules.mask_headers`)."""
    return DEFAULT.mask_headers(headers)


def mask_url(url: str) -> str:
    """Mask secret query parameters with the default rules."""
    return DEFAULT.mask_url(url)


def mask_text(text: str) -> str:
    """Mask key-shaped strings in text with the default rules."""
    return DEFAULT.mask_text(text)


def _mask_part(part: Part, r: RedactionRules) -> None:
    if part.text:
        part.text = r.mask_text(part.text)
    if part.arguments is not None:
        part.arguments = r.mask_obj(part.arguments)
    if part.content is not None:
        part.content = r.mask_obj(part.content)
    if part.url and not part.url.startswith("data:"):
        part.url = r.mask_url(part.url)
    # part.data is inline media (base64): nothing key-shaped by construction; left as is.


def redact_flow(flow: LLMFlow, rules: RedactionRules | None = None) -> LLMFlow:
    """A deep copy of ``flow`` with secrets masked: headers, URL, raw bodies, messages, system
    prompt, response text/thinking/tool calls, stream events, error, originals and comment."""
    r = rules or DEFAULT
    f = copy.deepcopy(flow)
    req = f.request
    req.headers = r.mask_headers(req.headers)
    req.url = r.mask_url(req.url)
    req.path = r.mask_url(req.path)
    req.body = r.mask_body(req.body)
    if req.system:
        req.system = r.mask_text(req.system)
    for message in req.messages:
        for part in message.parts:
            _mask_part(part, r)
    req.params = r.mask_obj(req.params)
    resp = f.response
    if resp is not None:
        resp.headers = r.mask_headers(resp.headers)
        resp.body = r.mask_body(resp.body)
        resp.text = r.mask_text(resp.text)
        resp.thinking = r.mask_text(resp.thinking)
        if resp.refusal:
            resp.refusal = r.mask_text(resp.refusal)
        for call in resp.tool_calls:
            call.arguments = r.mask_obj(call.arguments)
            call.arguments_raw = r.mask_text(call.arguments_raw)
        for event in resp.events:
            event.data = r.mask_obj(event.data)
        resp.extra = r.mask_obj(resp.extra)
    if f.error is not None:
        f.error.message = r.mask_text(f.error.message)
        f.error.raw = r.mask_obj(f.error.raw)
    meta = f.metadata
    meta.original_request = r.mask_obj(meta.original_request)
    meta.original_response = r.mask_obj(meta.original_response)
    meta.extra = r.mask_obj(meta.extra)
    if f.annotations.comment:
        f.annotations.comment = r.mask_text(f.annotations.comment)
    return f
