"""``flowbook demo``: real SDK traffic through flowbook, with no API key and no network.

Starts flowbook's fake LLM server (it speaks every provider's wire format) and flowbook's proxy
in reverse mode in front of it, drives the official ``openai``, ``anthropic`` and
``google-genai`` SDKs and a Kiro-shaped client through the proxy (streamed and not, tool calls,
thinking, an error), then prints what flowbook captured.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

WEATHER: dict[str, Any] = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}

OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-sonnet-4-6"
GEMINI_MODEL = "gemini-2.5-flash"
KIRO_MODEL = "claude-sonnet-4.5"


def drive_openai(base_url: str) -> list[str]:
    import openai

    c = openai.OpenAI(base_url=base_url + "/v1", api_key="sk-demo-0123456789abcdef", max_retries=0)
    done = []
    c.chat.completions.create(
        model=OPENAI_MODEL,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hello from flowbook"},
        ],
    )
    done.append("openai chat")
    tools: Any = [{"type": "function", "function": WEATHER}]
    stream = c.chat.completions.create(
        model=OPENAI_MODEL,
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=tools,
    )
    for _ in stream:
        pass
    done.append("openai chat stream + tool call")
    c.responses.create(
        model=OPENAI_MODEL, input="Summarise flowbook in one line", instructions="Be brief"
    )
    with c.responses.stream(model=OPENAI_MODEL, input="Stream a haiku about proxies") as s:
        for _ in s:
            pass
    done.append("openai responses (plain + stream)")
    try:
        c.chat.completions.create(
            model="error-429", messages=[{"role": "user", "content": "too fast"}]
        )
    except openai.RateLimitError:
        done.append("openai 429 (the SDK raised RateLimitError)")
    return done


def drive_anthropic(base_url: str) -> list[str]:
    import anthropic

    c = anthropic.Anthropic(
        base_url=base_url, api_key="sk-ant-demo-0123456789abcdef", max_retries=0
    )
    c.messages.create(
        model=ANTHROPIC_MODEL,
        max_tokens=256,
        system="You are terse.",
        messages=[{"role": "user", "content": "Hello, Claude"}],
    )
    with c.messages.stream(
        model=ANTHROPIC_MODEL,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=[
            {
                "name": WEATHER["name"],
                "description": WEATHER["description"],
                "input_schema": WEATHER["parameters"],
            }
        ],
    ) as s:
        for _ in s:
            pass
    return ["anthropic messages", "anthropic stream + thinking + tool use"]


def drive_gemini(base_url: str) -> list[str]:
    from google import genai
    from google.genai import types

    c = genai.Client(
        api_key="AIzaDemoKey0123456789abcdefghij", http_options=types.HttpOptions(base_url=base_url)
    )
    c.models.generate_content(model=GEMINI_MODEL, contents="Hello, Gemini")
    for _ in c.models.generate_content_stream(
        model=GEMINI_MODEL,
        contents="Think, then greet flowbook",
        config=types.GenerateContentConfig(
            thinking_config=types.ThinkingConfig(include_thoughts=True)
        ),
    ):
        pass
    return ["gemini generateContent", "gemini stream (alt=sse) + thoughts"]


def drive_kiro(base_url: str) -> list[str]:
    """A Kiro-CLI-shaped client: the real request shape, AWS event-stream response."""
    import httpx

    from flowbook.streams.eventstream import EventStreamDecoder

    body = {
        "conversationState": {
            "conversationId": str(uuid.uuid4()),
            "chatTriggerType": "MANUAL",
            "currentMessage": {
                "userInputMessage": {
                    "content": "Explain what a proxy does, briefly",
                    "modelId": KIRO_MODEL,
                    "origin": "KIRO_CLI",
                    "userInputMessageContext": {"envState": {"operatingSystem": "linux"}},
                }
            },
            "history": [],
        },
        "profileArn": "arn:aws:codewhisperer:us-east-1:000000000000:profile/DEMO",
    }
    headers = {
        "content-type": "application/x-amz-json-1.0",
        "x-amz-target": "AmazonCodeWhispererStreamingService.GenerateAssistantResponse",
        "authorization": "Bearer aoaAAAAAdemo0123456789abcdef",
        "user-agent": "aws-sdk-rust/1.3.16 ua/2.1 api/codewhispererstreaming/0.1.16551 "
        "os/linux lang/rust/1.92.0 md/appVersion-2.4.1 app/AmazonQ-For-CLI",
    }
    dec = EventStreamDecoder()
    with (
        httpx.Client(base_url=base_url, timeout=30) as c,
        c.stream("POST", "/", json=body, headers=headers) as r,
    ):
        for chunk in r.iter_bytes():
            dec.feed(chunk)
    return ["kiro generateAssistantResponse (event-stream)"]


COLUMNS = [
    "provider",
    "api",
    "model",
    "stream",
    "state",
    "input_tokens",
    "output_tokens",
    "usage_source",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "preview",
]


def run_demo(data_dir: str | Path | None = None, *, quiet: bool = False) -> int:
    """Run the demo; returns the process exit code (0 when every call was captured)."""
    import pandas as pd

    import flowbook as fb
    from flowbook.fake_upstream import FakeUpstream

    say: Callable[..., Any] = (lambda *a, **k: None) if quiet else print
    data_dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="flowbook-demo-"))
    with FakeUpstream() as upstream:
        mon = fb.start(port=0, mode=f"reverse:{upstream.url}", data_dir=data_dir)
        say(f"flowbook demo: fake LLM server at {upstream.url}, proxy at {mon.proxy_url}\n")
        try:
            done: list[str] = []
            for drive in (drive_openai, drive_anthropic, drive_gemini, drive_kiro):
                done += drive(mon.proxy_url)
            fb.wait_idle()
            df = fb.flows(sort_order="asc")
        finally:
            fb.stop()
    for d in done:
        say(f"  sent: {d}")
    with pd.option_context(
        "display.width",
        220,
        "display.max_columns",
        20,
        "display.max_colwidth",
        36,
        "display.float_format",
        "{:.6g}".format,
    ):
        say(f"\nCaptured {len(df)} flows:\n")
        say(df[COLUMNS].to_string(index=False))
        from flowbook.analysis.stats import stats

        say("\nBy provider:\n")
        cols = [
            "count",
            "success_rate",
            "latency_p50",
            "ttft_p50",
            "input_tokens",
            "output_tokens",
            "cost_usd",
            "estimated_share",
        ]
        st = stats(df, by="provider")
        say(st[[c for c in ["provider", *cols] if c in st.columns]].to_string(index=False))
    kiro = df[df["provider"] == "kiro"]
    if len(kiro):
        flow = fb.get_flow(kiro.iloc[0]["id"])
        extra = flow.response.extra if flow.response else {}
        say(
            f"\nKiro reports no tokens: estimated ({flow.usage.source if flow.usage else '-'})"
            f"; credits billed: {extra.get('credits')}, context used: "
            f"{extra.get('context_usage_pct')}%"
        )
    say(
        f"\nFlows are stored in {data_dir}. In a notebook: import flowbook as fb; "
        f"fb.flows(include_history=True) with FLOWBOOK_DATA_DIR={data_dir}"
    )
    expected = {"openai", "anthropic", "gemini", "kiro"}
    providers = {p.split("_")[0] for p in df["provider"]}
    missing = expected - providers
    if missing:
        say(f"\nmissing providers: {sorted(missing)}")
        return 1
    return 0
