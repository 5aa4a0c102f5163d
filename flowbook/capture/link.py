"""The link between the proxy process and the capture process: length-prefixed pickled batches.

Both ends are ours (a ``socket.socketpair`` the capture process makes and hands to the proxy
process it starts), so pickle is safe here: nothing else can write to the socket. Each frame is
one batch, a list of messages (plain tuples whose first item names the message), so a busy proxy
pays one ``pickle.dumps`` and one ``sendall`` per turn of its event loop, not per chunk.
"""

from __future__ import annotations

import pickle
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

_LEN = struct.Struct("!I")
#: Socket buffers big enough that a burst of streamed chunks never blocks the proxy's loop on
#: a capture process that is a few milliseconds behind.
BUFFER_BYTES = 8 << 20


def tune(sock: socket.socket) -> None:
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, BUFFER_BYTES)
        except OSError:
            pass  # the kernel's limit applies; only throughput suffers


class Link:
    """One end of the link: ``send`` batches of messages (thread-safe), iterate ``batches()``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._send_lock = threading.Lock()
        tune(sock)

    def send(self, messages: list[tuple[Any, ...]]) -> None:
        """Send one batch. Raises OSError when the other end is gone."""
        data = pickle.dumps(messages, protocol=pickle.HIGHEST_PROTOCOL)
        with self._send_lock:
            self.sock.sendall(_LEN.pack(len(data)) + data)

    def batches(self) -> Iterator[list[tuple[Any, ...]]]:
        """Every batch the other end sends, until it closes the link."""
        buf = bytearray()
        recv = self.sock.recv_into
        chunk = memoryview(bytearray(1 << 20))
        while True:
            while len(buf) >= 4:
                (n,) = _LEN.unpack_from(buf)
                if len(buf) < 4 + n:
                    break
                batch = pickle.loads(bytes(buf[4 : 4 + n]))
                del buf[: 4 + n]
                yield batch
            try:
                got = recv(chunk)
            except OSError:
                return
            if not got:
                return
            buf += chunk[:got]

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
