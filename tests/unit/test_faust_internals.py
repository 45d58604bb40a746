"""Each private faust attribute ``pipeline/faust_internals.py`` touches exists, with the
shape the workaround relies on, in the installed faust-streaming (no broker needed: faust
builds its consumer and tables lazily). A faust upgrade that changes one fails here first."""

from __future__ import annotations

import asyncio
import inspect

import faust
import pytest
from faust.types import TP, Message

from pipeline.faust_internals import FAUST_CHECKED, Overlay, check_faust, ignore_gaps


@pytest.fixture
def app():
    return faust.App(
        "t-internals", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False
    )


def test_the_checked_version_is_the_installed_one():
    assert check_faust() == FAUST_CHECKED


def test_consumer_gap_bookkeeping_offsets_and_unacked_messages(app):
    consumer = app.consumer
    params = list(inspect.signature(consumer._add_gap).parameters)
    assert params == ["tp", "offset_from", "offset_to"]
    assert inspect.iscoroutinefunction(consumer._add_gap)
    assert consumer._committed_offset.get(TP("t", 0)) is None  # a mapping: tp → offset
    assert hasattr(consumer._unacked_messages, "discard")
    assert "acked" in Message.__slots__


def test_ignore_gaps_skips_only_the_guarded_topics(app):
    consumer = app.consumer
    seen = []

    async def original(tp, offset_from, offset_to):
        seen.append((tp.topic, offset_from, offset_to))

    consumer._add_gap = original
    ignore_gaps(app, {"guarded"})
    ignore_gaps(app, {"guarded"})  # idempotent: wrapped once

    async def scenario():
        await consumer._add_gap(TP("guarded", 0), 3, 7)
        await consumer._add_gap(TP("other", 0), 3, 7)

    asyncio.run(scenario())
    assert seen == [("other", 3, 7)]


def test_tables_expose_store_changelog_name_and_persisted_offsets(app):
    table = app.Table("x", default=None, partitions=1)
    assert table.changelog_topic_name == "t-internals-x-changelog"
    assert callable(table.data.set_persisted_offset)
    overlay = Overlay(table)
    overlay["a"] = {"n": 1}
    overlay["b"] = [1, 2]
    del overlay["b"]
    assert overlay.get("a") == {"n": 1} and "b" not in overlay
    messages = overlay.take()
    assert messages == [(b'"a"', b'{"n":1}')]  # b was never in the store: nothing to delete
    assert table.data["a"] == {"n": 1}
