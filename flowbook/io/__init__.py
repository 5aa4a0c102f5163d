"""Getting flows out of flowbook and back in: ``fb.export`` (HAR, Markdown, JSON, JSONL, CSV,
Parquet, mitmproxy flow files), ``fb.load`` (HAR, mitmproxy flow files, flowbook JSONL) and
``fb.generate_code`` (curl, Python, TypeScript, Go, Rust).

Every module here reaches the store only through :mod:`flowbook.io.source`. (The package is not
called ``export``: a submodule named like the function ``fb.export`` would shadow it once imported.)
"""
