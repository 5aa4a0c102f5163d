"""Analysis over flows: token estimates, prices, statistics (and diff, sessions, correlation).

Names are imported lazily: the capture side uses ``tokens`` and ``pricing`` and must not pull in
pandas (which ``stats`` needs) just by importing this package.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "count_tokens": "flowbook.analysis.tokens",
    "estimate_usage": "flowbook.analysis.tokens",
    "cost_usd": "flowbook.analysis.pricing",
    "flow_cost": "flowbook.analysis.pricing",
    "kiro_credits": "flowbook.analysis.pricing",
    "stats": "flowbook.analysis.stats",
    "STAT_COLUMNS": "flowbook.analysis.stats",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'flowbook.analysis' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
