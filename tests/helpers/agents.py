"""Agent-like traffic with the official SDKs: tool-calling loops in three wire formats.

Each agent asks about the weather (the fake upstream then calls ``get_weather``), runs the tool,
sends the result back, and gets a final answer: two flows per loop, the second answering the
first's tool call. ``Agent.step`` does one request so that tests and the notebook can interleave
agents turn by turn. The fake upstream is deterministic, so every flow's place (thread, turn,
tool chain) is known in advance.
"""

from __future__ import annotations

import json
from typing import Any

WEATHER_TOOL_DESC = "Current weather for a city"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def run_tool(name: str, args: Any) -> str:
    """The agent's tool: deterministic weather."""
    city = (args or {}).get("city", "?") if isinstance(args, dict) else "?"
    return f"Sunny, 21 C in {city}"


class OpenAIAgent:
    """A Chat Completions tool loop (``openai`` SDK)."""

    def __init__(self, base_url: str, key: str, model: str = "gpt-4o-mini", **kw: Any) -> None:
        import openai

        self.client = openai.OpenAI(base_url=base_url + "/v1", api_key=key, **kw)
        self.model = model
        self.messages: list[dict[str, Any]] = []
        self.tools = [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": WEATHER_TOOL_DESC,
                    "parameters": SCHEMA,
                },
            }
        ]

    def ask(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})

    def step(self) -> bool:
        """One request; True when the model called a tool (another step follows)."""
        r = self.client.chat.completions.create(
            model=self.model, messages=self.messages, tools=self.tools
        )
        msg = r.choices[0].message
        if msg.tool_calls:
            self.messages.append(msg.model_dump(exclude_none=True))
            for call in msg.tool_calls:
                args = json.loads(call.function.arguments)
                self.messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call.id,
                        "content": run_tool(call.function.name, args),
                    }
                )
            return True
        self.messages.append({"role": "assistant", "content": msg.content or ""})
        return False


class AnthropicAgent:
    """A Messages tool loop (``anthropic`` SDK), streamed."""

    def __init__(
        self, base_url: str, key: str, model: str = "claude-sonnet-4-5", **kw: Any
    ) -> None:
        import anthropic

        self.client = anthropic.Anthropic(base_url=base_url, api_key=key, **kw)
        self.model = model
        self.messages: list[dict[str, Any]] = []
        self.tools = [
            {"name": "get_weather", "description": WEATHER_TOOL_DESC, "input_schema": SCHEMA}
        ]

    def ask(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})

    def step(self) -> bool:
        with self.client.messages.stream(
            model=self.model, max_tokens=256, messages=self.messages, tools=self.tools
        ) as s:
            final = s.get_final_message()
        content = [b.model_dump(exclude_none=True) for b in final.content]
        self.messages.append({"role": "assistant", "content": content})
        uses = [b for b in final.content if b.type == "tool_use"]
        if not uses:
            return False
        self.messages.append(
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": u.id,
                        "content": run_tool(u.name, u.input),
                    }
                    for u in uses
                ],
            }
        )
        return True


class GeminiAgent:
    """A generateContent tool loop (``google-genai`` SDK), function calls by name (no ids)."""

    def __init__(self, base_url: str, key: str, model: str = "gemini-2.5-flash") -> None:
        from google import genai
        from google.genai import types

        self.types = types
        self.client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=base_url))
        self.model = model
        self.contents: list[Any] = []
        self.config = types.GenerateContentConfig(
            tools=[
                types.Tool(
                    function_declarations=[
                        types.FunctionDeclaration(
                            name="get_weather", description=WEATHER_TOOL_DESC, parameters=SCHEMA
                        )
                    ]
                )
            ],
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )

    def ask(self, text: str) -> None:
        t = self.types
        self.contents.append(t.Content(role="user", parts=[t.Part(text=text)]))

    def step(self) -> bool:
        t = self.types
        r = self.client.models.generate_content(
            model=self.model, contents=self.contents, config=self.config
        )
        content = r.candidates[0].content
        self.contents.append(content)
        calls = [p.function_call for p in content.parts or [] if p.function_call]
        if not calls:
            return False
        self.contents.append(
            t.Content(
                role="user",
                parts=[
                    t.Part(
                        function_response=t.FunctionResponse(
                            name=c.name, response={"result": run_tool(c.name, c.args)}
                        )
                    )
                    for c in calls
                ],
            )
        )
        return True


def openai_error_body(status: int = 429) -> bytes:
    """OpenAI's rate-limit error body (for ``FakeUpstream.script``)."""
    return json.dumps(
        {
            "error": {
                "message": "Rate limit reached for requests",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }
    ).encode()
