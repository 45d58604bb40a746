"""pipeline.gateway.compression: every coding SDKs use, bombs stopped at the cap."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
import zstandard

from pipeline.gateway.compression import (
    CorruptBody,
    TooLarge,
    UnsupportedEncoding,
    decompress,
)

BODY = b'{"event_id": "' + b"a" * 32 + b'"}\n' * 50

CODERS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
}


@pytest.mark.parametrize("coding", [*CODERS, "identity", ""])
def test_round_trip(coding):
    encoded = CODERS[coding](BODY) if coding in CODERS else BODY
    assert decompress(encoded, coding, 10_000) == BODY


def test_raw_deflate_and_stacked_codings():
    raw = zlib.compressobj(wbits=-15)
    encoded = raw.compress(BODY) + raw.flush()
    assert decompress(encoded, "deflate", 10_000) == BODY
    assert decompress(brotli.compress(gzip.compress(BODY)), "gzip, br", 10_000) == BODY
    assert decompress(gzip.compress(BODY), "GZIP", 10_000) == BODY


@pytest.mark.parametrize("coding", list(CODERS))
def test_bombs_stop_at_the_cap(coding):
    bomb = CODERS[coding](b"\0" * (64 * 1024 * 1024))  # 64 MiB of zeros, tiny on the wire
    assert len(bomb) < 200_000
    with pytest.raises(TooLarge):
        decompress(bomb, coding, 1024 * 1024)


@pytest.mark.parametrize("coding", list(CODERS))
def test_truncated_and_corrupt(coding):
    encoded = CODERS[coding](BODY * 20)
    with pytest.raises(CorruptBody):
        decompress(encoded[: len(encoded) // 2], coding, 1_000_000)
    with pytest.raises(CorruptBody):
        decompress(b"definitely not compressed data", coding, 1_000_000)


def test_unknown_coding_and_plain_cap():
    with pytest.raises(UnsupportedEncoding):
        decompress(BODY, "compress", 10_000)
    with pytest.raises(TooLarge):
        decompress(BODY, "identity", 10)
