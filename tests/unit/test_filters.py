"""The filter language: parsing, every key and operator, errors, and mitmproxy compatibility."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from mitmproxy import flowfilter
from mitmproxy.test import tflow

from flowbook.filters import FilterError, MemoryFlowSource, parse, validate
from flowbook.model import (
    ErrorType,
    FlowError,
    FlowState,
    LLMFlow,
    LLMRequest,
    LLMResponse,
    Usage,
)
from flowbook.schema import frame_from_rows, summary_row
from tests.helpers import factories


def make_flow(
    fid: str,
    *,
    provider: str = "openai",
    model: str | None = "gpt-4o-2024-08-06",
    host: str = "api.openai.com",
    path: str = "/v1/chat/completions",
    method: str = "POST",
    state: FlowState = FlowState.COMPLETED,
    status: int | None = 200,
    user: str = "hello there",
    system: str | None = None,
    text: str = "Hi!",
    tools: tuple[str, ...] = (),
    calls: tuple[str, ...] = (),
    usage: Usage | None = None,
    latency_s: float | None = 1.0,
    error: FlowError | None = None,
    cost: float | None = None,
    tags: tuple[str, ...] = (),
    bookmarked: bool = False,
    stream: bool = False,
    thinking: str = "",
    req_headers: dict[str, str] | None = None,
    resp_headers: dict[str, str] | None = None,
    comment: str | None = None,
    session: str | None = None,
) -> LLMFlow:
    """One flow with the fields the tests vary; ``status=None`` means no response at all."""
    return factories.make_flow(
        fid,
        state=state,
        provider=provider,
        model=model,
        method=method,
        host=host,
        path=path,
        headers=req_headers or {"content-type": "application/json"},
        request_body=f'{{"model": "{model}", "q": "{user}"}}'.encode(),
        system=system,
        user=user,
        tools=tools,
        stream=stream,
        response=status is not None,
        status=status or 200,
        response_headers=resp_headers or {"content-type": "application/json"},
        response_body=f'{{"text": "{text}"}}'.encode(),
        text=text,
        thinking=thinking,
        tool_calls=calls,
        usage=usage,
        error=error,
        cost=cost,
        session=session,
        latency_s=latency_s,
        bookmarked=bookmarked,
        tags=tags,
        comment=comment,
    )


FLOWS = [
    make_flow("a", usage=Usage(input=900, output=300, source="reported"), cost=0.02, tags=("x",)),
    make_flow(
        "b",
        provider="anthropic",
        model="claude-sonnet-4-20250514",
        host="api.anthropic.com",
        path="/v1/messages",
        system="You are a weather bot",
        user="weather in Paris?",
        text="",
        tools=("get_weather",),
        calls=("get_weather",),
        usage=Usage(input=5000, output=800, cache_read=4000, source="reported"),
        latency_s=3.5,
        thinking="Let me think",
        stream=True,
        bookmarked=True,
        tags=("prod", "weather"),
    ),
    make_flow(
        "c",
        provider="gemini",
        model="gemini-2.5-pro",
        host="generativelanguage.googleapis.com",
        path="/v1beta/models/gemini-2.5-pro:generateContent",
        status=429,
        state=FlowState.ERROR,
        text="",
        error=FlowError(ErrorType.RATE_LIMIT, "Resource exhausted: quota", status=429),
        latency_s=0.2,
        usage=Usage(input=10, output=0, source="estimated"),
    ),
    make_flow("d", model=None, status=None, state=FlowState.PENDING, latency_s=None, user="draft"),
    make_flow(
        "e",
        model="gpt-4o-mini",
        method="GET",
        path="/v1/models",
        comment="check this",
        session="s1",
        resp_headers={"content-type": "text/css", "x-request-id": "req_42"},
    ),
]
BY_ID = {f.id: f for f in FLOWS}
DF = frame_from_rows([summary_row(f) for f in FLOWS])
SOURCE = MemoryFlowSource(BY_ID)


def selected(expr: str) -> set[str]:
    """Ids chosen by the expression, checking that both evaluators agree."""
    f = parse(expr)
    vector = set(DF.loc[f.mask(DF, source=SOURCE), "id"])
    per_flow = {fl.id for fl in FLOWS if f.matches(fl)}
    assert vector == per_flow, expr
    return vector


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        # text keys: substring, glob (anchored), regex, exact
        ("model:gpt-4", {"a", "e"}),
        ("model:GPT-4O-MINI", {"e"}),
        ("model:gpt-4*", {"a", "e"}),
        ("model:*mini", {"e"}),
        ("model:4o*", set()),
        ("model:/claude-(opus|sonnet)/", {"b"}),
        ("model:=gpt-4o-mini", {"e"}),
        ("model:=gpt-4o", set()),
        ("model:!=gpt-4o-mini", {"a", "b", "c"}),
        ('model:"gpt-4*"', set()),
        ("provider:openai", {"a", "d", "e"}),
        ("host:anthropic", {"b"}),
        ("path:/v1/messages", {"b"}),
        ("url:openai.com/v1/chat", {"a", "d"}),
        ("method:get", {"e"}),
        ("state:completed", {"a", "b", "e"}),
        ("error:rate", {"c"}),
        ("source:estimated", {"c"}),
        ("session:s1", {"e"}),
        ("tag:prod", {"b"}),
        ("tag:=x", {"a"}),
        ("tag:!=x", {"b", "c", "d", "e"}),
        ("stop:stop", {"a", "b", "c", "e"}),
        # numbers: comparisons, units, ranges; a missing value never matches
        ("tokens:>1000", {"a", "b"}),
        ("tokens:>1.5k", {"b"}),
        ("tokens:1200", {"a"}),
        ("tokens:!=1200", {"b", "c"}),
        ("tokens:1k..6k", {"a", "b"}),
        ("input:>=5000", {"b"}),
        ("cache_read:>0", {"b"}),
        ("latency:>2s", {"b"}),
        ("latency:<250ms", {"c"}),
        ("latency:>=1000", {"a", "b", "e"}),
        ("ttft:>500", {"b"}),
        ("cost:>0.01", {"a"}),
        ("status:429", {"c"}),
        ("status:4xx", {"c"}),
        ("status:!=200", {"c"}),
        ("tool_calls:1", {"b"}),
        ("bytes:>0", {"a", "b", "c", "d", "e"}),
        # flags
        ("is:bookmarked", {"b"}),
        ("is:error", {"c"}),
        ("is:stream", {"b"}),
        ("is:pending", {"d"}),
        ("is:completed", {"a", "b", "e"}),
        ("is:estimated", {"c"}),
        ("has:thinking", {"b"}),
        ("has:cache", {"b"}),
        ("has:cost", {"a"}),
        ("has:error", {"c"}),
        ("has:tool_calls", {"b"}),
        ("has:tools", {"b"}),
        ("has:usage", {"a", "b", "c"}),
        # text search and tools (full flow)
        ('content:"weather in paris"', {"b"}),
        ("request:weather", {"b"}),
        ("request:/you are a \\w+ bot/", {"b"}),
        ("response:exhausted", {"c"}),
        ("response:get_weather", {"b"}),
        ("content:hi!", {"a", "e"}),
        ("tool:weather", {"b"}),
        ("tool:=get", set()),
        # boolean structure
        ("provider:openai model:gpt", {"a", "e"}),
        ("provider:openai AND NOT model:mini", {"a", "d"}),
        ("provider:openai and not model:mini", {"a", "d"}),
        ("is:error OR is:bookmarked", {"b", "c"}),
        ("is:error | is:bookmarked & has:cost", {"c"}),
        ("(is:error | is:bookmarked) & !has:thinking", {"c"}),
        ("NOT NOT is:error", {"c"}),
        ("!(provider:openai)", {"b", "c"}),
        ("", {"a", "b", "c", "d", "e"}),
    ],
)
def test_keys_and_operators(expr: str, expected: set[str]) -> None:
    assert selected(expr) == expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        # mitmproxy's operators with mitmproxy's meaning
        ("~d anthropic", {"b"}),
        ("~d ^api\\.", {"a", "b", "d", "e"}),
        ("~m get", {"e"}),
        ("~u chat", {"a", "d"}),
        ("~c 429", {"c"}),
        ("~e", {"c"}),
        ("~q", {"d"}),
        ("~s", {"a", "b", "c", "e"}),
        ("~marked", {"b"}),
        ("~comment this", {"e"}),
        ("~hs x-request-id", {"e"}),
        ('~hq "^content-type: application/json$"', {"a", "b", "c", "d", "e"}),
        # as in mitmproxy, an unquoted argument ends at a space (the rest is a bare URL regex)
        ("~hq ^content-type: json", set()),
        ("~h 'x-request-id: req_\\\\d+'", {"e"}),
        ("~b Paris", {"b"}),
        ("~bq Hi!", set()),
        ("~bs Hi!", {"a", "e"}),
        ("~t css", {"e"}),
        ("~ts json", {"a", "b", "c"}),
        ("~a", {"e"}),
        ("~all", {"a", "b", "c", "d", "e"}),
        ("~http", {"a", "b", "c", "d", "e"}),
        ("~websocket", set()),
        ("chat", {"a", "d"}),
        ('"v1/m"', {"b", "e"}),
        ("~d openai|anthropic", {"a", "b", "d", "e"}),
        ("!~s", {"d"}),
        ("~u chat ~m post", {"a", "d"}),
        # the reference's LLM operators (long names where mitmproxy owns the short one)
        ("~model claude", {"b"}),
        ("~p gemini", {"c"}),
        ("~provider anthropic", {"b"}),
        ("~state completed", {"a", "b", "e"}),
        ("~tools", {"b"}),
        ("~k", {"b"}),
        ("~thinking", {"b"}),
        ("~starred", {"b"}),
        ("~tag weather", {"b"}),
        ("~tool get_weather", {"b"}),
        ("~tokens >1000", {"a", "b"}),
        ("~tokens > 1000", {"a", "b"}),
        ("~latency >3s", {"b"}),
        ("(~p openai | ~p gemini) & ~tokens >1000", {"a"}),
        ("~e | ~latency >3s", {"b", "c"}),
        # mixed styles
        ("provider:openai ~m GET", {"e"}),
    ],
)
def test_tilde_operators(expr: str, expected: set[str]) -> None:
    assert selected(expr) == expected


def test_mitmproxy_clashes_resolve_to_mitmproxy() -> None:
    # ~m is the HTTP method (mitmproxy), not the model (the reference).
    assert selected("~m claude") == set()
    # ~s means "has a response", not "state"; ~t is the content type, not tool calls.
    assert selected("~s") == {"a", "b", "c", "e"}
    assert selected("~t json") == {"a", "b", "c", "d", "e"}


def _mitm_flow(host: str, path: str, method: str, body: bytes, status: int) -> Any:
    f = tflow.tflow(resp=True)
    f.request.host, f.request.path, f.request.method = host, path, method
    f.request.headers["content-type"] = "application/json"
    f.request.content = body
    assert f.response is not None
    f.response.status_code = status
    f.response.headers["content-type"] = "text/event-stream"
    f.response.content = b"data: hello world"
    return f


def _as_llm_flow(m: Any, fid: str) -> LLMFlow:
    return LLMFlow(
        id=fid,
        state=FlowState.COMPLETED,
        request=LLMRequest(
            method=m.request.method,
            host=m.request.host,
            path=m.request.path,
            headers={k: v for k, v in m.request.headers.items()},
            body=m.request.content,
        ),
        response=LLMResponse(
            status_code=m.response.status_code,
            headers={k: v for k, v in m.response.headers.items()},
            body=m.response.content,
        ),
    )


@pytest.mark.parametrize(
    "expr",
    [
        "~d openai",
        "~d OPENAI",
        "~m post",
        "~c 200",
        "~c 500",
        "~h content-type",
        "~hq ^content-type: application/json",
        "~hs event-stream",
        "~b HELLO",
        "~bq gpt",
        "~bs world$",
        "~t json",
        "~tq event",
        "~ts event",
        "~s",
        "~q",
        "~a",
        "~all",
        "messages",
        "!~d openai & ~m GET",
        "~d openai | ~c 500",
        "(~d openai | ~d anthropic) & !~c 500",
    ],
)
def test_agrees_with_mitmproxy_flowfilter(expr: str) -> None:
    """Where both can run, flowbook's answer is mitmproxy's (URL regexes avoid the scheme)."""
    cases = [
        ("api.openai.com", "/v1/chat/completions", "POST", b'{"model": "gpt-4o"}', 200),
        ("api.anthropic.com", "/v1/messages", "POST", b'{"model": "claude"}', 500),
        ("localhost", "/v1/models", "GET", b"", 200),
    ]
    ours = parse(expr)
    theirs = flowfilter.parse(expr)
    for i, case in enumerate(cases):
        m = _mitm_flow(*case)
        assert ours.matches(_as_llm_flow(m, str(i))) == bool(theirs(m)), (expr, case)


@pytest.mark.parametrize(
    ("expr", "position", "fragment"),
    [
        ("modle:gpt-4", 0, "did you mean model"),
        ("model:", 6, "model:gpt-4"),
        ("tokens:>abc", 8, "1.5k"),
        ("tokens:>2s", 9, "durations"),
        ("latency:>2x", 10, "ms, s"),
        ("model:gpt AND (is:error", 14, "')'"),
        ("is:error)", 8, "'('"),
        ("model:/(unclosed/", 7, "escape"),
        ("~zz", 0, "operator list"),
        ("~tokns >1", 0, "~tokens"),
        ("is:fancy", 3, "bookmarked"),
        ("has:", 4, "thinking"),
        ("model:gpt OR", 12, "trailing operator"),
        ("AND model:gpt", 0, "quote"),
        ("~c abc", 3, "~c 429"),
        ("~d", 2, "~d openai"),
        ('content:"unterminated', 8, 'close it with "'),
        ("model:>3", 6, "numeric"),
        ("tokens:9..1", 7, "low end"),
        ("~replay", 0, "replays"),
        ("()", 0, "inside"),
    ],
)
def test_errors_point_at_the_position(expr: str, position: int, fragment: str) -> None:
    with pytest.raises(FilterError) as info:
        parse(expr)
    err = info.value
    assert err.position == position
    assert fragment in str(err)
    # The caret sits under the reported column.
    caret_line = str(err).splitlines()[2]
    assert caret_line.index("^") == 2 + position
    assert validate(expr) is not None


def test_full_flow_terms_need_a_source() -> None:
    f = parse("provider:openai AND content:hello")
    assert f.needs_full_flow
    assert [(t.kind, t.literal) for t in f.text_terms] == [("content", "hello")]
    with pytest.raises(FilterError, match="full flows") as info:
        f.mask(DF)
    assert info.value.position == len("provider:openai AND ")
    assert not parse("provider:openai ~u chat").needs_full_flow
    assert parse("~b x ~h y").text_terms == []
    assert parse("~b x").needs_full_flow


class _FtsLikeSource(MemoryFlowSource):
    """Answers literal text terms wholesale, like the file store's FTS index would."""

    def __init__(self) -> None:
        super().__init__(BY_ID)
        self.asked: list[str] = []

    def ids_matching(self, term: Any) -> set[str] | None:
        self.asked.append(str(term))
        if term.is_text_search and term.literal == "weather":
            return {"b", "not-in-frame"}
        return None


def test_source_answers_are_used_and_candidates_narrowed() -> None:
    src = _FtsLikeSource()
    m = parse("request:weather AND NOT ~b zzz").mask(DF, source=src)
    assert set(DF.loc[m, "id"]) == {"b"}
    assert src.asked == ["request:weather", "~b zzz"]
    # A frame that is a subset (a page) still gets a mask of its own length and index.
    page = DF.iloc[[1, 3]]
    assert parse("request:weather").mask(page, source=src).tolist() == [True, False]


def test_mask_keeps_index_and_handles_empty_frames() -> None:
    df = DF.set_index(pd.Index([10, 20, 30, 40, 50]))
    m = parse("model:gpt").mask(df)
    assert m.dtype == bool and list(m.index) == [10, 20, 30, 40, 50]
    empty = frame_from_rows([])
    assert parse("model:gpt AND tokens:>1 AND ~u x").mask(empty).tolist() == []
    assert parse("content:x").mask(empty, source=SOURCE).tolist() == []


def test_canonical_form_round_trips() -> None:
    for expr in [
        "model:gpt-4 AND tokens:>1.5k",
        "~d openai|anthropic !~e",
        "latency:2s..5s | status:4xx",
        'content:"say \\"hi\\"" ~h "a b"',
        "tag:!=x has:tools ~q ~s ~a",
    ]:
        f = parse(expr)
        again = parse(str(f))
        assert again.root == f.root, (expr, str(f))


def test_filter_error_is_a_value_error_and_pickles() -> None:
    import pickle

    with pytest.raises(ValueError):
        parse("model:")
    err = FilterError("bad", 3, "try x", "abcdef")
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.message, copy.position, copy.hint, copy.expression) == (
        "bad",
        3,
        "try x",
        "abcdef",
    )
