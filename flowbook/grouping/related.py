"""``fb.related(flow_id)``: the flows linked to one flow, and how.

Relations (``relation`` column), all read from the facts the tracker recorded at ``put``:

* ``thread``: the other turns of the same conversation (``detail`` says parent, child or turn);
* ``tool_chain``: the flow whose tool call this one answers with a tool result, and the flows
  answering this one's tool calls (matched by call id, or by tool name within the thread for
  providers without ids);
* ``retry``: the failed call this one repeats, or the repeat of this failed call;
* ``same_prompt``: the same system prompt, messages and tools sent to a different model (a pair
  for ``fb.diff``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from flowbook.grouping.tracker import SessionTracker
    from flowbook.store.facade import Store

RELATED_COLUMNS = ["relation", "id", "detail", "timestamp", "model", "status_code", "turn"]
_ORDER = {"thread": 0, "tool_chain": 1, "retry": 2, "same_prompt": 3}


def related(store: Store, tracker: SessionTracker, flow_id: str) -> pd.DataFrame:
    """One row per (related flow, relation), thread turns in order."""
    db = tracker.db
    me = db.one("SELECT * FROM facts WHERE flow_id=?", (flow_id,))
    if me is None:
        if store.get(flow_id) is None:
            raise KeyError(f"no flow with id {flow_id!r} (fb.flows() lists the ids)")
        raise KeyError(
            f"flow {flow_id!r} has no correlation facts (it was stored before "
            "flowbook tracked sessions)"
        )
    rows: list[tuple[str, str, str]] = []
    if me["thread_id"]:
        for r in db.rows(
            "SELECT flow_id, turn, parent_id FROM facts WHERE thread_id=? AND flow_id<>? "
            "ORDER BY turn, created",
            (me["thread_id"], flow_id),
        ):
            if r["flow_id"] == me["parent_id"]:
                what = f"parent (turn {r['turn']})"
            elif r["parent_id"] == flow_id:
                what = f"child (turn {r['turn']})"
            else:
                what = f"turn {r['turn']}"
            rows.append(("thread", r["flow_id"], what))
    for r in db.rows(
        "SELECT answers, call_id, name, matched_by FROM chains WHERE flow_id=?", (flow_id,)
    ):
        call = r["call_id"] or r["name"]
        rows.append(
            (
                "tool_chain",
                r["answers"],
                f"this flow answers its tool call {call} ({r['name']}; by {r['matched_by']})",
            )
        )
    for r in db.rows(
        "SELECT flow_id, call_id, name, matched_by FROM chains WHERE answers=?", (flow_id,)
    ):
        call = r["call_id"] or r["name"]
        rows.append(
            (
                "tool_chain",
                r["flow_id"],
                f"answers this flow's tool call {call} ({r['name']}; by {r['matched_by']})",
            )
        )
    if me["retry_of"]:
        rows.append(("retry", me["retry_of"], "this flow retries it (it failed)"))
    for r in db.rows("SELECT flow_id FROM facts WHERE retry_of=?", (flow_id,)):
        rows.append(("retry", r["flow_id"], "retries this flow"))
    if me["prompt_hash"]:
        for r in db.rows(
            "SELECT flow_id, model FROM facts WHERE prompt_hash=? AND flow_id<>? "
            "AND COALESCE(model, '') <> COALESCE(?, '') ORDER BY created",
            (me["prompt_hash"], flow_id, me["model"]),
        ):
            rows.append(("same_prompt", r["flow_id"], f"same prompt sent to {r['model']}"))
    out = pd.DataFrame(rows, columns=["relation", "id", "detail"])
    if out.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in RELATED_COLUMNS})
    frame = store.frame(include_history=True)
    info = frame[["id", "timestamp", "model", "status_code", "turn"]]
    out = out.merge(info, on="id", how="left")
    out["_o"] = out["relation"].map(_ORDER)
    out = out.sort_values(["_o", "timestamp"], kind="stable").drop(columns=["_o"])
    return out.reset_index(drop=True)[RELATED_COLUMNS]
