"""``flowbook.jsonfast.loads`` parses every document exactly as ``json.loads`` does."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowbook.jsonfast import loads

VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_same_values_as_the_stdlib(value: object) -> None:
    text = json.dumps(value)
    assert loads(text) == json.loads(text)
    assert loads(text.encode()) == json.loads(text)


@pytest.mark.parametrize(
    "doc",
    ['{"a": -9223372036854775809}', '{"a": 18446744073709551616}', "[1e400]", '"\\ud800"'],
)
def test_what_orjson_would_read_differently_or_refuse(doc: str) -> None:
    assert loads(doc) == json.loads(doc)
    assert type(loads(doc)) is type(json.loads(doc))


def test_nan_and_errors_as_the_stdlib() -> None:
    assert math.isnan(loads('{"t": NaN}')["t"])
    with pytest.raises(json.JSONDecodeError):
        loads("{bad")
    with pytest.raises(json.JSONDecodeError):
        loads(b"")
