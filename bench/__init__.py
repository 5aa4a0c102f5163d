"""flowbook benchmarks (docs/architecture.md, "Performance").

Run all with ``python -m bench`` (or ``make bench``).
"""
