"""SDK unit fixtures: a client on the in-memory transport (no broker), a fake clock and a
scripted RNG, so every count is exact."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import errorstream_sdk
import orjson
import pytest
from errorstream_sdk.client import Client
from errorstream_sdk.transport import MemoryTransport


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_sdk(clock: FakeClock) -> Iterator[Any]:
    """``make_sdk(**options)`` -> a started client on MemoryTransport; closed afterwards."""

    def make(**options: Any) -> Client:
        options.setdefault("service", "unit-svc")
        options.setdefault("install_hooks", False)
        options.setdefault("clock", clock)
        options.setdefault("rng", lambda: 0.0)
        return errorstream_sdk.init(transport_factory=MemoryTransport, **options)

    yield make
    errorstream_sdk.close()


@pytest.fixture
def sdk(make_sdk: Any) -> Client:
    return make_sdk()


def _sent_events(client: Client) -> list[dict[str, Any]]:
    client.transport.drain()
    return [orjson.loads(v) for _, v in client.transport.messages]


def _sent_raw(client: Client) -> list[tuple[bytes, bytes]]:
    client.transport.drain()
    return list(client.transport.messages)


@pytest.fixture
def sent_events() -> Any:
    """``sent_events(client)``: drain the in-memory transport, decoded events in order."""
    return _sent_events


@pytest.fixture
def sent_raw() -> Any:
    """``sent_raw(client)``: drain the in-memory transport, ``(key, value bytes)`` in order."""
    return _sent_raw
