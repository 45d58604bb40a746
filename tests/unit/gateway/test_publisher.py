"""pipeline.gateway.publisher: the faster murmur2 picks the partition every Kafka client
(aiokafka's DefaultPartitioner, the Java client) picks for the same key."""

from __future__ import annotations

import uuid

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.gateway.publisher import key_partition, murmur2


@given(st.binary(max_size=70))
@settings(max_examples=2000, deadline=None)
def test_murmur2_equals_aiokafkas(data):
    assert murmur2(data) == aiokafka_murmur2(data)


def test_known_values_of_the_java_client():
    # org.apache.kafka.common.utils.UtilsTest#testMurmur2
    cases = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
             b"a-little-bit-longer-string": -1486304829,
             b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971, b"abc": 479470107}  # fmt: skip
    for data, signed in cases.items():
        assert murmur2(data) == signed & 0xFFFFFFFF


def test_partition_of_event_ids_is_the_default_partitioners():
    default = DefaultPartitioner()
    for n in (1, 3, 4, 12):
        parts = list(range(n))
        for _ in range(300):
            key = uuid.uuid4().hex.encode()
            assert key_partition(key, parts, parts) == default(key, parts, parts)
    assert key_partition(None, [0, 1], [1]) == 1
