"""anywidget views of flowbook: Python classes here, front-end bundles in ``flowbook/static``
(built from ``widgets/`` by esbuild; see widgets/build.mjs)."""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).resolve().parent.parent / "static"


def static_file(name: str) -> Path:
    """A built bundle; a clear error when the front end was never built."""
    path = STATIC / name
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: build the widgets with `npm --prefix widgets ci && "
            "npm --prefix widgets run build` (or `pip install -e .`, which runs it)"
        )
    return path


__all__ = ["STATIC", "static_file"]
