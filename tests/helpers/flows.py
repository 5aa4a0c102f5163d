"""Helpers for tests that read captured flows."""

from __future__ import annotations

import time

import flowbook as fb


def wait_until_final(timeout: float = 10.0) -> bool:
    """Wait until no captured flow is still pending or streaming.

    An SDK can raise on an in-stream error before the proxy has seen the stream end; the flow
    is final only once the proxy has.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fb.wait_idle()
        states = set(fb.flows()["state"])
        if not states & {"pending", "streaming"}:
            return True
        time.sleep(0.02)
    return False
