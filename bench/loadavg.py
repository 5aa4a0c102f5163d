"""Helpers the proxy benchmarks share: the machine's load, and a baseline flowbook's environment."""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent


def baseline_env(baseline: str) -> dict[str, str]:
    """The environment of a proxy that imports ``flowbook`` from ``baseline`` (a directory
    holding a ``flowbook`` package, e.g. ``git archive main flowbook | tar -x -C DIR``) and
    ``bench`` from this checkout. Start it with ``cwd=baseline``: ``-m`` and ``-c`` put the
    working directory ahead of PYTHONPATH."""
    pkg = Path(baseline) / "flowbook" / "__init__.py"
    if not pkg.is_file():
        raise ValueError(f"--baseline {baseline}: no flowbook package there ({pkg} is missing)")
    path = os.pathsep.join([str(Path(baseline).resolve()), str(HERE.parent)])
    return {**os.environ, "PYTHONPATH": path}


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded (other work on the machine skews timings)."""
    return [round(x, 2) for x in os.getloadavg()]
