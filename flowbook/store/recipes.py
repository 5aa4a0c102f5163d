"""Recipes: how a stored line is rebuilt from chunk digests, as a delta of another recipe.

A recipe is a list of ops: a new chunk (its digest) or a range copied from the base recipe's
resolved chunk list. Encoded as ``0 + digest`` or ``1 + start + count`` (little-endian u32).
Stored as is: digests are random bytes that zstd cannot shrink (a frame only added its header),
so compressing cost time for nothing. Recipes written zstd-compressed by earlier versions start
with zstd's magic number (an op starts with 0 or 1) and are still read.
"""

from __future__ import annotations

import struct

import zstandard

from flowbook.store import chunking

_NEW, _COPY = 0, 1
_COPY_FMT = struct.Struct("<BII")
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def encode_ops(ops: list[bytes | tuple[int, int]]) -> bytes:
    """Binary recipe: ``0 + digest`` for a new chunk, ``1 + start + count`` for a copied range."""
    digests = [op for op in ops if isinstance(op, bytes)]
    if len(digests) == len(ops):  # a full list (no base): the common case, one join
        return b"\x00" + b"\x00".join(digests) if digests else b""
    out = bytearray()
    for op in ops:
        if isinstance(op, bytes):
            out.append(_NEW)
            out += op
        else:
            out += _COPY_FMT.pack(_COPY, op[0], op[1])
    return bytes(out)


def decode_ops(blob: bytes) -> list[bytes | tuple[int, int]]:
    if blob[:4] == _ZSTD_MAGIC:  # written by an earlier version
        blob = zstandard.ZstdDecompressor().decompress(blob)
    data = blob
    ops: list[bytes | tuple[int, int]] = []
    i, n, d = 0, len(data), chunking.DIGEST_BYTES
    while i < n:
        if data[i] == _NEW:
            ops.append(data[i + 1 : i + 1 + d])
            i += 1 + d
        else:
            _, start, count = _COPY_FMT.unpack_from(data, i)
            ops.append((start, count))
            i += _COPY_FMT.size
    return ops


def diff_ops(base: list[bytes], new: list[bytes]) -> list[bytes | tuple[int, int]]:
    """``new`` as ranges of ``base`` (runs of two or more chunks) and single new digests."""
    where: dict[bytes, list[int]] = {}
    for i, h in enumerate(base):
        where.setdefault(h, []).append(i)
    ops: list[bytes | tuple[int, int]] = []
    i, n = 0, len(new)
    while i < n:
        best_start, best_len = -1, 0
        for start in where.get(new[i], ())[:8]:
            k = 1
            while i + k < n and start + k < len(base) and base[start + k] == new[i + k]:
                k += 1
            if k > best_len:
                best_start, best_len = start, k
        if best_len >= 2:
            ops.append((best_start, best_len))
            i += best_len
        else:
            ops.append(new[i])
            i += 1
    return ops
