"""``Session``: a handle on one named session (what ``fb.sessions.new`` returns)."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from flowbook.grouping.manage import Sessions


class Session:
    """A handle on one session (``fb.sessions.new`` returns it; ``fb.sessions[name]`` too).

    ``with session:`` puts the flows captured inside the block into it, like ``fb.session``.
    """

    def __init__(self, sessions: Sessions, name: str) -> None:
        self._sessions = sessions
        self.name = name
        self._tokens: builtins.list[str] = []

    def flows(self) -> pd.DataFrame:
        """The session's summary rows, oldest first."""
        return self._sessions.flows(self.name)

    def flow_ids(self) -> builtins.list[str]:
        """The session's flow ids, oldest first."""
        return self._sessions.flow_ids(self.name)

    def add(self, flows: str | Iterable[str] | pd.DataFrame) -> int:
        """Add flows (ids or a DataFrame); returns how many were new members."""
        return self._sessions.add(self.name, flows)

    def remove(self, flows: str | Iterable[str] | pd.DataFrame) -> int:
        """Take flows out; returns how many were members."""
        return self._sessions.remove(self.name, flows)

    def report(self, *, slow_n: int = 5) -> Any:
        """The Markdown report (``fb.sessions.report``)."""
        return self._sessions.report(self.name, slow_n=slow_n)

    def export(self, path: str | Path) -> Path:
        """Write the shareable session file (``fb.sessions.export``)."""
        return self._sessions.export(self.name, path)

    def __enter__(self) -> Session:
        self._tokens.append(self._sessions.open(self.name))
        return self

    def __exit__(self, *exc: object) -> None:
        self._sessions.close(self._tokens.pop())

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<Session {self.name!r}: {len(self.flow_ids())} flows>"
