"""flowbook tests."""
