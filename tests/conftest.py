"""Shared test fixtures: a fresh data dir per test, no network, parser bugs fail the test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests never reach the network: tiktoken must fall back rather than try to download.
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(Path(__file__).parent / ".tiktoken-empty"))


@pytest.fixture(autouse=True)
def _fail_on_internal_parser_errors() -> Iterator[None]:
    """A bug in flowbook's parsing never breaks traffic, but it must break the test suite."""
    from flowbook.capture import recorder

    recorder.INTERNAL_ERRORS.clear()
    yield
    errors = list(recorder.INTERNAL_ERRORS)
    recorder.INTERNAL_ERRORS.clear()
    assert not errors, "internal errors while recording flows:\n" + "\n".join(errors)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh flowbook data dir, also set as FLOWBOOK_DATA_DIR; flowbook is reset after."""
    from flowbook import api

    d = tmp_path / "flowbook-data"
    monkeypatch.setenv("FLOWBOOK_DATA_DIR", str(d))
    api._reset_for_tests()
    yield d
    api._reset_for_tests()
