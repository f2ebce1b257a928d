"""What a node offers the rooms that serve it: ``NodeContext``, and the ``StreamLimits`` it
announces.

``node.streams`` and ``node.federation`` work on a ``NodeContext``, not on ``node.app.Node``:
the node (``app``, the composition root) builds them and hands itself in, so they depend on
this small interface below them, never on the room above (no import circle). ``Node``
satisfies it structurally; mypy checks that where ``Node`` passes itself to ``Federation``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from node.access import Reader, ReportParties
from node.datadir import DataDir
from node.fanout import Fanout
from node.ingest import Ingestor
from node.store.base import Store
from protocol.crypto import SigningKey
from protocol.envelope import MAX_ENVELOPE_BYTES


class StreamLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Hard limits, announced in ``/.well-known/kith``."""

    subs_per_connection: int = 20
    filters_per_sub: int = 10
    frame_bytes: int = MAX_ENVELOPE_BYTES + 4096
    connections_per_ip: int = 256
    outbox_frames: int = 20_000
    outbox_bytes: int = 16 * 1024 * 1024
    pending_frames: int = 20_000
    backfill_page: int = 500


class NodeContext(Protocol):
    """The parts of a running node that client streams and federation use, and no more."""

    @property
    def pod(self) -> str:
        """This node's pod id."""

    @property
    def key(self) -> SigningKey:
        """The node's signing key (its identity to peers and in tokens)."""

    @property
    def datadir(self) -> DataDir:
        """The node's data directory (federation keeps ``peers.json`` there)."""

    @property
    def store(self) -> Store:
        """The event store."""

    @property
    def ingest(self) -> Ingestor:
        """The one write path: validation, the roster, log heads, commit listeners."""

    @property
    def fanout(self) -> Fanout:
        """Live delivery of committed events to stream subscriptions."""

    @property
    def stream_limits(self) -> StreamLimits:
        """The limits every client stream is held to."""

    @property
    def stream_connections(self) -> dict[str, int]:
        """Open client streams per remote address (the streams room keeps the count)."""

    def reader_for_token(
        self, token: str, *, purpose: str = "http", nonce: str | None = None
    ) -> Reader:
        """Check a member's token; raise ``InvalidToken`` (reason) when it does not hold."""

    def anonymous(self) -> Reader:
        """The reader with no token."""

    async def report_about(self, cursors: Sequence[int]) -> dict[int, ReportParties]:
        """Who filed each stored report (by cursor) and whom it is about, as people."""
