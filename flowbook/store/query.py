"""Sorting and paging the summary frame, with the argument checks ``fb.flows()`` promises.

Filtering is the filters' job (``flowbook.filters``); this module only validates the other query
arguments (saying what is allowed when one is wrong) and cuts the page.
"""

from __future__ import annotations

import difflib

import pandas as pd

from flowbook.schema import COLUMNS

SORT_ORDERS = ("asc", "desc")


def check_query_args(sort_by: str, sort_order: str, page: int | None, page_size: int) -> None:
    """Raise ValueError naming the bad argument and what it may be."""
    if sort_order not in SORT_ORDERS:
        raise ValueError(f"sort_order must be 'asc' or 'desc', got {sort_order!r}")
    if sort_by not in COLUMNS:
        close = difflib.get_close_matches(sort_by, list(COLUMNS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"cannot sort by {sort_by!r}: not a column.{hint} Columns: {', '.join(COLUMNS)}"
        )
    if page is not None and (not isinstance(page, int) or page < 1):
        raise ValueError(f"page counts from 1, got {page!r}")
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, got {page_size!r}")


def sort_and_page(
    df: pd.DataFrame, *, sort_by: str, sort_order: str, page: int | None, page_size: int
) -> pd.DataFrame:
    """Sorted (stable, missing values last), one page cut (all rows when ``page`` is None), a
    fresh index, and ``attrs["total"]``: the number of rows before paging."""
    df = df.sort_values(sort_by, ascending=sort_order == "asc", kind="stable", na_position="last")
    total = len(df)
    if page is not None:
        start = (page - 1) * page_size
        df = df.iloc[start : start + page_size]
    df = df.reset_index(drop=True)
    df.attrs["total"] = total
    return df
