"""Getting flows out of flowbook and back in: ``fb.export`` (HAR, Markdown, JSON, JSONL, CSV,
Parquet, mitmproxy flow files), ``fb.load`` (HAR, mitmproxy flow files, flowbook JSONL) and
``fb.generate_code`` (curl, Python, TypeScript, Go, Rust).

Every module here reaches the store only through :mod:`flowbook.export.source`.
"""

import sys
import types
from typing import Any


class _ExportModule(types.ModuleType):
    """``fb.export(...)`` must work even after ``flowbook.export`` (this package) has been
    imported, which binds the package over the package-level lazy name ``export``; so the
    package itself is callable and forwards to :func:`flowbook.api.export`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from flowbook.api import export

        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _ExportModule
