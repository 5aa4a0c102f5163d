"""A progress bar for long exports: an ipywidgets bar in a notebook, one line on a terminal.

Small exports show nothing (a bar that flashes for 50 ms is noise); the bar appears once an
export has more than ``THRESHOLD`` flows.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

THRESHOLD = 200


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ip = shell.get_ipython()
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


class Progress:
    """``with Progress(total, "HAR") as p: p.update(1)``; picks its own display."""

    def __init__(self, total: int, label: str, *, stream: TextIO | None = None,
                 enabled: bool | None = None) -> None:  # fmt: skip
        self.total = total
        self.label = label
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._widget: Any = None
        self._last = 0.0
        self.enabled = total > THRESHOLD if enabled is None else enabled

    def __enter__(self) -> Progress:
        if not self.enabled:
            return self
        if _in_notebook():
            try:
                import ipywidgets as widgets
                from IPython.display import display

                self._widget = widgets.IntProgress(
                    value=0, min=0, max=max(self.total, 1), description=self.label
                )
                display(self._widget)
            except ImportError:
                self._widget = None
        return self

    def update(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        if self._widget is not None:
            self._widget.value = self.done
            return
        now = time.monotonic()
        if now - self._last >= 0.2 or self.done >= self.total:
            self._last = now
            pct = 100 * self.done // max(self.total, 1)
            self._stream.write(f"\r{self.label}: {self.done}/{self.total} flows ({pct}%)")
            self._stream.flush()

    def __exit__(self, *exc: object) -> None:
        if not self.enabled:
            return
        if self._widget is not None:
            self._widget.bar_style = "success" if exc[0] is None else "danger"
            self._widget.description = f"{self.label} ✓" if exc[0] is None else self.label
        else:
            self._stream.write(f"\r{self.label}: {self.done}/{self.total} flows, done\n")
            self._stream.flush()
