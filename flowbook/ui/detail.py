"""The flow detail widget (``fb.show(flow_id)``, ``%flowmon show ID``).

The view gets one trait, ``payload`` (:func:`~flowbook.ui.detail_payload.detail_payload`), and
rebuilds itself from it; a flow still streaming is re-sent when the store says it changed (the
store's change signal is already coalesced to a few per second). The Notes tab edits annotations
with ``{"type": "annotate", ...}`` custom messages; each gets a ``reply`` with ``ok`` and, when
refused (a tag with a comma), the error to show. Where widgets do not render (nbconvert, GitHub)
the output carries the flow's static HTML summary instead.
"""

from __future__ import annotations

import threading
from typing import Any

import anywidget
import traitlets

from flowbook.model import FlowAnnotations, LLMFlow
from flowbook.ui import static_file
from flowbook.ui.detail_payload import detail_payload

DEFAULT_HEIGHT = 620

# --- store access -------------------------------------------------------------------------------
# Reads and change notifications go through the UI's store adapter (flowbook/ui/source.py).
# Writing notes needs "exactly these tags", which the adapter does not offer yet: that one
# function lives here (the table's split pane calls it too) until the store façade has
# ``annotate(..., remove_tags=)``.


def _source() -> Any:
    from flowbook.ui.source import StoreSource

    return StoreSource()


def _store_annotate(flow_id: str, bookmarked: bool, tags: list[str], comment: str) -> None:
    """Set a flow's bookmark, tags (exactly these) and comment, persisted."""
    _source().annotate(flow_id, bookmarked=bookmarked, tags=tags, comment=comment)


def _clean_tags(raw: Any) -> list[str]:
    if not isinstance(raw, list):
        raise ValueError("tags must be a list of strings")
    tags: list[str] = []
    for t in raw:
        if not isinstance(t, str) or not t.strip() or "," in t:
            raise ValueError(f"a tag is a non-empty word without commas, got {t!r}")
        if t.strip() not in tags:
            tags.append(t.strip())
    return tags


class FlowDetail(anywidget.AnyWidget):
    """One flow: Overview, Conversation, Response, Stream, Raw and Notes tabs."""

    _esm = static_file("detail.js")
    _css = static_file("detail.css")

    payload = traitlets.Dict().tag(sync=True)
    height = traitlets.Int(DEFAULT_HEIGHT).tag(sync=True)

    def __init__(self, flow: LLMFlow | str, *, height: int = DEFAULT_HEIGHT, **kwargs: Any):
        super().__init__(height=height, **kwargs)
        self._static = isinstance(flow, LLMFlow)
        if isinstance(flow, LLMFlow):
            self._flow: LLMFlow = flow
        else:
            found = _source().get_flow(flow)
            if found is None:
                raise KeyError(f"no flow with id {flow!r} (fb.flows() lists the ids)")
            self._flow = found
        self.flow_id = self._flow.id
        self.payload = detail_payload(self._flow)
        self.on_msg(self._on_custom)
        self._unwatch: Any = None
        if not self._static and not self._flow.state.is_final:
            # Held weakly by the adapter: a discarded widget stops listening by itself.
            self._unwatch = _source().watch(self, "_on_store_change")

    @property
    def flow(self) -> LLMFlow:
        """The flow shown (as of the last refresh)."""
        return self._flow

    def refresh(self) -> None:
        """Re-read the flow from the store and re-send the payload."""
        if not self._static:
            found = _source().get_flow(self.flow_id)
            if found is not None:
                self._flow = found
        self.payload = detail_payload(self._flow)

    def _on_store_change(
        self, added: frozenset[str], updated: frozenset[str], _removed: frozenset[str]
    ) -> None:
        if self.flow_id not in added and self.flow_id not in updated:
            return
        self._refresh_live()

    def _refresh_live(self, attempt: int = 0) -> None:
        try:
            self.refresh()
        except RuntimeError:
            # The recorder may grow a live flow's dicts while we read them ("changed size during
            # iteration"). Try again shortly: when this was the flow's last change, no further
            # notice would come.
            if attempt < 20:
                timer = threading.Timer(0.1, self._refresh_live, args=(attempt + 1,))
                timer.daemon = True
                timer.start()
            return
        if self._flow.state.is_final and self._unwatch is not None:
            self._unwatch()
            self._unwatch = None

    def annotate(self, *, bookmarked: bool, tags: list[str], comment: str) -> None:
        """Set the flow's notes (what the Notes tab's Save does)."""
        tags = _clean_tags(tags)
        if self._static:
            self._flow.annotations = FlowAnnotations(
                bookmarked=bool(bookmarked),
                tags=tags,
                comment=comment or None,
                marker=self._flow.annotations.marker,
            )
        else:
            _store_annotate(self.flow_id, bool(bookmarked), tags, str(comment or ""))
        self.refresh()

    def code(self, format: str, *, sdk: bool = False) -> str:
        """The flow's request as code (what the Code tab shows); needs ``fb.generate_code``."""
        from flowbook.ui.detail_payload import code_generator

        generate = code_generator()
        if generate is None:
            raise RuntimeError("code generation is not available in this flowbook build")
        return str(generate(self._flow, format, include_comments=True, sdk=sdk))

    def _on_custom(self, _widget: Any, content: dict[str, Any], _buffers: list[Any]) -> None:
        if not isinstance(content, dict):
            return
        if content.get("type") == "code":
            try:
                code = self.code(str(content.get("format") or "curl"), sdk=bool(content.get("sdk")))
                answer: dict[str, Any] = {"ok": True, "code": code}
            except (KeyError, ValueError, RuntimeError) as exc:
                answer = {"ok": False, "error": str(exc)}
            self.send({"type": "reply", "req": content.get("req"), **answer})
            return
        if content.get("type") != "annotate":
            return
        try:
            self.annotate(
                bookmarked=bool(content.get("bookmarked")),
                tags=content.get("tags") or [],
                comment=content.get("comment") or "",
            )
            reply: dict[str, Any] = {"ok": True}
        except (KeyError, ValueError, OSError) as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            reply = {"ok": False, "error": str(msg)}
        self.send({"type": "reply", "req": content.get("req"), **reply})

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # Front ends without the widget manager (nbconvert, GitHub) fall back to text/html.
        from flowbook.ui.flow_repr import flow_html

        bundle: Any = super()._repr_mimebundle_(**kwargs)
        data, meta = bundle if isinstance(bundle, tuple) else (bundle, {})
        if isinstance(data, dict):
            data = {**data, "text/html": flow_html(self._flow)}
        return data, meta


def show(flow: LLMFlow | str, *, height: int = DEFAULT_HEIGHT) -> FlowDetail:
    """The detail widget for a flow id (or an LLMFlow): ``fb.show(flow_id)``."""
    return FlowDetail(flow, height=height)
