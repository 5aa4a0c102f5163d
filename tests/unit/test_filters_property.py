"""Property tests: the vectorised and per-flow evaluators always agree; parse() only ever
raises FilterError; the canonical form parses back to the same filter."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowbook.filters import FilterError, MemoryFlowSource, parse
from flowbook.model import (
    ErrorType,
    FlowAnnotations,
    FlowError,
    FlowMetadata,
    FlowState,
    FlowTimestamps,
    LLMFlow,
    LLMRequest,
    LLMResponse,
    Message,
    Part,
    Tool,
    ToolCall,
    Usage,
)
from flowbook.schema import frame_from_rows, summary_row

WORDS = ["gpt-4o", "GPT-4o-mini", "claude-sonnet-4", "gemini-2.5-pro", "o3", "x", "Ünïcode", "a b"]
HOSTS = ["api.openai.com", "api.anthropic.com", "localhost", "generativelanguage.googleapis.com"]
PATHS = ["/v1/chat/completions", "/v1/messages", "/v1/models", "/v1beta/models/g:generateContent"]
TEXTS = ["hello world", "weather in Paris", "", "ERROR quota", "tool time", "ßtraße"]
TOOLS = ["get_weather", "search", "run_code"]
TAGS = ["prod", "dev", "x", "weather"]
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def flows(draw: st.DrawFn, fid: str) -> LLMFlow:
    has_response = draw(st.booleans())
    usage = None
    if has_response and draw(st.booleans()):
        inp = draw(st.integers(0, 20_000))
        usage = Usage(
            input=inp,
            output=draw(st.integers(0, 5000)),
            cache_read=draw(st.integers(0, inp)),
            cache_write=draw(st.sampled_from([0, 0, 100])),
            reasoning=draw(st.sampled_from([0, 50])),
            source=draw(st.sampled_from(["reported", "estimated", "missing"])),
        )
    response = None
    if has_response:
        response = LLMResponse(
            status_code=draw(st.sampled_from([200, 200, 400, 429, 500, 0])),
            headers=draw(
                st.sampled_from(
                    [{"content-type": "application/json"}, {"Content-Type": "text/event-stream"}]
                )
            ),
            body=draw(st.sampled_from([None, b"", b'{"ok": true}', b"data: hello"])),
            text=draw(st.sampled_from(TEXTS)),
            thinking=draw(st.sampled_from(["", "hmm"])),
            tool_calls=[
                ToolCall(id=str(i), name=n, arguments_raw="{}")
                for i, n in enumerate(draw(st.lists(st.sampled_from(TOOLS), max_size=2)))
            ],
            stop_reason=draw(st.sampled_from([None, "stop", "tool_use", "max_tokens"])),
            usage=usage,
        )
    created = 1_700_000_000.0
    latency = draw(st.one_of(st.none(), st.floats(0, 10, allow_nan=False)))
    ts = FlowTimestamps(created=created)
    if latency is not None:
        ts.completed = created + latency
        if draw(st.booleans()):
            ts.first_token = created + latency / 3
    error = None
    if draw(st.integers(0, 3)) == 0:
        error = FlowError(draw(st.sampled_from(list(ErrorType))), draw(st.sampled_from(TEXTS)))
    return LLMFlow(
        id=fid,
        state=draw(st.sampled_from(list(FlowState))),
        request=LLMRequest(
            method=draw(st.sampled_from(["POST", "GET"])),
            host=draw(st.sampled_from(HOSTS)),
            path=draw(st.sampled_from(PATHS)),
            headers={"content-type": "application/json", "x-key": draw(st.sampled_from(WORDS))},
            body=draw(st.sampled_from([None, b'{"model": "gpt-4o"}', b"hello"])),
            model=draw(st.one_of(st.none(), st.sampled_from(WORDS))),
            messages=[Message("user", [Part("text", text=draw(st.sampled_from(TEXTS)))])],
            system=draw(st.one_of(st.none(), st.sampled_from(TEXTS))),
            tools=[Tool(name=n) for n in draw(st.lists(st.sampled_from(TOOLS), max_size=2))],
            stream=draw(st.booleans()),
        ),
        response=response,
        error=error,
        metadata=FlowMetadata(
            provider=draw(st.sampled_from(["openai", "anthropic", "gemini", "kiro"])),
            cost_usd=draw(st.one_of(st.none(), st.just(math.nan), st.floats(0, 1))),
            session=draw(st.one_of(st.none(), st.sampled_from(["s1", "s2"]))),
            client=draw(st.one_of(st.none(), st.sampled_from(["curl", "openai-python"]))),
        ),
        timestamps=ts,
        annotations=FlowAnnotations(
            bookmarked=draw(st.booleans()),
            tags=draw(st.lists(st.sampled_from(TAGS), max_size=3, unique=True)),
            comment=draw(st.one_of(st.none(), st.sampled_from(TEXTS))),
        ),
    )


flow_lists = st.integers(0, 8).flatmap(
    lambda n: st.tuples(*[flows(f"f{i}") for i in range(n)]) if n else st.just(())
)

TEXT_KEYS = [
    "model",
    "provider",
    "host",
    "path",
    "url",
    "method",
    "state",
    "stop",
    "error",
    "source",
    "session",
    "client",
    "tag",
    "tool",
    "content",
    "request",
    "response",
]
NUM_KEYS = [
    "tokens",
    "input",
    "output",
    "cache_read",
    "cache_write",
    "reasoning",
    "cost",
    "latency",
    "ttft",
    "tps",
    "bytes",
    "status",
    "tool_calls",
    "response_bytes",
]
FLAGS = [
    "is:bookmarked",
    "is:error",
    "is:stream",
    "is:streaming",
    "is:completed",
    "is:pending",
    "is:intercepted",
    "is:cancelled",
    "is:estimated",
    "has:tools",
    "has:thinking",
    "has:cache",
    "has:cost",
    "has:error",
    "has:tool_calls",
    "has:usage",
    "~e",
    "~q",
    "~s",
    "~a",
    "~marked",
    "~tools",
    "~k",
    "~starred",
    "~all",
    "~tcp",
]
VALUES = [
    "gpt",
    "gpt-4o",
    "GPT*",
    "*o",
    "claude*sonnet*",
    "x",
    "ü",
    "hello",
    "api",
    "v1/m",
    "completed",
    "weather",
    "search",
    "s1",
    "stop",
    "quota",
    "prod",
]
MITM = ["~d", "~u", "~m", "~h", "~hq", "~hs", "~b", "~bq", "~bs", "~t", "~tq", "~ts", "~comment"]
REGEXES = ["openai", "^api", "chat|messages", "json$", "post", "HELLO", "x-key: gpt", ".", "s1"]


def _text_term(key: str, value: str, form: str) -> str:
    if form == "regex":
        return f"{key}:/{value.replace('*', '.*')}/"
    if form == "quoted":
        return f'{key}:"{value}"'
    prefix = {"exact": "=", "not_exact": "!="}.get(form, "")
    return f"{key}:{prefix}{value}"


terms = st.one_of(
    st.builds(
        _text_term,
        st.sampled_from(TEXT_KEYS),
        st.sampled_from(VALUES),
        st.sampled_from(["plain", "regex", "quoted", "exact", "not_exact"]),
    ),
    st.builds(
        lambda k, op, n: f"{k}:{op}{n}",
        st.sampled_from(NUM_KEYS),
        st.sampled_from(["", ">", ">=", "<", "<=", "=", "!="]),
        st.sampled_from(["0", "1", "200", "429", "1.5k", "0.5", "3", "1k", "0.2"]),
    ),
    st.builds(
        lambda k, op, n: f"{k}:{op}{n}",
        st.sampled_from(["latency", "ttft"]),
        st.sampled_from(["", ">", ">=", "<", "<="]),
        st.sampled_from(["0", "200ms", "1s", "0.5s", "1.5k", "3000"]),
    ),
    st.builds(
        lambda k, r: f"{k}:{r}", st.sampled_from(NUM_KEYS), st.sampled_from(["1..500", "0..0"])
    ),
    st.sampled_from(FLAGS),
    st.builds(
        lambda op, rx: f"{op} {rx}" if " " not in rx else f'{op} "{rx}"',
        st.sampled_from(MITM),
        st.sampled_from(REGEXES),
    ),
    st.builds(lambda c: f"~c {c}", st.sampled_from(["200", "429", "500"])),
    st.builds(
        lambda k, v: f"~{k} {v}",
        st.sampled_from(["model", "p", "tool", "tag", "state"]),
        st.sampled_from(VALUES),
    ),
    st.builds(
        lambda k, op, n: f"~{k} {op}{n}",
        st.sampled_from(["tokens", "latency", "cost"]),
        st.sampled_from([">", "<", ">="]),
        st.sampled_from(["0", "1k", "0.01"]),
    ),
    st.sampled_from(REGEXES[:4]),  # a bare word is a URL regex
)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(
            lambda a, op, b: f"{a} {op} {b}",
            children,
            st.sampled_from(["AND", "and", "&", "OR", "or", "|", ""]),
            children,
        ),
        st.builds(lambda op, a: f"{op}{a}", st.sampled_from(["NOT ", "not ", "!"]), children),
        st.builds(lambda a: f"({a})", children),
    )


expressions = st.recursive(terms, _combine, max_leaves=8)


@SETTINGS
@given(flow_lists, expressions)
def test_vectorised_and_per_flow_always_agree(flow_tuple: tuple[LLMFlow, ...], expr: str) -> None:
    f = parse(expr)
    df = frame_from_rows([summary_row(fl) for fl in flow_tuple])
    source = MemoryFlowSource({fl.id: fl for fl in flow_tuple})
    vector = f.mask(df, source=source).tolist()
    per_flow = [f.matches(fl) for fl in flow_tuple]
    assert vector == per_flow


@SETTINGS
@given(expressions)
def test_canonical_form_parses_to_the_same_tree(expr: str) -> None:
    f = parse(expr)
    assert parse(str(f)).root == f.root


TOKENS = ["AND", "or", "NOT", "model", "tokens", "is", "has", "~d", "~c", "~h", "content", "ü"]
ALPHABET = st.sampled_from([*"()~!&|:=<>/\\\"' *.-_01k5sM\t\n", *TOKENS, "🙂", "\x00"])


EMPTY = frame_from_rows([])


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=40), st.lists(ALPHABET, max_size=25).map("".join)))
def test_parse_raises_only_filter_error(text: str) -> None:
    try:
        f = parse(text)
    except FilterError as exc:
        assert 0 <= exc.position <= len(text)
        assert str(exc)
        return
    # What parses also evaluates, on an empty frame and on a flow.
    f.mask(EMPTY, source=MemoryFlowSource({}))
    f.matches(LLMFlow())
