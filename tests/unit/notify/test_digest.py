"""Throttle and digest math: the first alert of a quiet route at once, then one message per
window, nothing lost or sent twice."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.notify.digest import Throttle


def alert(n: int) -> dict:
    return {"alert_id": f"{n:032x}", "kind": "new_issue", "service": "s", "title": f"t{n}"}


def test_the_documented_timeline():
    t = Throttle("r", 60)
    first = t.offer(alert(1), "o1", now=0)
    assert first is not None and first.alerts == (alert(1),) and not first.is_digest
    assert t.offer(alert(2), "o2", now=5) is None
    assert t.offer(alert(3), "o3", now=40) is None
    assert t.due(59.9) is None
    digest = t.due(60)
    assert digest is not None and digest.is_digest
    assert digest.alerts == (alert(2), alert(3)) and digest.tokens == ("o2", "o3")
    assert t.due(119) is None and t.due(120) is None  # nothing held: the route goes quiet
    again = t.offer(alert(4), "o4", now=130)
    assert again is not None and again.alerts == (alert(4),)
    assert t.next_due() is None


def test_one_held_alert_goes_out_as_a_single_alert_when_the_window_closes():
    t = Throttle("r", 60)
    t.offer(alert(1), 1, now=0)
    assert t.offer(alert(2), 2, now=10) is None
    (message) = t.due(60)
    assert message.alerts == (alert(2),) and not message.is_digest
    assert t.next_due() is None


def test_an_alert_arriving_after_the_window_closed_joins_the_due_digest():
    t = Throttle("r", 60)
    t.offer(alert(1), 1, now=0)
    t.offer(alert(2), 2, now=10)
    message = t.offer(alert(3), 3, now=61)  # due() was not called in between
    assert message is not None and message.tokens == (2, 3)


def test_window_zero_sends_everything_alone():
    t = Throttle("r", 0)
    assert all(t.offer(alert(n), n, now=0.0) is not None for n in range(5))


def test_flush_takes_everything_held():
    t = Throttle("r", 60)
    assert t.flush() is None
    t.offer(alert(1), 1, now=0)
    t.offer(alert(2), 2, now=1)
    t.offer(alert(3), 3, now=2)
    flushed = t.flush()
    assert flushed is not None and flushed.tokens == (2, 3)
    assert t.flush() is None


@given(
    gaps=st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=60),
    window=st.sampled_from([0.0, 1.0, 10.0, 60.0]),
    tick=st.floats(min_value=0.1, max_value=30),
)
def test_every_alert_once_and_at_most_one_message_per_window(gaps, window, tick):
    t = Throttle("r", window)
    sent: list[tuple[float, tuple]] = []
    now = 0.0
    for n, gap in enumerate(gaps):
        # the notifier calls due() every poll; here every `tick` seconds
        target = now + gap
        while now + tick < target:
            now += tick
            if (m := t.due(now)) is not None:
                sent.append((now, m.tokens))
        now = target
        if (m := t.offer(alert(n), n, now)) is not None:
            sent.append((now, m.tokens))
    if (m := t.flush()) is not None:
        sent.append((now + window, m.tokens))
    tokens = [tok for _, toks in sent for tok in toks]
    assert sorted(tokens) == list(range(len(gaps)))  # nothing lost, nothing twice
    assert tokens == sorted(tokens)  # in order
    times = [at for at, _ in sent]
    assert all(b - a >= window - 1e-9 for a, b in zip(times, times[1:], strict=False))
