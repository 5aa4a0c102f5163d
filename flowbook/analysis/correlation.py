"""Correlation facts of one flow: what it takes to link it to earlier flows without reading them.

Everything here is a pure function of one ``LLMFlow``; the session tracker
(``flowbook.grouping.tracker``) stores these facts per flow and links flows with them:

* **thread**: a request whose messages are an earlier request's messages plus that request's
  answer (and more). ``prefix_hashes`` is a chain of ``message_hash`` values over the system
  prompt and the messages; a parent is a flow whose ``conversation`` (the chain over its whole
  request) equals a prefix of ours that is followed by an assistant message. ``answer_sig`` lets
  the tracker prefer the candidate whose answer is the assistant message we resend.
* **tool_chain**: tool results answering earlier tool calls. Providers name calls differently
  (OpenAI ``call_…``, Anthropic ``toolu_…``, Responses ``call_…``/``fc_…``, Gemini usually no id
  at all), so a result is matched by id when it has one and by tool name within the thread
  otherwise.
* **retry**: the same request bytes (method, host, path, body) sent again after a failure.
* **same_prompt**: the same system prompt, messages and tools sent to different models.
* **identity**: who sent it (client, User-Agent, key fingerprint, source host), for automatic
  sessions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from flowbook.model import LLMFlow, Message, message_hash

# Request headers that carry a (masked) credential; the fingerprint tells keys apart.
_KEY_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "api-key")


def _h(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


# message_hash of recent messages, by their plain fields: an agent resends its whole
# conversation with every turn, so most messages of a request were hashed for an earlier one.
_MEMO: dict[tuple[object, ...], str] = {}
_MEMO_MAX = 2048


def _memo_key(m: Message) -> tuple[object, ...] | None:
    """The fields ``message_hash`` covers, when they are all plain values (else None)."""
    key: list[object] = [m.role, m.name]
    for p in m.parts:
        if p.arguments is not None or p.content is not None:
            return None
        key.append((p.type, p.text, p.name, p.media_type, p.url, p.data, p.is_error, p.redacted))
    return tuple(key)


def cached_message_hash(m: Message) -> str:
    """``message_hash``, remembered for the messages seen lately."""
    key = _memo_key(m)
    if key is None:
        return message_hash(m)
    found = _MEMO.get(key)
    if found is None:
        found = message_hash(m)
        if len(_MEMO) >= _MEMO_MAX:
            _MEMO.clear()
        _MEMO[key] = found
    return found


def prefix_hashes(flow: LLMFlow) -> list[str]:
    """Chain hashes over the request: ``[h0, h1, …, hk]`` where ``h0`` covers the system prompt
    and ``hi`` the first ``i`` messages. Equal chains mean equal conversations so far."""
    h = _h("system", flow.request.system or "")
    out = [h]
    for m in flow.request.messages:
        h = _h(h, cached_message_hash(m))
        out.append(h)
    return out


def message_sig(message: Message) -> str:
    """What an assistant message says, loosely: its text (whitespace-normalised) and the names of
    the tools it called. Clients resend answers with different ids, signatures and spacing."""
    text = " ".join(
        " ".join((p.text or "").split()) for p in message.parts if p.type == "text"
    ).strip()
    names = sorted(p.name or "" for p in message.parts if p.type == "tool_call")
    return _h("answer", text, *names)


def answer_sig(flow: LLMFlow) -> str | None:
    """``message_sig`` of the flow's answer, or None when it has none."""
    resp = flow.response
    if resp is None or (not resp.text and not resp.tool_calls):
        return None
    text = " ".join(resp.text.split())
    names = sorted(c.name or "" for c in resp.tool_calls)
    return _h("answer", text, *names)


def request_hash(flow: LLMFlow) -> str:
    """The request as sent (method, host, path, body): equal means the very same call again."""
    req = flow.request
    digest = hashlib.sha256(req.body or b"").hexdigest()
    return _h("request", req.method or "", req.host or "", req.path or "", digest)


def prompt_hash(flow: LLMFlow, conversation: str | None = None) -> str | None:
    """System prompt, messages and offered tools without the model (None without messages);
    ``conversation`` is ``prefix_hashes(flow)[-1]`` if the caller has it already."""
    if not flow.request.messages:
        return None
    tools = sorted(t.name for t in flow.request.tools)
    return _h("prompt", conversation or prefix_hashes(flow)[-1], *tools)


def key_fingerprint(flow: LLMFlow) -> str:
    """The masked credential of the request (``sk-…a1b2``), or "" when there is none."""
    for name, value in flow.request.headers.items():
        if name.lower() in _KEY_HEADERS and value:
            return value.split()[-1]
    return ""


def source_host(flow: LLMFlow) -> str:
    """The client's address without its port (each connection has its own port)."""
    addr = flow.metadata.client_address or ""
    if addr.startswith("["):  # [::1]:5000
        return addr[1:].split("]")[0]
    return addr.rsplit(":", 1)[0] if addr.count(":") == 1 else addr


@dataclass(frozen=True)
class Identity:
    """Who sent a flow, as far as the wire tells."""

    client: str
    user_agent: str
    key: str
    source: str

    @property
    def key_text(self) -> str:
        """One string for the identity (what automatic sessions group on)."""
        return "|".join((self.client, self.user_agent, self.key, self.source))

    def describe(self) -> str:
        bits = [
            f"client {self.client or self.user_agent or '?'}",
            f"key {self.key}" if self.key else "no key",
            f"from {self.source}" if self.source else "source unknown",
        ]
        return ", ".join(bits)


def identity(flow: LLMFlow) -> Identity:
    """The flow's client identity."""
    md = flow.metadata
    return Identity(md.client or "", md.user_agent or "", key_fingerprint(flow), source_host(flow))


@dataclass
class ToolRef:
    """A tool call made by a response, or a tool result sent in a request."""

    call_id: str | None
    name: str | None
    message_index: int = -1


@dataclass
class RequestFacts:
    """What the tracker needs from a flow's request."""

    prefixes: list[str]
    conversation: str
    request_hash: str
    prompt_hash: str | None
    roles: list[str]
    results: list[ToolRef] = field(default_factory=list)


def request_facts(flow: LLMFlow) -> RequestFacts:
    """The request-side facts (available as soon as the request is parsed)."""
    prefixes = prefix_hashes(flow)
    results = [
        ToolRef(p.tool_call_id, p.name, i)
        for i, m in enumerate(flow.request.messages)
        for p in m.parts
        if p.type == "tool_result"
    ]
    return RequestFacts(
        prefixes=prefixes,
        conversation=prefixes[-1],
        request_hash=request_hash(flow),
        prompt_hash=prompt_hash(flow, prefixes[-1]),
        roles=[m.role for m in flow.request.messages],
        results=results,
    )


def tool_calls_made(flow: LLMFlow) -> list[ToolRef]:
    """The tool calls in the flow's answer."""
    resp = flow.response
    return [ToolRef(c.id, c.name) for c in resp.tool_calls] if resp else []


def failed(flow: LLMFlow) -> bool:
    """Whether the call failed (an error, or an HTTP status of 400 or more)."""
    status = flow.response.status_code if flow.response else 0
    return flow.error is not None or str(flow.state) == "error" or status >= 400
