"""OffsetGuard: the issues agent processes each by-fingerprint offset once, in order, and
seeks back when records were dropped before reaching it."""

from pipeline.offsets import OffsetGuard, Verdict

TP = ("errorstream-events-by-fingerprint", 3)


def test_processes_only_the_expected_offset_in_order():
    guard = OffsetGuard()
    assert not guard.knows(TP)
    guard.start(TP, 18)
    assert guard.knows(TP)
    assert guard.check(TP, 18) is Verdict.PROCESS
    guard.processed(TP, 18)
    assert guard.check(TP, 18) is Verdict.STALE  # a second copy of a processed record
    assert guard.check(TP, 17) is Verdict.STALE
    assert guard.check(TP, 20) is Verdict.GAP  # 19 never arrived
    assert guard.check(TP, 19) is Verdict.PROCESS


def test_a_gap_seeks_once_then_again_only_when_overdue():
    guard = OffsetGuard(reseek_after=0.5)
    guard.start(TP, 5)
    assert guard.check(TP, 9) is Verdict.GAP
    assert guard.seek_due(TP, now=100.0)
    guard.sought(TP, now=100.0)
    assert not guard.seek_due(TP, now=100.2)  # stale records fetched before the seek
    assert guard.overdue(now=100.2) == []
    assert guard.seek_due(TP, now=100.6)
    assert guard.overdue(now=100.6) == [TP]
    guard.processed(TP, 5)  # the expected record arrived: no longer rewinding
    assert guard.overdue(now=200.0) == []
    assert guard.seek_due(TP, now=100.7)  # a later gap seeks at once


def test_forget_starts_a_partition_again_from_its_committed_offset():
    other = (TP[0], 4)
    guard = OffsetGuard()
    guard.start(TP, 1)
    guard.start(other, 7)
    guard.sought(TP, now=1.0)
    guard.forget({TP})
    assert not guard.knows(TP)
    assert guard.overdue(now=10.0) == []
    assert guard.check(other, 7) is Verdict.PROCESS
    guard.start(TP, 40)  # reassigned: the committed offset may be below what was processed
    assert guard.check(TP, 40) is Verdict.PROCESS


def test_an_idle_agent_behind_the_log_is_stalled():
    guard = OffsetGuard()
    caught_up, behind, unseen = (TP[0], 0), (TP[0], 1), (TP[0], 2)
    guard.start(caught_up, 50)
    guard.start(behind, 10)
    highwaters = {caught_up: 50, behind: 12, unseen: 9, (TP[0], 3): None}
    assert guard.stalled(highwaters, idle_for=0.2) == []  # records may still be on the way
    assert guard.stalled(highwaters, idle_for=1.5) == [behind]
    guard.processed(behind, 10)
    guard.processed(behind, 11)
    assert guard.stalled(highwaters, idle_for=5.0) == []
