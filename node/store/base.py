"""The storage interface every backend implements (SQLite now, PostgreSQL later).

The contract test suite in ``tests/node/store_contract.py`` runs unchanged against each
backend. Events are append-only: a stored head is never updated or deleted; a body is
dropped only through redaction.
"""

from __future__ import annotations

import abc
import enum
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import NamedTuple, TypeVar

import msgspec

from protocol.logs import LogKey, LogState

T = TypeVar("T")


class Placement(enum.IntEnum):
    """How a stored event stands in its log."""

    LOG = 0  # in its log, projected
    PROOF = 1  # a fork relayed by a peer: kept as proof, never projected
    UNPROJECTED = 2  # in its log, not projected: a bad body, a blocked or ended author


class NewEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event ready to be written: verified, chained and authorized by ingest."""

    id: str
    pod: str
    author: str
    scope: str
    seq: int
    ts: int
    kind: str
    head: str
    sig: str
    body: str | None
    placement: Placement = Placement.LOG
    #: The pod id of the direct peer this event was received from; None for the node's own
    #: clients and imports. Federation never echoes an event back to its origin.
    origin: str | None = None


class StoredEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event as read back: its local commit ``cursor`` and the exact envelope bytes."""

    cursor: int
    id: str
    pod: str
    author: str
    scope: str
    seq: int
    ts: int
    kind: str
    envelope: bytes
    placement: Placement = Placement.LOG


class EventQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Filters for reading events; fields AND, values inside one field OR.

    ``kinds`` entries may end in ``.*`` for a prefix match. ``since``/``until`` are
    inclusive ``ts`` bounds in ms. ``after`` is a cursor: only events committed after it.
    ``readable_scopes``/``readable_pod`` are the reader's rights, applied in SQL as a
    pre-filter (the caller still checks ``may_read`` on every row).
    """

    ids: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    pods: tuple[str, ...] = ()
    since: int | None = None
    until: int | None = None
    after: int | None = None
    limit: int = 500
    descending: bool = False
    #: Only events in their log and projected: what clients are served (an unprojected
    #: event — a blocked or ended author, a bad body — is kept for peers, never shown).
    in_log: bool = False


class WireEvent(NamedTuple):
    """One event as its ready-made wire object, with the facts ``may_read`` needs."""

    cursor: int
    pod: str
    author: str
    scope: str
    kind: str
    wire: bytes


class FederatedEvent(NamedTuple):
    """One event as federation sends it: head facts and the exact stored envelope bytes."""

    cursor: int
    id: str
    pod: str
    author: str
    scope: str
    seq: int
    kind: str
    envelope: bytes


#: A log position ``(pod, author, scope, seq)``; in ``missing_events`` the seq is an "after".
LogPosition = tuple[str, str, str, int]


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    """How far a peer's log has been received: its ``store`` id and commit ``cursor``."""

    store: str
    cursor: int
    updated_ms: int


class WriteTxn(abc.ABC):
    """What a writer batch may do inside its one transaction (runs on the writer thread)."""

    @abc.abstractmethod
    def insert(self, event: NewEvent) -> int | None:
        """Insert an event; return its cursor, or None if that id is already stored."""

    @abc.abstractmethod
    def drop_body(self, event_id: str) -> bool:
        """Drop a stored body (only allowed once a redaction for it is recorded)."""

    @abc.abstractmethod
    def set_placement(self, event_id: str, placement: Placement) -> None:
        """Move an in-log event between ``LOG`` and ``UNPROJECTED`` (a roster change, D38)."""

    @abc.abstractmethod
    def record_redaction(self, target: str, by: str) -> None:
        """Record that ``target``'s body is erased by redaction event ``by``."""

    @abc.abstractmethod
    def is_redacted(self, target: str) -> bool:
        """Has a valid redaction of ``target`` been recorded?"""

    @property
    @abc.abstractmethod
    def connection(self) -> sqlite3.Connection:
        """The DB-API connection, for projection writes in the same transaction."""


class Store(abc.ABC):
    """A durable, append-only event store with a local commit cursor."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Open (and create or migrate) the store."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush and close."""

    @property
    @abc.abstractmethod
    def store_id(self) -> str:
        """A random id of this database, made when it was created (available after ``open``).

        Cursors are only comparable within one store: a peer's checkpoint names the store
        its cursor belongs to, so a replaced database starts over instead of skipping.
        """

    @abc.abstractmethod
    async def transact(self, fn: Callable[[WriteTxn], T]) -> T:
        """Run ``fn`` in one write transaction on the writer; commit durably before returning."""

    @abc.abstractmethod
    async def known_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of these ids are stored."""

    @abc.abstractmethod
    async def get(self, event_id: str) -> StoredEvent | None:
        """One event by id."""

    @abc.abstractmethod
    async def query(self, q: EventQuery) -> list[StoredEvent]:
        """Events matching ``q`` in cursor order."""

    async def query_wire(self, q: EventQuery) -> list[WireEvent]:
        """Events matching ``q`` as ready-made ``{"id","cursor","envelope"}`` JSON objects."""
        return [
            WireEvent(
                e.cursor,
                e.pod,
                e.author,
                e.scope,
                e.kind,
                b'{"id":"'
                + e.id.encode()
                + b'","cursor":'
                + str(e.cursor).encode()
                + b',"envelope":'
                + e.envelope
                + b"}",
            )
            for e in await self.query(q)
        ]

    @abc.abstractmethod
    async def log_head(self, log: LogKey) -> LogState | None:
        """The head (last seq, its id and ts) of one log."""

    @abc.abstractmethod
    async def log_heads(self) -> dict[LogKey, LogState]:
        """Heads of every log (loaded once at start-up)."""

    @abc.abstractmethod
    async def last_cursor(self) -> int:
        """The highest committed cursor (0 when empty)."""

    @abc.abstractmethod
    def scan(self, after: int = 0, batch: int = 2000) -> AsyncIterator[list[StoredEvent]]:
        """Every event in cursor order, in batches (export, rebuild, verify)."""

    @abc.abstractmethod
    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read-only function on a reader connection (read models)."""

    @abc.abstractmethod
    async def backup(self, path: str) -> None:
        """Write a consistent online copy of the store to ``path``."""

    # -- federation -------------------------------------------------------------------

    @abc.abstractmethod
    async def get_checkpoint(self, pod: str) -> Checkpoint | None:
        """The stored checkpoint of peer ``pod``, if any."""

    @abc.abstractmethod
    async def set_checkpoint(self, pod: str, store: str, cursor: int, now_ms: int) -> None:
        """Record, durably, that peer ``pod``'s store ``store`` was received up to ``cursor``.

        The cursor never moves backwards for the same store; a different store id replaces
        the checkpoint (the peer's database was replaced, its cursors start over).
        """

    @abc.abstractmethod
    async def checkpoints(self) -> dict[str, Checkpoint]:
        """Every peer's checkpoint, by pod."""

    @abc.abstractmethod
    async def federation_page(
        self, after: int, *, home_pod: str, peer_pod: str, limit: int
    ) -> tuple[list[FederatedEvent], int]:
        """Events after cursor ``after`` that may go to the direct peer of pod ``peer_pod``.

        That is ``public`` events and the ``peers`` events of ``home_pod`` (never ``pod``
        scope), except those received from ``peer_pod`` itself (no echo), of any placement,
        in cursor order, at most ``limit``. The second value ``upto`` is the cursor the page
        covers: everything up to it that this peer should get is in this page or an earlier
        one (the last row's cursor when the page is full, else the last committed cursor).
        """

    @abc.abstractmethod
    async def log_ids_at(self, positions: Sequence[LogPosition]) -> dict[LogPosition, str]:
        """The id of the in-log (non-proof) event at each stored ``(pod, author, scope, seq)``.

        Positions with no stored event are absent from the answer (fork detection compares
        the ids a peer announces against these).
        """

    @abc.abstractmethod
    def missing_events(
        self, ranges: Sequence[LogPosition], *, page: int = 1000
    ) -> AsyncIterator[tuple[list[FederatedEvent], int]]:
        """For each ``(pod, author, scope, after_seq)``, that log's non-proof events with
        ``seq > after_seq``, all merged in cursor order; pages of at most ``page`` events,
        each with its last cursor. The caller passes only logs the peer may receive.
        """
