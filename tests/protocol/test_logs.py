"""The chain rule (protocol/logs.py, docs/protocol.md §10)."""

from __future__ import annotations

import doctest
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.crypto import sha256_b64
from protocol.envelope import Head
from protocol.logs import Chain, LogKey, LogState, classify

POD = sha256_b64(b"pod")
AUTHOR = sha256_b64(b"author")


def head(seq: int, prev: str | None, ts: int = 1000) -> Head:
    return Head(
        v=1,
        pod=POD,
        author=AUTHOR,
        scope="pod",
        seq=seq,
        prev=prev,
        ts=ts,
        kind="test.event",
        body_hash=None,
        body_size=0,
    )


A, B, C = (sha256_b64(name) for name in (b"a", b"b", b"c"))


@pytest.mark.parametrize(
    ("state", "new", "event_id", "chain"),
    [
        (None, head(1, None), A, Chain.APPEND),  # the first event of an empty log
        (None, head(2, B), A, Chain.GAP),  # an empty log, seq ahead
        (None, head(9, B), A, Chain.GAP),
        (LogState(3, A, 1000), head(3, B), A, Chain.DUPLICATE),  # it is the current head
        (LogState(3, A, 1000), head(3, B), C, Chain.FORK),  # another event holds seq 3
        (LogState(3, A, 1000), head(2, B), C, Chain.FORK),  # seq 2 is taken too
        (LogState(3, A, 1000), head(1, None), C, Chain.FORK),
        (LogState(1, A, 1000), head(1, None), A, Chain.DUPLICATE),
        (LogState(3, A, 1000), head(5, B), C, Chain.GAP),  # seq 4 is missing
        (LogState(3, A, 1000), head(4, B), C, Chain.FORK),  # next seq, but prev is not the head
        (LogState(3, A, 1000), head(4, A, ts=999), C, Chain.TS_BEFORE_PREV),
        (LogState(3, A, 1000), head(4, A, ts=1000), C, Chain.APPEND),  # equal ts is fine
        (LogState(3, A, 1000), head(4, A, ts=5000), C, Chain.APPEND),
    ],
)
def test_classify(state: LogState | None, new: Head, event_id: str, chain: Chain) -> None:
    assert classify(state, new, event_id) is chain


def test_names() -> None:
    key = LogKey(POD, AUTHOR, "pod")
    assert (key.pod, key.author, key.scope) == (POD, AUTHOR, "pod")
    assert key == (POD, AUTHOR, "pod")  # a plain tuple of the three
    state = LogState(seq=3, id=A, ts=1000)
    assert (state.seq, state.id, state.ts) == (3, A, 1000)
    assert [chain.value for chain in Chain] == [
        "append",
        "duplicate",
        "gap",
        "fork",
        "ts-before-prev",
    ]


# --- property: a log built in order, and events classified against every point of it --------


@dataclass(frozen=True)
class Entry:
    head: Head
    id: str

    @property
    def state(self) -> LogState:
        return LogState(self.head.seq, self.id, self.head.ts)


def build_log(gaps: list[int]) -> list[Entry]:
    """A valid log: seq 1..n, each prev the id of the one before, ts never decreasing."""
    log: list[Entry] = []
    ts = 0
    for number, gap in enumerate(gaps, start=1):
        ts += gap
        prev = log[-1].id if log else None
        log.append(Entry(head(number, prev, ts), sha256_b64(f"{number}:{prev}:{ts}".encode())))
    return log


@given(st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=12))
def test_classify_every_event_against_every_head(gaps: list[int]) -> None:
    log = build_log(gaps)
    for position, entry in enumerate(log):  # entry has seq position + 1
        for known in range(len(log) + 1):  # the node holds the first `known` events
            state = log[known - 1].state if known else None
            chain = classify(state, entry.head, entry.id)
            if known == position:
                assert chain is Chain.APPEND
            elif known == position + 1:
                assert chain is Chain.DUPLICATE
            elif known < position:
                assert chain is Chain.GAP
            else:  # an event the node holds: the caller rules it out by id first
                assert chain is Chain.FORK


@given(
    st.lists(st.integers(min_value=0, max_value=5), min_size=2, max_size=10),
    st.data(),
)
def test_classify_mutations(gaps: list[int], data: st.DataObject) -> None:
    """A second event at a taken position forks; a wrong prev forks; an earlier ts is refused."""
    log = build_log(gaps)
    position = data.draw(st.integers(min_value=1, max_value=len(log) - 1))
    original = log[position]
    before, at = log[position - 1].state, original.state
    sibling_id = sha256_b64(b"sibling" + original.id.encode())
    sibling = head(original.head.seq, original.head.prev, original.head.ts)
    # A sibling (same prev, other content) appends where the original would, forks after it.
    assert classify(before, sibling, sibling_id) is Chain.APPEND
    assert classify(at, sibling, sibling_id) is Chain.FORK
    for later in log[position:]:
        assert classify(later.state, sibling, sibling_id) is Chain.FORK
    # Chaining onto anything but the head forks.
    wrong = data.draw(st.sampled_from([e.id for e in log if e.id != before.id] + [sibling_id]))
    assert classify(before, head(original.head.seq, wrong, original.head.ts), C) is Chain.FORK
    # A ts below the head's is refused — only when the event would otherwise append.
    if before.ts > 0:
        earlier = head(original.head.seq, before.id, before.ts - 1)
        assert classify(before, earlier, sibling_id) is Chain.TS_BEFORE_PREV
        assert classify(at, earlier, sibling_id) is Chain.FORK


def test_docstring_examples_run() -> None:
    import protocol.logs

    result = doctest.testmod(protocol.logs)
    assert result.attempted > 0
    assert result.failed == 0
