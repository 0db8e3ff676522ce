"""Body compression for the sync, negotiated by ``Content-Encoding``. Pure.

zstd is the agent's choice (smaller and faster than gzip on columnar batches); gzip is
accepted for clients that only have the standard library, and ``identity`` for debugging.
Decompression is bounded: a body that would inflate beyond ``max_bytes`` raises TooLarge
before it fills memory, so a compression bomb costs the hub nothing.
"""

from __future__ import annotations

import gzip
import io
import zlib
from typing import Literal

import zstandard

from edge_agent.errors import CodecError, TooLarge

__all__ = ["ENCODINGS", "Encoding", "compress", "decompress"]

Encoding = Literal["zstd", "gzip", "identity"]
ENCODINGS: tuple[Encoding, ...] = ("zstd", "gzip", "identity")

_ZSTD_LEVEL = 9
_GZIP_LEVEL = 6


def compress(data: bytes, encoding: Encoding) -> bytes:
    """``data`` compressed with ``encoding``; the same input always gives the same bytes."""
    if encoding == "zstd":
        return zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(data)
    if encoding == "gzip":
        return gzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=0)
    return data


def decompress(data: bytes, encoding: str, *, max_bytes: int) -> bytes:
    """``data`` inflated; CodecError if malformed or of an unknown encoding, TooLarge if big."""
    if encoding == "zstd":
        return _unzstd(data, max_bytes)
    if encoding == "gzip":
        return _gunzip(data, max_bytes)
    if encoding == "identity":
        if len(data) > max_bytes:
            raise TooLarge(f"body of {len(data)} bytes exceeds {max_bytes}; refused")
        return data
    known = ", ".join(ENCODINGS)
    raise CodecError(f"unknown content encoding {encoding!r}; known: {known}")


def _gunzip(data: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        text = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise CodecError(f"body is not valid gzip: {exc}") from exc
    if len(text) > limit or inflater.unconsumed_tail:
        raise TooLarge(f"body inflates beyond {limit} bytes; refused")
    if not inflater.eof:
        raise CodecError("gzip body is truncated")
    if inflater.unused_data:
        raise CodecError("gzip body has trailing bytes after its end")
    return text


def _unzstd(data: bytes, limit: int) -> bytes:
    # The stream reader bounds the output; only once it is known to fit does a second,
    # unbounded pass run, whose ``eof`` tells a complete frame from a truncated one.
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data))
        if len(reader.read(limit + 1)) > limit:
            raise TooLarge(f"body inflates beyond {limit} bytes; refused")
        inflater = zstandard.ZstdDecompressor().decompressobj()
        text = inflater.decompress(data)
    except zstandard.ZstdError as exc:
        raise CodecError(f"body is not valid zstd: {exc}") from exc
    if not inflater.eof:
        raise CodecError("zstd body is truncated")
    if inflater.unused_data:
        raise CodecError("zstd body has trailing bytes after its frame")
    return text
