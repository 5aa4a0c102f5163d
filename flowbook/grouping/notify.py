"""Alert notifications in the notebook: shown once, on the kernel thread, after the cell runs.

The tracker decides on the recorder thread that a flow is a new alert (``notification_enabled``
on, not notified before) and hands the text here. Output from a background thread would land in
whichever cell happens to be running, so the text waits in a queue; an IPython
``post_execute`` hook shows what is queued at the end of the next cell (and ``pending()`` gives
it to scripts). Every alert is also logged on the ``flowbook.alerts`` logger.
"""

from __future__ import annotations

import html
import logging
import threading
from typing import Any

log = logging.getLogger("flowbook.alerts")


class Notifier:
    """A queue of alert texts and, inside IPython, the hook that displays them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[str] = []
        self._shell: Any = None

    def push(self, text: str) -> None:
        """Queue one alert (called from the recorder thread)."""
        log.warning(text)
        with self._lock:
            self._queue.append(text)

    def pending(self) -> list[str]:
        """Take the queued alerts (each is returned once)."""
        with self._lock:
            out, self._queue = self._queue, []
        return out

    def install(self) -> bool:
        """Show queued alerts after each cell of the running IPython kernel (if any)."""
        import sys

        ipy = sys.modules.get("IPython")
        shell = ipy.get_ipython() if ipy is not None else None
        if shell is None or self._shell is shell:
            return False
        shell.events.register("post_execute", self._show)
        self._shell = shell
        return True

    def uninstall(self) -> None:
        """Remove the IPython hook."""
        if self._shell is not None:
            try:
                self._shell.events.unregister("post_execute", self._show)
            except ValueError:
                pass
            self._shell = None

    def _show(self) -> None:
        texts = self.pending()
        if not texts:
            return
        from IPython.display import HTML, display

        items = "".join(f"<li>{html.escape(t)}</li>" for t in texts)
        display(
            HTML(
                '<div style="border-left:4px solid #d97706;padding:4px 10px;margin:4px 0">'
                f"<b>⚠ flowbook: {len(texts)} new alert(s)</b><ul>{items}</ul></div>"
            )
        )
