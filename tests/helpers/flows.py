"""Helpers for tests that read captured flows."""

from __future__ import annotations

import time
from collections.abc import Callable

import flowbook as fb
from flowbook.model import LLMFlow


def wait_for(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``pred`` until it is true (True) or ``timeout`` seconds have passed (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def wait_until_final(timeout: float = 10.0) -> bool:
    """Wait until no captured flow is still pending or streaming.

    An SDK can raise on an in-stream error before the proxy has seen the stream end; the flow
    is final only once the proxy has.
    """

    def final() -> bool:
        fb.wait_idle()
        return not set(fb.flows()["state"]) & {"pending", "streaming"}

    return wait_for(final, timeout)


def only_flow() -> LLMFlow:
    """The one flow captured so far (after the recorder is idle); fails if there are more."""
    assert fb.wait_idle()
    df = fb.flows()
    assert len(df) == 1, df
    return fb.get_flow(df.loc[0, "id"])
