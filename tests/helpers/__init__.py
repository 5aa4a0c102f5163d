"""Shared test helpers (fixtures loading, chunked feeding)."""
