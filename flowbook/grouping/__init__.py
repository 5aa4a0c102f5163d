"""Sessions and correlation: named and detected sessions of flows, threads, tool chains, retries.

``tracker`` places every stored flow (a hook at the store's ``put``) and keeps the facts in
``<data_dir>/sessions.sqlite`` (``db``); ``manage`` is ``fb.sessions``; ``related`` is
``fb.related``; ``exchange`` exports and loads a session file; ``report`` writes a session's
Markdown report; ``notify`` shows alert notifications in the notebook.
"""
