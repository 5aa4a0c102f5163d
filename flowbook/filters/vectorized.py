"""Vectorised evaluator: a boolean mask over the summary DataFrame.

Speed comes from three things: numeric and flag terms are numpy comparisons; a text term is
matched once per *distinct* value (``pd.factorize``) and the answers are spread back by code,
which also means it calls the very matcher the per-flow evaluator calls; and inside an AND the
cheap terms run first and later terms only look at the rows still alive (likewise an OR only
looks at rows no earlier branch has matched). Full-flow terms go to the ``FlowSource`` last, for
the surviving candidates only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flowbook.filters.ast import And, Const, FlagTerm, FlowTerm, Node, Not, NumTerm, Or, TextTerm
from flowbook.filters.errors import FilterError
from flowbook.filters.fields import FLAGS, TEXT_KEYS, frame_number
from flowbook.filters.matchers import TextMatcher
from flowbook.filters.per_flow import flow_term_matches, match_text_value
from flowbook.filters.source import FlowSource

# Below this share of surviving rows a term is evaluated on the subset, not the whole column.
_SUBSET_SHARE = 0.5


def cost(node: Node) -> int:
    """Rough evaluation cost, used to order the children of AND/OR."""
    if isinstance(node, Const):
        return 0
    if isinstance(node, NumTerm | FlagTerm):
        return 1
    if isinstance(node, TextTerm):
        return 2
    if isinstance(node, FlowTerm):
        return 10
    if isinstance(node, Not):
        return cost(node.child)
    if isinstance(node, And | Or):
        return max((cost(c) for c in node.children), default=0)
    return 5


def mask(node: Node, df: pd.DataFrame, source: FlowSource | None) -> pd.Series:
    """Evaluate ``node`` over every row of ``df``; a bool Series aligned with ``df.index``."""
    evaluator = _Evaluator(df, source)
    result = evaluator.eval(node, np.ones(len(df), dtype=bool))
    return pd.Series(result, index=df.index, dtype=bool, name="match")


class _Evaluator:
    """Each ``eval(node, within)`` is exact on rows where ``within`` is True; other rows may
    hold anything (the caller ANDs them away)."""

    def __init__(self, df: pd.DataFrame, source: FlowSource | None) -> None:
        self.df = df
        self.n = len(df)
        self.source = source

    def eval(self, node: Node, within: np.ndarray) -> np.ndarray:
        if isinstance(node, And):
            alive = within.copy()
            for child in sorted(node.children, key=cost):
                if not alive.any():
                    break
                alive &= self.eval(child, alive)
            return alive
        if isinstance(node, Or):
            hit = np.zeros(self.n, dtype=bool)
            remaining = within.copy()
            for child in sorted(node.children, key=cost):
                if not remaining.any():
                    break
                r = self.eval(child, remaining)
                hit |= remaining & r
                remaining &= ~r
            return hit
        if isinstance(node, Not):
            return ~self.eval(node.child, within)
        if isinstance(node, Const):
            return np.full(self.n, node.value, dtype=bool)
        if isinstance(node, NumTerm):
            return self._numbers(node)
        if isinstance(node, FlagTerm):
            return np.asarray(FLAGS[node.name].frame(self.df), dtype=bool)
        if isinstance(node, TextTerm):
            return self._text(node.key, node.matcher, within)
        if isinstance(node, FlowTerm):
            return self._flow_term(node, within)
        raise TypeError(f"unknown filter node {node!r}")

    def _numbers(self, node: NumTerm) -> np.ndarray:
        values = frame_number(self.df, node.key)
        out = ~np.isnan(values)  # NaN never matches, whatever the operator (also !=)
        for op, x in node.condition.checks:
            if op == ">":
                out &= values > x
            elif op == ">=":
                out &= values >= x
            elif op == "<":
                out &= values < x
            elif op == "<=":
                out &= values <= x
            elif op == "=":
                out &= values == x
            else:
                out &= values != x
        return out

    def _rows(self, within: np.ndarray) -> np.ndarray | None:
        """Row positions to look at, or None for "all rows"."""
        if self.n == 0 or within.sum() >= _SUBSET_SHARE * self.n:
            return None
        return np.flatnonzero(within)

    def _text(self, key: str, matcher: TextMatcher, within: np.ndarray) -> np.ndarray:
        rows = self._rows(within)
        if key == "url":
            codes, values = self._url_codes(rows)
        else:
            column = self.df[TEXT_KEYS[key]]
            if rows is not None:
                column = column.iloc[rows]
            codes, uniques = pd.factorize(column, use_na_sentinel=True)
            values = list(uniques)
        # One matcher call per distinct value; NA (code -1) never matches.
        answers = np.fromiter(
            (match_text_value(key, matcher, v) for v in values), dtype=bool, count=len(values)
        )
        part = np.zeros(len(codes), dtype=bool)
        valid = codes >= 0
        part[valid] = answers[codes[valid]]
        if rows is None:
            return part
        out = np.zeros(self.n, dtype=bool)
        out[rows] = part
        return out

    def _url_codes(self, rows: np.ndarray | None) -> tuple[np.ndarray, list[str]]:
        """Codes and distinct values of host + path (NA counts as "" as in row_text)."""
        host, path = self.df["host"], self.df["path"]
        if rows is not None:
            host, path = host.iloc[rows], path.iloc[rows]
        hc, hu = pd.factorize(host, use_na_sentinel=True)
        pc, pu = pd.factorize(path, use_na_sentinel=True)
        hosts, paths = [*map(str, hu), ""], [*map(str, pu), ""]
        hc = np.where(hc < 0, len(hosts) - 1, hc).astype(np.int64)
        pc = np.where(pc < 0, len(paths) - 1, pc).astype(np.int64)
        codes, pairs = pd.factorize(hc * len(paths) + pc)
        values = [hosts[int(p) // len(paths)] + paths[int(p) % len(paths)] for p in pairs]
        return np.asarray(codes), values

    def _flow_term(self, term: FlowTerm, within: np.ndarray) -> np.ndarray:
        if self.source is None:
            raise FilterError(
                f"{term} needs the full flows (bodies, headers or message text), "
                "which this DataFrame alone does not have",
                term.pos,
                "filter through fb.flows(...), or pass source= (e.g. MemoryFlowSource) to mask()",
            )
        candidates = within.copy()
        if term.kind == "tool" and "tool_calls" in self.df:
            # Only flows whose response called a tool can match tool:NAME.
            candidates &= self.df["tool_calls"].to_numpy(dtype="float64", na_value=1.0) != 0
        if not candidates.any():
            return candidates
        ids = self.df["id"]
        answered = self.source.ids_matching(term)
        if answered is None:
            wanted = ids.iloc[np.flatnonzero(candidates)].tolist()
            answered = {f.id for f in self.source.get_flows(wanted) if flow_term_matches(term, f)}
        return candidates & ids.isin(answered).to_numpy(dtype=bool, na_value=False)
