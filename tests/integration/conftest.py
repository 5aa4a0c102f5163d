"""Fixtures shared by the integration tests: the fake upstream and a reverse proxy to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import flowbook as fb
from flowbook.fake_upstream import FakeUpstream


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    """flowbook's fake provider server, on a free loopback port."""
    with FakeUpstream() as up:
        yield up


@pytest.fixture
def proxy_url(upstream: FakeUpstream, data_dir: Path) -> Iterator[str]:
    """A running flowbook monitor reverse-proxying to ``upstream``; stopped after the test."""
    mon = fb.start(port=0, mode=f"reverse:{upstream.url}", data_dir=data_dir)
    yield mon.proxy_url
    fb.stop()
