"""What every export does to a flow before writing it: mask secrets, drop bodies on request."""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

from flowbook.model import LLMFlow
from flowbook.redact import RedactionRules


@dataclass
class ExportOptions:
    """The options ``fb.export`` passes to every format."""

    include_request_body: bool = True
    include_response_body: bool = True
    redact_sensitive: bool = True
    rules: RedactionRules | None = None

    def __post_init__(self) -> None:
        if not self.redact_sensitive:
            warnings.warn(
                "redact_sensitive=False: API keys, tokens and cookies left in the flows are "
                "exported as they are; share this export only where secrets may go",
                UserWarning,
                stacklevel=4,
            )

    def redaction(self) -> RedactionRules:
        if self.rules is None:
            from flowbook.redaction import current

            try:
                self.rules = current()
            except Exception:  # no data dir config available: the defaults still apply
                self.rules = RedactionRules()
        return self.rules


def prepare(flow: LLMFlow, opts: ExportOptions) -> LLMFlow:
    """A copy of ``flow`` ready to export (the stored flow is never changed)."""
    from flowbook.redact import redact_flow

    f = redact_flow(flow, opts.redaction()) if opts.redact_sensitive else copy.deepcopy(flow)
    if opts.redact_sensitive and f.metadata.user_agent:
        f.metadata.user_agent = opts.redaction().mask_text(f.metadata.user_agent)
    if not opts.include_request_body:
        req = f.request
        req.body, req.messages, req.system, req.tools = None, [], None, []
        f.metadata.original_request = None
    if not opts.include_response_body and f.response is not None:
        resp = f.response
        resp.body, resp.text, resp.thinking, resp.refusal = None, "", "", None
        resp.tool_calls, resp.events = [], []
        f.metadata.original_response = None
    return f
