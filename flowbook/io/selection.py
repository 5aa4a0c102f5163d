"""What ``fb.export(selection=…)`` accepts, resolved to flow ids (and their summary rows)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from flowbook.io import source
from flowbook.model import LLMFlow


@dataclass
class Selection:
    """Ids in export order, the matching summary rows, and flows given directly (if any)."""

    ids: list[str]
    frame: pd.DataFrame
    given: dict[str, LLMFlow]

    def flows(self) -> Iterable[LLMFlow]:
        """Full flows, one at a time, in ``ids`` order."""
        for flow_id in self.ids:
            flow = self.given.get(flow_id) or source.get_flow(flow_id)
            if flow is not None:
                yield flow

    def __len__(self) -> int:
        return len(self.ids)


def resolve(selection: Any, *, include_history: bool = False) -> Selection:
    """None (every flow; with ``include_history`` the stored history too), a filter string, a
    list of ids (or of LLMFlows), one id, one LLMFlow, or a DataFrame from ``fb.flows()``."""
    if selection is None or (isinstance(selection, str) and not selection.strip()):
        df = source.query(None, include_history=include_history)
        return Selection(list(df["id"]), df, {})
    if isinstance(selection, LLMFlow):
        selection = [selection]
    if isinstance(selection, str):
        if _looks_like_id(selection):
            return _from_ids([selection], include_history)
        df = source.query(selection, include_history=include_history)
        return Selection(list(df["id"]), df, {})
    if isinstance(selection, pd.DataFrame):
        if "id" not in selection.columns:
            raise ValueError("a DataFrame selection needs an 'id' column (use fb.flows(...))")
        return _from_ids([str(i) for i in selection["id"]], include_history, frame=selection)
    if isinstance(selection, pd.Series):
        return _from_ids([str(i) for i in selection], include_history)
    if isinstance(selection, Iterable):
        items = list(selection)
        given = {f.id: f for f in items if isinstance(f, LLMFlow)}
        ids = [f.id if isinstance(f, LLMFlow) else str(f) for f in items]
        sel = _from_ids(ids, include_history, given=given)
        return sel
    raise TypeError(
        f"selection must be None, a filter string, a list of flow ids or a DataFrame from "
        f"fb.flows(), not {type(selection).__name__}"
    )


def _looks_like_id(text: str) -> bool:
    # Flow ids are 16 hex digits; a filter expression never is.
    return len(text) == 16 and all(c in "0123456789abcdef" for c in text)


def _from_ids(
    ids: list[str],
    include_history: bool,
    *,
    frame: pd.DataFrame | None = None,
    given: dict[str, LLMFlow] | None = None,
) -> Selection:
    given = given or {}
    seen: set[str] = set()
    unique = [i for i in ids if not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]
    if given and len(given) == len(unique):  # flows handed over directly: no store needed
        frame = source.summary_frame([given[i] for i in unique]) if frame is None else frame
        return Selection(unique, frame, given)
    known = source.query(None, include_history=True)
    stored = set(known["id"])
    missing = [i for i in unique if i not in given and i not in stored]
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise KeyError(f"no flow with id {shown} (fb.flows() lists the ids)")
    if frame is None:
        frame = known[known["id"].isin(unique)]
        frame = frame.set_index("id").reindex(unique).reset_index()
    return Selection(unique, frame, given)
