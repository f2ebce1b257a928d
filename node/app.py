"""The node: composition root wiring store, ingest, roster and read models together."""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

import msgspec

from node import projections
from node.access import ANONYMOUS, Reader, ReportParties, report_parties
from node.clientaddr import TrustedProxies
from node.context import StreamLimits
from node.datadir import Config, DataDir, KeyFile
from node.erasure import ErasureDuties
from node.fanout import Fanout
from node.federation import Federation
from node.ingest import Ingestor
from node.metrics import NodeCollector, NodeMetrics
from node.overflow import Duties
from node.projections import reports
from node.store.sqlite import SQLiteStore
from protocol.crypto import SigningKey
from protocol.reasons import InvalidToken, KithError
from protocol.tokens import check_token

VERSION = "0.1.0"


class DataDirInUse(KithError):
    """Another process (a running ``kith serve``, most often) holds the data directory."""


class Node:
    """One running pod node. ``await node.start()``, serve, ``await node.stop()``."""

    def __init__(self, datadir: DataDir, *, config: Config | None = None) -> None:
        self.datadir = datadir
        self.config = config or datadir.config()
        self.key_file: KeyFile = datadir.node_key()
        self.key: SigningKey = self.key_file.signing_key()
        self.trusted_proxies = TrustedProxies.parse(self.config.trusted_proxies)
        self.executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kith-verify")
        self.store = SQLiteStore(datadir.db_path, extra_schema=projections.SCHEMA)
        self.ingest = Ingestor(
            self.store,
            home_pod=self.config.pod,
            executor=self.executor,
            roster_scope=self.config.roster_scope,
        )
        self.fanout = Fanout(about=self.report_about)
        self.ingest.listeners.append(self.fanout.enqueue)
        self.stream_limits = StreamLimits(
            subs_per_connection=self.config.stream_subs_per_connection,
            connections_per_ip=self.config.stream_connections_per_ip,
            outbox_frames=self.config.stream_outbox_frames,
            outbox_bytes=self.config.stream_outbox_bytes,
            pending_frames=self.config.stream_outbox_frames,
        )
        self.stream_connections: dict[str, int] = {}
        self.federation = Federation(self)
        self.overflow = Duties(pod=self.pod, key=self.key, ingest=self.ingest, store=self.store)
        self.erasure = ErasureDuties(
            pod=self.pod,
            key=self.key,
            ingest=self.ingest,
            store=self.store,
            peers=lambda: [entry.pod for entry in self.federation.peers],
            retention_days=self.retention_days,
        )
        self.metrics = NodeMetrics(
            NodeCollector(
                ingest=self.ingest,
                federation=self.federation,
                fanout=self.fanout,
                overflow=self.overflow,
                duties=(self.overflow, self.erasure),
                stream_connections=self.stream_connections,
                db_path=datadir.db_path,
            )
        )
        self.started_ms = int(time.time() * 1000)
        self._hash_cache: tuple[int, str] | None = None
        self._hash_lock = asyncio.Lock()
        self._lock: IO[str] | None = None

    @property
    def pod(self) -> str:
        """This node's pod id."""
        return self.config.pod

    async def start(self) -> None:
        """Take the data directory's lock, open the store and start the writer.

        One writer per database: the lock stops a second `kith serve`, or an offline
        `kith member add`/`import`/`verify`, from writing beside a running node (whose
        in-memory log heads would go stale).
        """
        self.take_lock()
        await self.store.open()
        await self.ingest.start()
        self.fanout.published = await self.store.last_cursor()

    async def stop(self) -> None:
        """Finish queued writes and close."""
        await self.overflow.stop()  # if serving started it (an offline command never does)
        await self.erasure.stop()
        await self.ingest.stop()
        await self.fanout.stop()
        await self.store.close()
        self.executor.shutdown(wait=False)
        self.release_lock()

    def take_lock(self) -> None:
        """Hold the data directory's lock (``node.lock``, which names the holder's pid) until
        ``stop``; a ``KithError`` naming the holder if another process has it. Idempotent:
        ``kith serve`` takes it before binding its port, ``start`` then keeps it."""
        if self._lock is not None:
            return
        lock = open(self.datadir.path / "node.lock", "a+")  # noqa: SIM115
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.seek(0)
            pid = lock.read().strip()
            lock.close()
            holder = f" (pid {pid})" if pid.isdigit() else ""
            raise DataDirInUse(
                f"{self.datadir.path} is in use by another kith process{holder}, a running"
                " `kith serve`? Stop the other node first (Ctrl-C where it runs"
                + (f", or `kill {pid}`" if pid.isdigit() else "")
                + "), then run this again"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        self._lock = lock

    def release_lock(self) -> None:
        """Let go of the data directory's lock (nothing if not held)."""
        if self._lock is not None:
            self._lock.truncate(0)
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def retention_days(self) -> int | None:
        """The pod's retention of closed needs' details, as config.json says now (``kith
        retention set`` edits it while the node runs); ``None``: kept."""
        try:
            return self.datadir.config().retention_days
        except KithError:  # pragma: no cover - a damaged config keeps the last setting
            return self.config.retention_days

    def reader_for_token(
        self, token: str, *, purpose: str = "http", nonce: str | None = None
    ) -> Reader:
        """Check a member's token; raise ``InvalidToken`` (reason) when it does not hold."""
        claims = check_token(
            token,
            purpose=purpose,
            node_key=self.key.public_b64,
            now_ms=self.ingest.now_ms(),
            expected_nonce=nonce,
        )
        roster = self.ingest.roster.pods.get(self.pod)
        role = roster.role_of(claims.author) if roster is not None else None
        person = roster.person_of(claims.author) if roster is not None else None
        if role is None or person is None or roster is None or not roster.is_active(claims.author):
            raise InvalidToken(
                "unauthorized",
                "the token's key is not an active member of this pod (not added yet, removed or"
                " blocked): a coordinator adds a key with `kith member add --key-file KEY`, or"
                " invites with `kith invite create`",
            )
        return Reader(person=person, role=role, pod=self.pod)

    def anonymous(self) -> Reader:
        """The reader with no token."""
        return ANONYMOUS

    async def report_about(self, cursors: Sequence[int]) -> dict[int, ReportParties]:
        """Who filed each stored report (by cursor) and whom it is about, as people: for
        ``may_read``."""
        if not cursors:
            return {}
        raw = await self.store.read(lambda conn: reports.about_by_cursor(conn, cursors))
        roster = self.ingest.roster.pods.get(self.pod)
        return report_parties(raw, roster.person_of if roster is not None else lambda _: None)

    async def projection_hash(self) -> str:
        """The projection hash, recomputed only after new commits."""
        async with self._hash_lock:
            cursor = await self.store.last_cursor()
            if self._hash_cache is None or self._hash_cache[0] != cursor:
                value = await self.store.read(projections.projection_hash)
                self._hash_cache = (cursor, value)
            return self._hash_cache[1]

    async def info(self) -> dict[str, Any]:
        """The ``/.well-known/kith`` document."""
        from protocol.envelope import MAX_BODY_BYTES, MAX_HEAD_BYTES
        from protocol.kinds import KNOWN_KINDS
        from protocol.validate import CLIENT_CLOCK_SKEW_MS

        roster = self.ingest.roster.pods.get(self.pod)
        return {
            "pod": self.pod,
            "name": roster.name if roster is not None and roster.name else self.config.name,
            "node_key": self.key.public_b64,
            "roster_scope": self.config.roster_scope,
            "version": VERSION,
            "protocol": 1,
            "limits": {
                "head_bytes": MAX_HEAD_BYTES,
                "body_bytes": MAX_BODY_BYTES,
                "request_bytes": self.config.max_request_bytes,
                "batch_events": self.config.max_batch,
                "client_clock_skew_ms": CLIENT_CLOCK_SKEW_MS,
                "page_events": 10_000,
            },
            "kinds": sorted(KNOWN_KINDS),
            "cursor": await self.store.last_cursor(),
            "projection_hash": await self.projection_hash(),
            "timebank_limit_minutes": self.config.timebank_limit_minutes,
            "streams": msgspec.to_builtins(self.stream_limits),
            "held_events": self.ingest.held_count(),
            "federation": self.federation.info(),
            "forked_logs": len(self.ingest.forked_logs),
        }
