"""The one exception the filter language raises, pointing at where an expression went wrong."""

from __future__ import annotations


class FilterError(ValueError):
    """A filter expression that cannot be parsed or evaluated.

    ``position`` is the 0-based column in ``expression`` where the problem was found; ``hint``
    says what to write instead. ``str(error)`` shows the expression with a caret under the
    position, which is what the table widget and the ``%flowmon`` magic print inline.
    """

    def __init__(
        self,
        message: str,
        position: int = 0,
        hint: str | None = None,
        expression: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.position = max(0, position)
        self.hint = hint
        self.expression = expression

    def with_expression(self, expression: str) -> FilterError:
        """Attach the full expression (the parser knows it; low-level helpers may not)."""
        if self.expression is None:
            self.expression = expression
        return self

    def __str__(self) -> str:
        lines = [f"{self.message} (at column {self.position + 1})"]
        if self.expression is not None:
            # Tabs and newlines would shift the caret; show them as spaces.
            shown = "".join(" " if c in "\t\r\n" else c for c in self.expression)
            lines.append(f"  {shown}")
            lines.append("  " + " " * min(self.position, len(shown)) + "^")
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)

    def __reduce__(self) -> tuple[type[FilterError], tuple[str, int, str | None, str | None]]:
        # Keep the fields when the error crosses a process or pickling boundary.
        return (FilterError, (self.message, self.position, self.hint, self.expression))
