"""One guard around everything the recorder does with captured data.

A bug in flowbook's parsing must never break traffic or the recorder thread (DESIGN §2). Like
mitmproxy's ``safecall`` around addon hooks, :func:`safecall` catches the exception, logs it with
its traceback on the :data:`INTERNAL_LOG` logger, and records a parse error on the flow so the
user sees that this flow was not fully understood. The test suite attaches a handler to that
logger and fails any test during which it received a record (tests/conftest.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from flowbook.model import LLMFlow

#: Name of the logger that receives every internal error, with its traceback.
INTERNAL_LOG = "flowbook.capture.internal"

log = logging.getLogger(INTERNAL_LOG)


@contextmanager
def safecall(flow: LLMFlow | None, what: str) -> Iterator[None]:
    """Run the ``with`` body; an exception is logged and, when a flow is given, recorded on it
    as ``"<what>: <ExceptionType>: <message>"`` in ``metadata.parse_errors``."""
    try:
        yield
    except Exception as exc:
        flow_id = flow.id if flow is not None else "-"
        log.error("flowbook: %s failed (flow %s)", what, flow_id, exc_info=True)
        if flow is not None:
            flow.metadata.parse_errors.append(f"{what}: {type(exc).__name__}: {exc}"[:500])
