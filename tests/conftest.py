"""Shared test fixtures: a fresh data dir per test, no network, parser bugs fail the test."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests never reach the network: tiktoken must fall back rather than try to download. Its cache
# dir is an empty one made for this run (never a committed cache: the counts must not depend on
# what a previous run happened to download).
if "TIKTOKEN_CACHE_DIR" not in os.environ:
    os.environ["TIKTOKEN_CACHE_DIR"] = tempfile.mkdtemp(prefix="flowbook-tiktoken-empty-")
    atexit.register(shutil.rmtree, os.environ["TIKTOKEN_CACHE_DIR"], ignore_errors=True)


class _InternalErrors(logging.Handler):
    """Collects what flowbook's ``safecall`` guard logs (from any thread)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lock_ = threading.Lock()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        with self.lock_:
            self.messages.append(text)

    def take(self) -> list[str]:
        with self.lock_:
            out, self.messages = self.messages, []
        return out


@pytest.fixture(autouse=True)
def _fail_on_internal_parser_errors() -> Iterator[_InternalErrors]:
    """A bug in flowbook's parsing never breaks traffic, but it must break the test suite."""
    from flowbook.capture.safecall import INTERNAL_LOG

    handler = _InternalErrors()
    logger = logging.getLogger(INTERNAL_LOG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
    errors = handler.take()
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
