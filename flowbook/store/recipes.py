"""Recipes: how a stored line is rebuilt from chunk digests, as a delta of another recipe.

A recipe is a list of ops: a new chunk (its digest) or a range copied from the base recipe's
resolved chunk list. Encoded as ``0 + digest`` or ``1 + start + count`` (little-endian u32).
Stored as is: digests are random bytes that zstd cannot shrink (a frame only added its header),
so compressing cost time for nothing. Recipes written zstd-compressed by earlier versions start
with zstd's magic number (an op starts with 0 or 1) and are still read.

A line whose new chunks went into a pack of their own (in the line's order) names that pack
instead of listing their digests: ``2 + varint(pid)`` and then, per chunk of the line,
``varint(2 * length)`` for the pack's next chunk or ``varint(1) + digest`` for a chunk stored
before (a shared system prompt, a repeat inside the line). The lengths let the digests be
recomputed from the pack when the recipe serves as a delta's base. For ordinary traffic that is
~2 bytes instead of 17 per ~1.7 KB chunk. Recipes written before this form never start with 2.
"""

from __future__ import annotations

import struct

import zstandard

from flowbook.store import chunking

_NEW, _COPY, _PACK = 0, 1, 2
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


def _varint(out: bytearray, v: int) -> None:
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def encode_pack(pid: int, entries: list[bytes | int]) -> bytes:
    """The recipe of a line whose new chunks are pack ``pid``: each entry is the length of the
    pack's next chunk, or the digest of a chunk stored elsewhere."""
    out = bytearray((_PACK,))
    _varint(out, pid)
    for e in entries:
        if isinstance(e, int):
            _varint(out, e << 1)
        else:
            out.append(1)
            out += e
    return bytes(out)


def decode_pack(blob: bytes) -> tuple[int, list[bytes | int]] | None:
    """(pack id, entries) of a recipe made by ``encode_pack``; None for any other recipe."""
    if blob[:1] != b"\x02":
        return None
    pid: int | None = None
    entries: list[bytes | int] = []
    i, n, d = 1, len(blob), chunking.DIGEST_BYTES
    while i < n:
        v = shift = 0
        while True:
            b = blob[i]
            i += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        if pid is None:
            pid = v
        elif v & 1:
            entries.append(blob[i : i + d])
            i += d
        else:
            entries.append(v >> 1)
    if pid is None or i != n:
        raise ValueError("truncated pack recipe")
    return pid, entries


def decode_ops(blob: bytes) -> list[bytes | tuple[int, int]]:
    if blob[:1] == b"\x02":
        raise ValueError("a pack recipe has no ops: read it with decode_pack")
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
