"""Capture: the mitmproxy addon, the proxy thread, the recorder and the Monitor.

Read in the order a flow travels:

* ``addon`` – mitmproxy hooks on the proxy's loop: detect the call (``detection``), tee streamed
  bodies, queue one op per event (``ops``) for the recorder; nothing slow runs here.
* ``recorder`` – the worker thread that applies the ops in order and writes flows to a
  ``sink.FlowSink`` (the store); every step runs under ``safecall``, so a parser bug is logged
  and recorded on the flow instead of breaking traffic.
* ``record`` (building a flow and parsing its request, ``request_check`` saying what is wrong
  with a malformed one), ``assembly`` (folding the response in), ``outcome`` (the final state,
  usage, cost, masking).
* ``proxy`` (mitmproxy in a thread), ``monitor`` (what ``fb.start`` returns), ``intercept_host``
  (what interception reports, applied through the recorder).

Nothing here imports pandas (tests/unit/test_addon.py checks it in a fresh interpreter).
"""
