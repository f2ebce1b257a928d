"""Append-only logs: one per ``(pod, author, scope)``, ``seq`` from 1, ``prev`` chaining.

``classify`` is the whole chain rule as a pure function of the log's current head.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from protocol.envelope import Head


class LogKey(NamedTuple):
    """Names one log."""

    pod: str
    author: str
    scope: str


class LogState(NamedTuple):
    """The head of a log as the node knows it: last ``seq``, its event ``id`` and ``ts``."""

    seq: int
    id: str
    ts: int


class Chain(enum.Enum):
    """How a new event relates to a log."""

    APPEND = "append"
    DUPLICATE = "duplicate"
    GAP = "gap"
    FORK = "fork"
    TS_BEFORE_PREV = "ts-before-prev"


def classify(state: LogState | None, head: Head, event_id: str) -> Chain:
    """Classify an event against the current head of its log.

    - ``APPEND``: the next event (``seq == state.seq + 1`` and ``prev == state.id``), or seq 1
      of an empty log;
    - ``DUPLICATE``: it *is* the current head;
    - ``GAP``: its seq is ahead of the log (the events between are missing: hold it);
    - ``FORK``: another event already holds that seq, or it chains onto an event that is
      not this log's (the caller has already ruled out a known id at a lower seq);
    - ``TS_BEFORE_PREV``: it would append but its ``ts`` is below its predecessor's.

    >>> classify(None, _head(seq=1, prev=None), "A")
    <Chain.APPEND: 'append'>
    """
    if state is None:
        return Chain.APPEND if head.seq == 1 else Chain.GAP
    if head.seq == state.seq and event_id == state.id:
        return Chain.DUPLICATE
    if head.seq <= state.seq:
        return Chain.FORK
    if head.seq > state.seq + 1:
        return Chain.GAP
    if head.prev != state.id:
        return Chain.FORK
    if head.ts < state.ts:
        return Chain.TS_BEFORE_PREV
    return Chain.APPEND


def _head(seq: int, prev: str | None, ts: int = 0) -> Head:
    """A throwaway head for doctests."""
    return Head(
        v=1,
        pod="A" * 43,
        author="A" * 43,
        scope="pod",
        seq=seq,
        prev=prev,
        ts=ts,
        kind="x.y",
        body_hash=None,
        body_size=0,
    )
