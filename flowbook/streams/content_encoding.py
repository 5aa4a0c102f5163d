"""Incremental content decoding for streamed bodies (gzip, deflate, br, zstd).

With ``flow.response.stream`` set, mitmproxy hands over the raw, still-compressed bytes
(docs/wire-formats.md §0.2). Decoding here lets the framing decoder see plain bytes while the
client still receives the original ones.
"""

from __future__ import annotations

import zlib
from typing import Protocol


class _Decomp(Protocol):
    def decompress(self, data: bytes) -> bytes: ...


class ContentDecodeError(ValueError):
    pass


class ContentDecoder:
    """Decodes a chain of content-encodings (applied right to left) chunk by chunk."""

    def __init__(self, content_encoding: str | None) -> None:
        names = [e.strip().lower() for e in (content_encoding or "").split(",") if e.strip()]
        self.encodings = [n for n in names if n != "identity"]
        self._chain: list[_Decomp] = [self._make(n) for n in reversed(self.encodings)]
        self._fed = False

    @staticmethod
    def _make(name: str) -> _Decomp:
        if name in ("gzip", "x-gzip"):
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        if name == "deflate":
            return _Deflate()
        if name == "br":
            return _Brotli()
        if name == "zstd":
            try:
                from compression import zstd  # type: ignore[import-not-found]  # 3.14+
            except ImportError:
                from backports import zstd  # type: ignore[no-redef]  # mitmproxy's dependency

            return zstd.ZstdDecompressor()  # type: ignore[no-any-return]
        raise ContentDecodeError(f"unsupported content-encoding {name!r}")

    def feed(self, data: bytes) -> bytes:
        self._fed = self._fed or bool(data)
        try:
            for d in self._chain:
                data = d.decompress(data) if data else b""
        except Exception as exc:  # every codec raises its own error type
            raise ContentDecodeError(
                f"cannot decode body as {'+'.join(self.encodings)}: {exc}"
            ) from exc
        return data

    def close(self) -> None:
        """The body has ended: raise ContentDecodeError if a compressed stream was cut short.

        ``feed`` cannot tell a truncated gzip/br/zstd stream from one still arriving; only the
        end of the body can. An empty body (a HEAD answer, a 204) is not an error.
        """
        if not self._fed:
            return
        for name, d in zip(reversed(self.encodings), self._chain, strict=True):
            if not _finished(d):
                raise ContentDecodeError(f"body ended inside the {name} stream (truncated)")


def _finished(d: object) -> bool:
    """Whether a decompressor saw the end of its stream (True when it cannot say)."""
    if isinstance(d, _Deflate):
        return d._d is not None and d._d.eof
    if isinstance(d, _Brotli):
        return d.finished()
    return bool(getattr(d, "eof", True))


class _Brotli:
    """``brotli`` (Google's binding: ``process``) or ``brotlicffi`` (``decompress``)."""

    def __init__(self) -> None:
        try:
            import brotli
        except ImportError:
            import brotlicffi as brotli  # type: ignore[no-redef]
        self._d = brotli.Decompressor()

    def decompress(self, data: bytes) -> bytes:
        fn = getattr(self._d, "process", None) or self._d.decompress
        return fn(data)  # type: ignore[no-any-return]

    def finished(self) -> bool:
        done = getattr(self._d, "is_finished", None)
        return bool(done()) if done is not None else True


class _Deflate:
    """``deflate`` is zlib-wrapped by the RFC but raw in practice; accept both."""

    def __init__(self) -> None:
        self._d: zlib._Decompress | None = None  # type: ignore[name-defined]
        self._head = b""

    def decompress(self, data: bytes) -> bytes:
        if self._d is None:
            self._head += data
            if len(self._head) < 2:
                return b""
            zlib_wrapped = (self._head[0] & 0x0F) == 8 and (
                (self._head[0] << 8) | self._head[1]
            ) % 31 == 0
            self._d = zlib.decompressobj(zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS)
            data, self._head = self._head, b""
        return self._d.decompress(data)
