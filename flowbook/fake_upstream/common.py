"""Shared pieces of the fake upstream: the request record, the reply shape, and the deterministic
"model" every provider format uses (reply text, thinking text, tool call, token counts).

Everything here is a pure function of the request, so a test can predict the exact reply.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TEXT = "Hello from the fake upstream. It answers every question the same way."
TOOL_ARGS: dict[str, Any] = {"city": "Paris"}
# The JSON of TOOL_ARGS split the way real providers split arguments ('{"', 'city', '": "', …).
TOOL_ARG_FRAGMENTS = ['{"', "city", '": "', "Par", "is", '"}']
ERROR_STATUSES = {
    "error-400": 400,
    "error-401": 401,
    "error-404": 404,
    "error-429": 429,
    "error-500": 500,
}
MIDSTREAM_ERROR_MODEL = "error-midstream"


@dataclass
class FakeRequest:
    """One request the fake received. ``headers`` keys are lower-cased; ``path`` has no query."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any = None
    client_port: int = 0  # the client's source port: equal ports = a reused keep-alive connection

    @property
    def json_dict(self) -> dict[str, Any]:
        """The JSON body when it is an object, else an empty dict (formats read it with .get)."""
        return self.json if isinstance(self.json, dict) else {}

    @property
    def target(self) -> str:
        """The path with its query string, as sent."""
        if not self.query:
            return self.path
        return self.path + "?" + "&".join(f"{k}={v}" for k, v in self.query.items())


@dataclass
class Reply:
    """What the server writes back. ``events`` (streamed, one flush each) or ``body`` (fixed)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    events: Iterable[bytes] | None = None


def json_reply(status: int, obj: Any, headers: dict[str, str] | None = None) -> Reply:
    """A non-streamed JSON reply."""
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return Reply(status=status, headers=h, body=json.dumps(obj).encode())


def tokens(text: str) -> int:
    """Deterministic token estimate: one token per 4 characters, at least 1."""
    return max(1, (len(text) + 3) // 4)


def split_words(text: str) -> list[str]:
    """Split text into stream deltas: each word keeps its trailing whitespace."""
    parts = re.findall(r"\S+\s*|\s+", text)
    return parts or [text]


def stable_id(prefix: str, seed: str, n: int = 24) -> str:
    """A deterministic id (same request → same id), shaped like the provider's ids."""
    return prefix + hashlib.sha256(seed.encode()).hexdigest()[:n]


def fresh_id(prefix: str, req: FakeRequest, n: int) -> str:
    """A new response id for ``req``, shaped like the provider's (the clock makes it unique)."""
    return stable_id(prefix, req.body.decode("utf-8", "replace") + str(time.time()), n)


def chat_turn(messages: list[Any]) -> tuple[str | None, str | None]:
    """(last user text, tool result) of an OpenAI-style message list (Chat, Ollama).

    The tool result is the content of a trailing ``role: tool`` message: the model's turn after
    a tool call.
    """
    tool_result: str | None = None
    if messages and messages[-1].get("role") == "tool":
        tool_result = text_of(messages[-1].get("content"))
    for m in reversed(messages):
        if m.get("role") == "user":
            return text_of(m.get("content")), tool_result
    return None, tool_result


def reply_text(user_text: str | None, tool_result: str | None = None) -> str:
    """The answer text: a tool result is acknowledged, user text is echoed."""
    if tool_result is not None:
        return f"The tool said: {tool_result}"
    if user_text:
        return f"Echo: {user_text}"
    return DEFAULT_TEXT


def thinking_text(user_text: str | None) -> str:
    """The reasoning text emitted when the request asks for thinking."""
    return f"The user wrote {len(user_text or '')} characters. I will echo them back politely."


def wants_tool(user_text: str | None, tools_offered: bool, forced: bool) -> bool:
    """A tool call happens when tools are offered and the text mentions weather, or it is forced."""
    if not tools_offered:
        return False
    return forced or "weather" in (user_text or "").lower()


def text_of(content: Any) -> str:
    """Plain text of a content value: a string, or a list of parts with ``text`` fields."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(text_of(p) for p in content)
    if isinstance(content, dict):
        for key in ("text", "content", "output"):
            if key in content:
                return text_of(content[key])
    return ""


def padded_json(obj: Any, seed: int) -> str:
    """Compact JSON with ``seed % 16`` spaces before the final brace (Anthropic's quirk)."""
    s = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return s[:-1] + " " * (seed % 16) + "}"


@dataclass
class Plan:
    """What the fake "model" answers, before a format renders it."""

    model: str
    user_text: str | None
    text: str
    thinking: str | None
    tool_name: str | None
    input_tokens: int
    midstream_error: bool = False

    @property
    def tool_args(self) -> str:
        """The tool arguments as one JSON string."""
        return "".join(TOOL_ARG_FRAGMENTS)

    @property
    def thinking_tokens(self) -> int:
        """Tokens spent on thinking (0 without thinking)."""
        return tokens(self.thinking) if self.thinking else 0

    @property
    def output_tokens(self) -> int:
        """Visible output tokens plus thinking tokens (the providers' usual total)."""
        visible = tokens(self.tool_args) if self.tool_name else tokens(self.text)
        return visible + self.thinking_tokens


def make_plan(
    model: str,
    user_text: str | None,
    *,
    tool_result: str | None = None,
    tool_names: list[str] | None = None,
    forced_tool: str | bool = False,
    thinking: bool = False,
    prompt: Any = None,
) -> Plan:
    """Decide the answer. ``forced_tool`` is a tool name, True (any tool) or False.

    No tool call follows a tool result, so agent loops terminate.
    """
    names = tool_names or []
    tool: str | None = None
    if tool_result is None and wants_tool(user_text, bool(names), bool(forced_tool)):
        if isinstance(forced_tool, str) and forced_tool in names:
            tool = forced_tool
        else:
            tool = "get_weather" if "get_weather" in names else names[0]
    text = "" if tool else reply_text(user_text, tool_result)
    prompt_text = json.dumps(prompt, ensure_ascii=False) if prompt is not None else user_text or ""
    return Plan(
        model=model,
        user_text=user_text,
        text=text,
        thinking=thinking_text(user_text) if thinking else None,
        tool_name=tool,
        input_tokens=tokens(prompt_text),
        midstream_error=model == MIDSTREAM_ERROR_MODEL,
    )
