"""Body compression for the sync, negotiated by ``Content-Encoding``. Pure.

zstd is the agent's choice (smaller and faster than gzip on columnar batches); gzip is
accepted for clients that only have the standard library, and ``identity`` for debugging.
Decompression is bounded: a body that would inflate beyond ``max_bytes`` raises TooLarge
before it fills memory, so a compression bomb costs the hub nothing; ``inflate`` hands the
output over piece by piece, so a reader can refuse a body at its first bad piece.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import zlib
from collections.abc import Iterator
from typing import Literal

import zstandard

from edge_agent.errors import CodecError, TooLarge

__all__ = ["CHUNK", "ENCODINGS", "Encoding", "compress", "decompress", "inflate"]

Encoding = Literal["zstd", "gzip", "identity"]
ENCODINGS: tuple[Encoding, ...] = ("zstd", "gzip", "identity")

_ZSTD_LEVEL = 9
_GZIP_LEVEL = 6
#: Bytes ``inflate`` hands over at a time: small enough that a refusal comes early.
CHUNK = 64 * 1024


def compress(data: bytes, encoding: Encoding) -> bytes:
    """``data`` compressed with ``encoding``; the same input always gives the same bytes."""
    if encoding == "zstd":
        return zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(data)
    if encoding == "gzip":
        return gzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=0)
    return data


def decompress(data: bytes, encoding: str, *, max_bytes: int) -> bytes:
    """``data`` inflated; CodecError if malformed or of an unknown encoding, TooLarge if big."""
    return b"".join(inflate(data, encoding, max_bytes=max_bytes))


def inflate(data: bytes, encoding: str, *, max_bytes: int) -> Iterator[bytes]:
    """``data`` inflated piece by piece (``CHUNK`` bytes at most each), errors as ``decompress``.

    A reader that finds a piece it refuses stops there: a small body that would inflate to
    many megabytes of structure costs only the pieces read before the refusal.
    """
    if encoding == "zstd":
        return _unzstd(data, max_bytes)
    if encoding == "gzip":
        return _gunzip(data, max_bytes)
    if encoding == "identity":
        if len(data) > max_bytes:
            raise TooLarge(f"body of {len(data)} bytes exceeds {max_bytes}; refused")
        return (data[i : i + CHUNK] for i in range(0, len(data), CHUNK))
    known = ", ".join(ENCODINGS)
    raise CodecError(f"unknown content encoding {encoding!r}; known: {known}")


def _gunzip(data: bytes, limit: int) -> Iterator[bytes]:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    pending, size = data, 0
    while not inflater.eof:
        try:
            piece = inflater.decompress(pending, CHUNK)
        except zlib.error as exc:
            raise CodecError(f"body is not valid gzip: {exc}") from exc
        pending = inflater.unconsumed_tail
        if not piece and not pending:  # the input ended before the stream did
            break
        size += len(piece)
        if size > limit:
            raise TooLarge(f"body inflates beyond {limit} bytes; refused")
        yield piece
    if not inflater.eof:
        raise CodecError("gzip body is truncated")
    if inflater.unused_data:
        raise CodecError("gzip body has trailing bytes after its end")


def _unzstd(data: bytes, limit: int) -> Iterator[bytes]:
    # The stream reader bounds each piece; once the whole output is known to fit, a second,
    # unbounded pass runs, whose ``eof`` tells a complete frame from a truncated one and which
    # names what follows the frame (the reader only fails on it).
    size = 0
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data))
    with contextlib.suppress(zstandard.ZstdError):  # told apart by the second pass
        while piece := reader.read(CHUNK):
            size += len(piece)
            if size > limit:
                raise TooLarge(f"body inflates beyond {limit} bytes; refused")
            yield piece
    inflater = zstandard.ZstdDecompressor().decompressobj()
    try:
        inflater.decompress(data)
    except zstandard.ZstdError as exc:
        raise CodecError(f"body is not valid zstd: {exc}") from exc
    if not inflater.eof:
        raise CodecError("zstd body is truncated")
    if inflater.unused_data:
        raise CodecError("zstd body has trailing bytes after its frame")
