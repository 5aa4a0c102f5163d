"""Capture: the mitmproxy addon, the proxy thread, the recorder and the Monitor."""
