"""Ollama's native API: ``/api/chat`` and ``/api/generate`` (docs/wire-formats.md §8).

Streaming is on unless the request says ``"stream": false``; the stream is NDJSON, one object
per line, the last with ``"done": true``, ``done_reason`` and the token counts
(``prompt_eval_count`` in, ``eval_count`` out). Tool-call arguments are JSON objects, not strings.
Ollama's OpenAI-compatible ``/v1/…`` endpoints are handled by the ``openai_compatible`` provider.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from flowbook.model import (
    Api,
    ErrorType,
    FlowError,
    LLMRequest,
    LLMResponse,
    Message,
    Part,
    StreamEvent,
    ToolCall,
    Usage,
)
from flowbook.providers.base import (
    HOST,
    JSON,
    NDJSON,
    PATH,
    Assembler,
    Detection,
    Provider,
    RequestView,
    framing_for_content_type,
    generic_error,
    parse_arguments,
    wire_request,
)
from flowbook.providers.codec import WireCodec
from flowbook.providers.ollama_encode import OLLAMA_CHAT, OLLAMA_GENERATE
from flowbook.providers.openai_common import parse_tools
from flowbook.providers.registry import register

OLLAMA_PORT = 11434
_APIS = {"/api/chat": Api.CHAT, "/api/generate": Api.GENERATE}
_MAPPED = frozenset({"model", "messages", "prompt", "system", "tools", "stream", "images"})
_TIMINGS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


def _image_parts(images: Any) -> list[Part]:
    return [Part(type="image", data=i) for i in images or [] if isinstance(i, str)]


class OllamaProvider(Provider):
    name: ClassVar[str] = "ollama"

    def detect(self, req: RequestView) -> Detection | None:
        path = req.path_only.rstrip("/")
        on_port = req.port == OLLAMA_PORT
        api = _APIS.get(path)
        if api is not None:
            body = req.json()
            if isinstance(body, dict) and isinstance(body.get("model"), str):
                return Detection(self.name, api, HOST if on_port else PATH)
            return None
        if on_port and path.startswith("/api/"):
            # /api/tags, /api/show, /api/embed…: Ollama traffic, not a model call we rebuild.
            return Detection(self.name, Api.OTHER, PATH)
        return None

    def parse_request(self, req: RequestView, api: str) -> LLMRequest:
        body = req.json()
        out = wire_request(req)
        if not isinstance(body, dict):
            return out
        out.model = body.get("model") if isinstance(body.get("model"), str) else None
        out.stream = body.get("stream", True) is not False  # absent means streamed
        out.tools = parse_tools(body.get("tools"))
        out.params = {k: v for k, v in body.items() if k not in _MAPPED}
        if isinstance(body.get("system"), str):
            out.system = body["system"]
        if api == "generate":
            prompt = [Part(type="text", text=str(body.get("prompt") or ""))]
            out.messages = [Message(role="user", parts=prompt + _image_parts(body.get("images")))]
            return out
        system = [out.system] if out.system else []
        for m in body.get("messages") or []:
            if not isinstance(m, dict):
                continue
            role = str(m.get("role") or "user")
            content: str = m["content"] if isinstance(m.get("content"), str) else ""
            if role == "system":
                system.append(content)
                continue
            if role == "tool":
                part = Part(type="tool_result", name=m.get("tool_name"), content=content)
                out.messages.append(Message(role="tool", parts=[part]))
                continue
            parts: list[Part] = []
            if m.get("thinking"):
                parts.append(Part(type="thinking", text=str(m["thinking"])))
            if content:
                parts.append(Part(type="text", text=content))
            parts += _image_parts(m.get("images"))
            for tc in m.get("tool_calls") or []:
                fn = tc.get("function") if isinstance(tc, dict) else None
                if isinstance(fn, dict):
                    args = fn.get("arguments")
                    args = parse_arguments(args) if isinstance(args, str) else args
                    parts.append(
                        Part(type="tool_call", id=tc.get("id"), name=fn.get("name"), arguments=args)
                    )
            out.messages.append(Message(role=role, parts=parts))
        out.system = "\n\n".join(system) if system else None
        return out

    def framing(self, req: RequestView, api: str, content_type: str) -> str:
        framing = framing_for_content_type(content_type)
        if framing != JSON:
            return framing
        body = req.json()
        streamed = not (isinstance(body, dict) and body.get("stream") is False)
        return NDJSON if streamed and api in _APIS.values() else JSON

    def codec(self, api: str) -> WireCodec | None:
        return {Api.CHAT: OLLAMA_CHAT, Api.GENERATE: OLLAMA_GENERATE}.get(Api(api))

    def assembler(self, api: str, request: LLMRequest, response: LLMResponse) -> Assembler:
        return OllamaAssembler(request, response)

    def parse_error(self, status: int, body: Any, headers: dict[str, str]) -> FlowError:
        err = generic_error(status, body)
        if "not found" in err.message.lower() and status in (400, 404):
            err.type = ErrorType.MODEL_UNAVAILABLE
        return err


class OllamaAssembler(Assembler):
    """Folds NDJSON lines (or one non-streamed object) of /api/chat or /api/generate."""

    def feed(self, event: StreamEvent) -> bool:
        data = event.data
        if not isinstance(data, dict):
            if isinstance(data, str) and data.strip() and self.error is None:
                self.error = FlowError(type=ErrorType.PARSE, message=f"not JSON: {data[:200]!r}")
            return False
        r = self.response
        if data.get("error"):
            text = str(data["error"])
            etype = ErrorType.MODEL_UNAVAILABLE if "not found" in text else ErrorType.OTHER
            self.error = FlowError(type=etype, message=text, raw=data)
            return False
        if isinstance(data.get("model"), str):
            r.model = data["model"]
        carried = False
        msg: dict[str, Any] = data["message"] if isinstance(data.get("message"), dict) else data
        piece = msg.get("content") if "message" in data else data.get("response")
        if isinstance(piece, str) and piece:
            r.text += piece
            carried = True
        if isinstance(msg.get("thinking"), str) and msg["thinking"]:
            r.thinking += msg["thinking"]
            carried = True
        for tc in msg.get("tool_calls") or []:
            fn = tc.get("function") if isinstance(tc, dict) else None
            if not isinstance(fn, dict):
                continue
            args = fn.get("arguments")
            raw = args if isinstance(args, str) else json.dumps(args)
            parsed = parse_arguments(args) if isinstance(args, str) else args
            tid = tc.get("id") if isinstance(tc.get("id"), str) else None
            r.tool_calls.append(ToolCall(tid, str(fn.get("name") or ""), parsed, raw))
            carried = True
        if data.get("done"):
            self.finished = True
            self._done(data)
        return carried

    def _done(self, data: dict[str, Any]) -> None:
        r = self.response
        if data.get("done_reason"):
            r.stop_reason = str(data["done_reason"])
        inp, out = data.get("prompt_eval_count"), data.get("eval_count")
        if isinstance(inp, int) or isinstance(out, int):
            r.usage = Usage(
                input=inp if isinstance(inp, int) else 0,
                output=out if isinstance(out, int) else 0,
                source="reported",
                details={k: data[k] for k in ("prompt_eval_count", "eval_count") if k in data},
            )
        timings = {k: data[k] for k in _TIMINGS if isinstance(data.get(k), int)}
        if timings:
            r.extra["ollama_timings_ns"] = timings

    def feed_body(self, body: Any) -> None:
        if isinstance(body, dict):
            self.feed(StreamEvent(t=0.0, event=None, data=body))
            return
        # A streamed body that reached us whole (e.g. a HAR import): feed it line by line.
        from flowbook.streams.ndjson import NDJSONDecoder

        raw = body.encode("utf-8") if isinstance(body, str) else bytes(body or b"")
        dec = NDJSONDecoder()
        for ev in dec.feed(raw, 0.0) + dec.close(0.0):
            self.feed(ev)


register(OllamaProvider())
