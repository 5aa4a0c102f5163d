"""One guard around everything the recorder does with captured data.

A bug in flowbook's parsing must never break traffic or the recorder thread (DESIGN §2). Like
mitmproxy's ``safecall`` around addon hooks, :func:`safecall` catches the exception, logs it with
its traceback on the :data:`INTERNAL_LOG` logger, and records a parse error on the flow so the
user sees that this flow was not fully understood. The test suite attaches a handler to that
logger and fails any test during which it received a record (tests/conftest.py).

The guard wraps every op the recorder applies (tens per streamed flow), so it is a small class
rather than a ``@contextmanager`` generator, which costs several times as much to enter and leave.
"""

from __future__ import annotations

import logging
from types import TracebackType

from flowbook.model import LLMFlow

#: Name of the logger that receives every internal error, with its traceback.
INTERNAL_LOG = "flowbook.capture.internal"

log = logging.getLogger(INTERNAL_LOG)


class safecall:  # lower case: used like the function it replaced, ``with safecall(...)``
    """Run the ``with`` body; an exception is logged and, when a flow is given, recorded on it
    as ``"<what>: <ExceptionType>: <message>"`` in ``metadata.parse_errors``."""

    __slots__ = ("flow", "what")

    def __init__(self, flow: LLMFlow | None, what: str) -> None:
        self.flow = flow
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False  # nothing raised, or KeyboardInterrupt/SystemExit: let it through
        flow = self.flow
        flow_id = flow.id if flow is not None else "-"
        log.error("flowbook: %s failed (flow %s)", self.what, flow_id, exc_info=exc)
        if flow is not None:
            flow.metadata.parse_errors.append(f"{self.what}: {type(exc).__name__}: {exc}"[:500])
        return True
