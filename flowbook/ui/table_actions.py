"""What the flow table's buttons and keys do in the kernel: open a flow's detail, bookmark it,
diff two selected flows. A mixin of :class:`flowbook.ui.table.FlowTable` (kept apart so the
widget module stays about data flow)."""

from __future__ import annotations

from typing import Any

from flowbook.model import LLMFlow


def fallback_payload(flow: LLMFlow) -> dict[str, Any]:
    """A minimal detail payload, used only when ``flowbook.ui.detail_payload`` is missing."""
    resp = flow.response
    return {
        "id": flow.id,
        "model": flow.model,
        "provider": flow.metadata.provider,
        "state": str(flow.state),
        "status_code": resp.status_code if resp else None,
        "response_text": resp.text if resp and resp.text else "",
        "latency_ms": flow.timestamps.latency_ms,
        "ttft_ms": flow.timestamps.ttft_ms,
    }


def detail_payload(flow: LLMFlow) -> dict[str, Any]:
    """The detail view's payload for a flow (the detail helper's, when present)."""
    try:
        from flowbook.ui.detail_payload import detail_payload as build
    except ImportError:
        return fallback_payload(flow)
    return build(flow)


def run_diff(a: LLMFlow, b: LLMFlow) -> Any:
    """``fb.diff(a, b)``: a FlowDiff (displayable as a widget)."""
    from flowbook import api

    fn = getattr(api, "diff", None)
    if fn is None:
        from flowbook.ui import diff as diff_module

        fn = getattr(diff_module, "diff", None)
    if fn is None:
        raise RuntimeError("flow diff is not available in this flowbook build")
    return fn(a, b)


class TableActions:
    """Kernel-side actions of the flow table (mixed into FlowTable)."""

    _source: Any
    selected: list[str]
    diff_output: Any
    last_diff: Any = None

    def _flow(self, flow_id: str) -> LLMFlow:
        flow = self._source.get_flow(str(flow_id))
        if flow is None:
            raise KeyError(f"flow {flow_id} is not in the store any more")
        return flow

    def handle_action(self, kind: str | None, content: dict[str, Any]) -> dict[str, Any]:
        """Run one browser action; returns what the reply carries. Raises with a message."""
        if kind == "open":
            return {"payload": detail_payload(self._flow(content.get("id", "")))}
        if kind == "bookmark":
            fid = str(content.get("id", ""))
            self._flow(fid)
            self._source.set_bookmark(fid, bool(content.get("on", True)))
            return {}
        if kind == "annotate":
            fid = str(content.get("id", ""))
            tags = [str(t).strip() for t in content.get("tags") or [] if str(t).strip()]
            self._source.annotate(fid, bookmarked=bool(content.get("bookmarked")), tags=tags,
                                  comment=str(content.get("comment") or ""))  # fmt: skip
            return {}
        if kind == "diff":
            ids = list(content.get("ids") or self.selected)
            self.show_diff(ids)
            return {}
        raise ValueError(f"unknown table action {kind!r}")

    def show_diff(self, ids: list[str] | None = None) -> Any:
        """Diff two selected flows and show the result below the table."""
        ids = list(ids if ids is not None else self.selected)
        if len(ids) != 2:
            raise ValueError(f"select exactly two flows to diff ({len(ids)} selected)")
        result = run_diff(self._flow(ids[0]), self._flow(ids[1]))
        self.last_diff = result
        out = self.diff_output
        out.clear_output()
        with out:
            from IPython.display import display

            display(result)
        return result


__all__ = ["TableActions", "detail_payload", "fallback_payload", "run_diff"]
