"""AckWhenDelivered: envelopes are acked in processing order, each only once every message
it produced is delivered; a failed delivery stops that ack and all later ones."""

import asyncio

import pytest

from pipeline.faust_internals import AckWhenDelivered


class Recorder:
    def __init__(self) -> None:
        self.acked: list[str] = []

    async def ack(self, event: str) -> bool:
        self.acked.append(event)
        return True


def run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


def test_acks_in_order_once_all_messages_are_delivered():
    async def scenario():
        stream = Recorder()
        acks = AckWhenDelivered(stream)
        loop = asyncio.get_running_loop()
        a = [loop.create_future() for _ in range(3)]
        b = [loop.create_future() for _ in range(2)]
        acks.add("a", a)
        acks.add("b", b)
        for f in b:  # the later envelope delivered first: neither is acked yet
            f.set_result(None)
        a[0].set_result(None)
        a[1].set_result(None)
        await asyncio.sleep(0)
        assert stream.acked == []
        a[2].set_result(None)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert stream.acked == ["a", "b"]
        acks.add("c", [])  # nothing produced: acked at once, after the others
        await asyncio.sleep(0)
        assert stream.acked == ["a", "b", "c"]
        acks.check()

    run(scenario())


def test_a_failed_delivery_stops_that_ack_and_all_later_ones():
    async def scenario():
        stream = Recorder()
        acks = AckWhenDelivered(stream)
        loop = asyncio.get_running_loop()
        a, b = loop.create_future(), loop.create_future()
        acks.add("a", [a])
        acks.add("b", [b])
        b.set_result(None)
        a.set_exception(OSError("broker gone"))
        await asyncio.sleep(0)
        assert stream.acked == []
        with pytest.raises(RuntimeError, match="broker gone"):
            acks.check()

    run(scenario())
