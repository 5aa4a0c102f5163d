"""flowbook benchmarks (DESIGN §10). Run all with ``python -m bench`` (or ``make bench``)."""
