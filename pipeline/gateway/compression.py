"""Request bodies by ``Content-Encoding``: gzip, deflate (zlib or raw), br, zstd, identity.

Decompression is incremental with a cap on the output: a body that would grow past
``max_bytes`` stops there with ``TooLarge`` (a decompression bomb costs at most the cap, not
the memory it claims). Truncated or corrupt input is ``CorruptBody``; an unknown coding is
``UnsupportedEncoding``. Several codings (``gzip, br``) are undone last one first.
"""

from __future__ import annotations

import zlib

import brotli
import zstandard

CHUNK = 64 * 1024
# zstd input is fed in slices this small: one slice of RLE blocks expands to at most
# ~32 x 128 KiB, so the output cap is checked at least every few MiB
ZSTD_SLICE = 128


class BodyError(ValueError):
    reason = "body"


class TooLarge(BodyError):
    reason = "too_large_decompressed"


class CorruptBody(BodyError):
    reason = "bad_compression"


class UnsupportedEncoding(BodyError):
    reason = "unsupported_encoding"


def _zlib(body: bytes, wbits: int, max_bytes: int) -> bytes:
    d = zlib.decompressobj(wbits)
    out = bytearray()
    data = body
    try:
        while data:
            out += d.decompress(data, CHUNK)
            if len(out) > max_bytes:
                raise TooLarge(f"body grows past {max_bytes} bytes when decompressed")
            data = d.unconsumed_tail
            if d.eof:
                break
    except zlib.error:
        raise CorruptBody("body is not valid compressed data") from None
    if not d.eof:
        raise CorruptBody("compressed body is truncated")
    return bytes(out)


def _deflate(body: bytes, max_bytes: int) -> bytes:
    # HTTP's deflate is zlib-wrapped; some clients send raw deflate
    if len(body) >= 2 and (body[0] & 0x0F) == 8 and ((body[0] << 8) | body[1]) % 31 == 0:
        return _zlib(body, 15, max_bytes)
    return _zlib(body, -15, max_bytes)


def _brotli(body: bytes, max_bytes: int) -> bytes:
    d = brotli.Decompressor()
    out = bytearray()
    try:
        out += d.process(body, output_buffer_limit=CHUNK)
        while len(out) <= max_bytes and not d.is_finished() and not d.can_accept_more_data():
            out += d.process(b"", output_buffer_limit=CHUNK)
    except brotli.error:
        raise CorruptBody("body is not valid brotli data") from None
    if len(out) > max_bytes:
        raise TooLarge(f"body grows past {max_bytes} bytes when decompressed")
    if not d.is_finished():
        raise CorruptBody("compressed body is truncated")
    return bytes(out)


def _zstd(body: bytes, max_bytes: int) -> bytes:
    d = zstandard.ZstdDecompressor().decompressobj()
    out = bytearray()
    try:
        for start in range(0, len(body), ZSTD_SLICE):
            out += d.decompress(body[start : start + ZSTD_SLICE])
            if len(out) > max_bytes:
                raise TooLarge(f"body grows past {max_bytes} bytes when decompressed")
            if d.eof:
                break
    except zstandard.ZstdError:
        raise CorruptBody("body is not valid zstd data") from None
    if not d.eof:
        raise CorruptBody("compressed body is truncated")
    return bytes(out)


_DECODERS = {
    "gzip": lambda b, m: _zlib(b, 31, m),
    "x-gzip": lambda b, m: _zlib(b, 31, m),
    "deflate": _deflate,
    "br": _brotli,
    "zstd": _zstd,
}


def decompress(body: bytes, content_encoding: str, max_bytes: int) -> bytes:
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    for coding in reversed(codings):
        if coding == "identity":
            continue
        decoder = _DECODERS.get(coding)
        if decoder is None:
            raise UnsupportedEncoding(f"unsupported Content-Encoding {coding!r}")
        body = decoder(body, max_bytes)
    if len(body) > max_bytes:
        raise TooLarge(f"body of {len(body)} bytes exceeds {max_bytes}")
    return body
