"""Provider wire formats: detection, request parsing, response reconstruction."""
