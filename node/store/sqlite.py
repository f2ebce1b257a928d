"""SQLite backend: one file, WAL, ``synchronous=FULL``, append-only enforced by triggers.

Writes run as whole transactions on aiosqlite's connection thread (one thread hop per
batch, not per statement); reads use a second connection, which WAL lets run beside the
writer. The envelope is stored pre-encoded (``prefix`` + JSON-string body) so a query
returns wire bytes without re-encoding anything.
"""

from __future__ import annotations

import array
import heapq
import itertools
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import msgspec

from node.store.base import (
    Checkpoint,
    EventQuery,
    FederatedEvent,
    LogPosition,
    NewEvent,
    Placement,
    Store,
    StoredEvent,
    WireEvent,
    WriteTxn,
)
from protocol.codec import b64e
from protocol.kinds import kind_matches
from protocol.logs import LogKey, LogState
from protocol.reasons import KithError

T = TypeVar("T")

#: 2: ``events.origin`` (the peer an event came from), ``peer_checkpoints``, a ``store_id``.
#: 3: ``placement`` may move between in-log and unprojected (a late roster change, D38).
SCHEMA_VERSION = 3

# Every head column is immutable; ``origin`` too (it decides where an event may be sent).
_HEADS_TRIGGER = """events_heads_append_only
BEFORE UPDATE OF cursor, id, pod, author, scope, seq, ts, kind, prefix, origin ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;"""
# An event in its log may become unprojected and back (the roster decides, D38); a proof of a
# fork stays a proof and nothing becomes one.
_PLACEMENT_TRIGGER = """events_placement_in_log_only
BEFORE UPDATE OF placement ON events
WHEN OLD.placement = 1 OR NEW.placement NOT IN (0, 2)
BEGIN SELECT RAISE(ABORT, 'only an in-log event changes placement, and never to proof'); END;"""

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS events (
    cursor    INTEGER PRIMARY KEY AUTOINCREMENT,
    id        TEXT NOT NULL UNIQUE,
    pod       TEXT NOT NULL,
    author    TEXT NOT NULL,
    scope     TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    ts        INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    placement INTEGER NOT NULL,
    prefix    BLOB NOT NULL,
    body      BLOB,
    origin    TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS events_log ON events (pod, author, scope, seq)
    WHERE placement != 1;
CREATE INDEX IF NOT EXISTS events_kind ON events (kind, cursor);
CREATE INDEX IF NOT EXISTS events_author ON events (author, cursor);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
CREATE TABLE IF NOT EXISTS redactions (
    target TEXT PRIMARY KEY,
    by_id  TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS peer_checkpoints (
    pod        TEXT PRIMARY KEY,
    store      TEXT NOT NULL,
    cursor     INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS {_HEADS_TRIGGER}
CREATE TRIGGER IF NOT EXISTS {_PLACEMENT_TRIGGER}
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_body_only_redacted BEFORE UPDATE OF body ON events
WHEN NEW.body IS NOT NULL OR NOT EXISTS (SELECT 1 FROM redactions WHERE target = OLD.id)
BEGIN SELECT RAISE(ABORT, 'a body is dropped only through redaction, never rewritten'); END;
CREATE TRIGGER IF NOT EXISTS redactions_no_delete BEFORE DELETE ON redactions
BEGIN SELECT RAISE(ABORT, 'redactions are permanent'); END;
"""

_json = msgspec.json.Encoder()
_COLUMNS = (
    "e.cursor, e.id, e.pod, e.author, e.scope, e.seq, e.ts, e.kind, e.placement, e.prefix, e.body"
)
_FROM = "FROM events e"
# The wire object of GET /v1/events, concatenated by SQLite (no per-row Python work).
_WIRE_COLUMNS = (
    "e.cursor, e.pod, e.author, e.scope, e.kind, "
    """CAST('{"id":"' || e.id || '","cursor":' || e.cursor || ',"envelope":'"""
    """ || e.prefix || coalesce(e.body, 'null') || '}}' AS BLOB)"""
)
_FEDERATED_COLUMNS = (
    "e.cursor, e.id, e.pod, e.author, e.scope, e.seq, e.kind,"
    " CAST(e.prefix || coalesce(e.body, 'null') || '}' AS BLOB)"
)
#: Positions per statement in ``log_ids_at`` (4 parameters each, well under SQLite's limit).
_POSITIONS_PER_QUERY = 500


def envelope_prefix(head: str, sig: str) -> bytes:
    """The stored first part of an envelope: everything up to the body's value."""
    return b'{"head":' + _json.encode(head) + b',"sig":' + _json.encode(sig) + b',"body":'


def _row(row: Sequence[Any]) -> StoredEvent:
    body = row[10]
    return StoredEvent(
        cursor=row[0],
        id=row[1],
        pod=row[2],
        author=row[3],
        scope=row[4],
        seq=row[5],
        ts=row[6],
        kind=row[7],
        placement=Placement(row[8]),
        envelope=row[9] + (body if body is not None else b"null") + b"}",
    )


def connect_sync(path: str | Path) -> sqlite3.Connection:
    """A plain connection with Kith's pragmas (used by the writer thread and offline tools)."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    _pragmas(conn)
    return conn


def _wipe_wal(conn: sqlite3.Connection) -> bool:
    """Copy the WAL into the database and truncate it, so that no old page image of an erased
    body is left in the ``-wal`` file. ``False`` when a reader's snapshot kept it from finishing
    (then the next write transaction tries again)."""
    # Never wait for readers here: the writer would stall every post behind a slow read.
    conn.execute("PRAGMA busy_timeout=0")
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        conn.execute("PRAGMA busy_timeout=10000")
    return not busy


def _pragmas(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: an acknowledged commit survives power loss, not only a process crash.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA temp_store=MEMORY")
    # An erased body (a person's address) must not stay readable in free space: deleted and
    # overwritten content is zeroed on write. The WAL still holds old page images until a
    # checkpoint; ``transact`` checkpoints after a transaction that erased something.
    conn.execute("PRAGMA secure_delete=ON")


class _Txn(WriteTxn):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.kinds: set[str] = set()
        self.erased = False  # a body was dropped: the WAL must be checkpointed away

    @property
    def connection(self) -> sqlite3.Connection:
        return self._conn

    def insert(self, event: NewEvent) -> int | None:
        cur = self._conn.execute(
            # Only a repeated id is a no-op; a second event at one log position must fail loudly.
            "INSERT INTO events"
            " (id, pod, author, scope, seq, ts, kind, placement, prefix, body, origin)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            (
                event.id,
                event.pod,
                event.author,
                event.scope,
                event.seq,
                event.ts,
                event.kind,
                int(event.placement),
                envelope_prefix(event.head, event.sig),
                _json.encode(event.body) if event.body is not None else None,
                event.origin,
            ),
        )
        if cur.rowcount == 0:
            return None
        self.kinds.add(event.kind)
        return cur.lastrowid

    def drop_body(self, event_id: str) -> bool:
        cur = self._conn.execute(
            "UPDATE events SET body = NULL WHERE id = ? AND body IS NOT NULL", (event_id,)
        )
        self.erased = self.erased or cur.rowcount > 0
        return cur.rowcount > 0

    def set_placement(self, event_id: str, placement: Placement) -> None:
        self._conn.execute(
            "UPDATE events SET placement = ? WHERE id = ?", (int(placement), event_id)
        )

    def record_redaction(self, target: str, by: str) -> None:
        self._conn.execute(
            "INSERT OR IGNORE INTO redactions (target, by_id) VALUES (?, ?)", (target, by)
        )

    def is_redacted(self, target: str) -> bool:
        row = self._conn.execute("SELECT 1 FROM redactions WHERE target = ?", (target,)).fetchone()
        return row is not None


def _prepare(conn: sqlite3.Connection, extra_schema: str) -> tuple[int, int, str]:
    """Create or migrate the schema; return (version found — 0 if new —, version now, store id).

    Runs on the writer connection before anything else uses it. Each migration step is
    one ``BEGIN IMMEDIATE`` transaction that re-checks what it changes, so two processes
    opening an old database at once (``kith backup`` beside a starting node) cannot both
    apply it, and a failed step leaves the database as it was.
    """
    found = _stored_version(conn)
    if found > SCHEMA_VERSION:
        raise KithError(
            f"the database has schema version {found}, newer than this kith understands"
            f" ({SCHEMA_VERSION}); upgrade kith"
        )
    _immediate(conn, _add_origin)
    _immediate(conn, _free_placement)
    # executescript commits first, so it runs outside any step; all of it is IF NOT EXISTS.
    conn.executescript(SCHEMA + extra_schema)
    return found, SCHEMA_VERSION, _immediate(conn, _record_meta)


def _immediate(conn: sqlite3.Connection, step: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``step`` in one write transaction (rolled back if it raises)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = step(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def _add_origin(conn: sqlite3.Connection) -> None:
    """v1 → v2: ``events.origin``, and the append-only trigger recreated to cover it."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    if columns and "origin" not in columns:
        # Existing events were all received before federation: NULL (local) is the honest
        # value, and at worst one is offered back to a peer that already has it.
        conn.execute("ALTER TABLE events ADD COLUMN origin TEXT")
        conn.execute("DROP TRIGGER IF EXISTS events_heads_append_only")
        conn.execute(f"CREATE TRIGGER {_HEADS_TRIGGER}")


def _free_placement(conn: sqlite3.Connection) -> None:
    """v2 → v3: the append-only trigger no longer covers ``placement`` (its own trigger does)."""
    row = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'events_heads_append_only'"
    ).fetchone()
    if row is not None and "placement" in row[0]:
        conn.execute("DROP TRIGGER events_heads_append_only")
        conn.execute(f"CREATE TRIGGER {_HEADS_TRIGGER}")


def _new_store_id() -> str:
    """A random store id: base64url of 16 bytes."""
    return b64e(os.urandom(16))


def _record_meta(conn: sqlite3.Connection) -> str:
    """Record the schema version; make the store id on first open. Returns the store id."""
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(SCHEMA_VERSION),),
    )
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', ?)", (_new_store_id(),)
    )
    return str(conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0])


def _stored_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in ``meta`` (0 for a new, empty database)."""
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if has_meta is None:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row is not None else 0


async def _on_thread(conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` on aiosqlite's own thread with its sqlite3 connection.

    aiosqlite serialises calls on one thread per connection; handing it a whole
    function costs one thread hop for a batch of statements instead of one per statement.
    """
    result: T = await conn._execute(fn, conn._conn)  # type: ignore[no-untyped-call]
    return result


class SQLiteStore(Store):
    """The SQLite event store. ``extra_schema`` adds tables (projections) created on open."""

    def __init__(self, path: str | Path, *, extra_schema: str = "") -> None:
        self.path = Path(path)
        self._extra_schema = extra_schema
        self._writer: aiosqlite.Connection | None = None
        self._wipe_pending = False  # an erasure whose WAL checkpoint did not finish yet
        self._reader: aiosqlite.Connection | None = None
        self._kinds: set[str] = set()  # every kind stored: filters expand prefixes over it
        self._store_id: str | None = None
        #: The schema version the database had when opened, and the one it has now.
        self.opened_version = 0
        self.schema_version = 0

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await aiosqlite.connect(str(self.path), isolation_level=None)
        await _on_thread(self._writer, _pragmas)
        try:
            self.opened_version, self.schema_version, self._store_id = await _on_thread(
                self._writer, lambda conn: _prepare(conn, self._extra_schema)
            )
        except BaseException:
            await self._writer.close()
            self._writer = None
            raise
        rows = await self._writer.execute_fetchall("SELECT DISTINCT kind FROM events")
        self._kinds.update(row[0] for row in rows)
        self._reader = await aiosqlite.connect(str(self.path), isolation_level=None)
        await self._reader.execute("PRAGMA busy_timeout=10000")
        await self._reader.execute("PRAGMA query_only=1")

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    @property
    def store_id(self) -> str:
        """This database's random id (base64url of 16 bytes), kept in ``meta``."""
        if self._store_id is None:
            raise RuntimeError("store is not open")
        return self._store_id

    @property
    def _w(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise RuntimeError("store is not open")
        return self._writer

    @property
    def _r(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise RuntimeError("store is not open")
        return self._reader

    async def transact(self, fn: Callable[[WriteTxn], T]) -> T:
        def run(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                txn = _Txn(conn)
                result = fn(txn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self._kinds.update(txn.kinds)
            if txn.erased or self._wipe_pending:
                self._wipe_pending = not _wipe_wal(conn)
            return result

        return await _on_thread(self._w, run)

    async def known_ids(self, ids: Iterable[str]) -> set[str]:
        wanted = list(ids)
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = await self._r.execute_fetchall(
                f"SELECT id FROM events WHERE id IN ({marks})", chunk
            )
            found.update(row[0] for row in rows)
        return found

    async def get(self, event_id: str) -> StoredEvent | None:
        rows = list(
            await self._r.execute_fetchall(f"SELECT {_COLUMNS} {_FROM} WHERE e.id = ?", (event_id,))
        )
        return _row(rows[0]) if rows else None

    async def query(self, q: EventQuery) -> list[StoredEvent]:
        return [_row(row) for row in await self._rows(q, _COLUMNS)]

    async def query_wire(self, q: EventQuery) -> list[WireEvent]:
        """Like ``query``, but each event comes as its wire object ``{"id","cursor","envelope"}``
        assembled by SQLite from the stored bytes (the hot path of ``GET /v1/events``)."""
        rows = await self._rows(q, _WIRE_COLUMNS)
        return [WireEvent(*row) for row in rows]

    async def _rows(self, q: EventQuery, columns: str) -> list[Any]:
        kinds: tuple[str, ...] = ()
        if q.kinds:
            # Expand `need.*` into the exact kinds stored, so each reads the (kind, cursor)
            # index already in cursor order; several are merged here, never sorted by SQLite.
            kinds = tuple(
                sorted(k for k in self._kinds if any(kind_matches(p, k) for p in q.kinds))
            )
            if not kinds:
                return []
        sql, args = self._select(q, kinds[0] if len(kinds) == 1 else None, columns)
        if len(kinds) <= 1:
            return list(await self._r.execute_fetchall(sql, args))
        parts = []
        for kind in kinds:
            sql, args = self._select(q, kind, columns)
            parts.append(list(await self._r.execute_fetchall(sql, args)))
        merged = heapq.merge(*parts, key=lambda row: row[0], reverse=q.descending)
        return list(itertools.islice(merged, q.limit))

    @staticmethod
    def _select(q: EventQuery, kind: str | None, columns: str) -> tuple[str, list[Any]]:
        where: list[str] = []
        args: list[Any] = []
        for column, values in (
            ("e.id", q.ids),
            ("e.author", q.authors),
            ("e.scope", q.scopes),
            ("e.pod", q.pods),
        ):
            if values:
                where.append(f"{column} IN ({','.join('?' * len(values))})")
                args.extend(values)
        if kind is not None:
            where.append("e.kind = ?")
            args.append(kind)
        if q.since is not None:
            where.append("e.ts >= ?")
            args.append(q.since)
        if q.until is not None:
            where.append("e.ts <= ?")
            args.append(q.until)
        if q.after is not None:
            where.append("e.cursor > ?" if not q.descending else "e.cursor < ?")
            args.append(q.after)
        if q.in_log:
            where.append(f"e.placement = {int(Placement.LOG)}")
        sql = f"SELECT {columns} {_FROM}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY e.cursor {'DESC' if q.descending else 'ASC'} LIMIT ?"
        args.append(q.limit)
        return sql, args

    async def log_head(self, log: LogKey) -> LogState | None:
        rows = list(
            await self._r.execute_fetchall(
                "SELECT seq, id, ts FROM events WHERE pod = ? AND author = ? AND scope = ?"
                " AND placement != 1 ORDER BY seq DESC LIMIT 1",
                tuple(log),
            )
        )
        return LogState(*rows[0]) if rows else None

    async def log_heads(self) -> dict[LogKey, LogState]:
        rows = await self._r.execute_fetchall(
            "SELECT pod, author, scope, MAX(seq), id, ts FROM events WHERE placement != 1"
            " GROUP BY pod, author, scope"
        )
        return {LogKey(r[0], r[1], r[2]): LogState(r[3], r[4], r[5]) for r in rows}

    async def last_cursor(self) -> int:
        rows = list(await self._r.execute_fetchall("SELECT MAX(cursor) FROM events"))
        return int(rows[0][0] or 0)

    async def scan(self, after: int = 0, batch: int = 2000) -> AsyncIterator[list[StoredEvent]]:
        while True:
            events = await self.query(EventQuery(after=after, limit=batch))
            if not events:
                return
            yield events
            after = events[-1].cursor

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await _on_thread(self._r, fn)

    async def backup(self, path: str) -> None:
        target = sqlite3.connect(path)
        try:
            await self._r.backup(target)
            # A restored backup is another store: its cursors restart at the backup point,
            # and peers that checkpointed past it would silently skip what it commits next.
            # A fresh store id makes them catch up by vector instead.
            target.execute("UPDATE meta SET value = ? WHERE key = 'store_id'", (_new_store_id(),))
            # Checkpoints of peers' stores stay valid: they name *their* cursors.
            target.commit()
        finally:
            target.close()

    # -- federation -------------------------------------------------------------------

    async def get_checkpoint(self, pod: str) -> Checkpoint | None:
        rows = list(
            await self._r.execute_fetchall(
                "SELECT store, cursor, updated_ms FROM peer_checkpoints WHERE pod = ?", (pod,)
            )
        )
        return (
            Checkpoint(store=rows[0][0], cursor=rows[0][1], updated_ms=rows[0][2]) if rows else None
        )

    async def set_checkpoint(self, pod: str, store: str, cursor: int, now_ms: int) -> None:
        # Through ``transact``: the one writer connection and its commit (synchronous=FULL),
        # queued between ingest's groups rather than contending with them for the lock.
        def write(txn: WriteTxn) -> None:
            txn.connection.execute(
                "INSERT INTO peer_checkpoints (pod, store, cursor, updated_ms)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (pod) DO UPDATE SET"
                # SET expressions all read the old row: same store → never backwards.
                " cursor = CASE WHEN store = excluded.store"
                " THEN max(cursor, excluded.cursor) ELSE excluded.cursor END,"
                " store = excluded.store, updated_ms = excluded.updated_ms",
                (pod, store, cursor, now_ms),
            )

        await self.transact(write)

    async def checkpoints(self) -> dict[str, Checkpoint]:
        rows = await self._r.execute_fetchall(
            "SELECT pod, store, cursor, updated_ms FROM peer_checkpoints"
        )
        return {r[0]: Checkpoint(store=r[1], cursor=r[2], updated_ms=r[3]) for r in rows}

    async def federation_page(
        self, after: int, *, home_pod: str, peer_pod: str, limit: int
    ) -> tuple[list[FederatedEvent], int]:
        if limit < 1:
            raise ValueError("limit must be at least 1")  # an empty page would claim coverage

        def page(conn: sqlite3.Connection) -> tuple[list[FederatedEvent], int]:
            # One read transaction: ``upto`` must describe the same snapshot as the rows.
            conn.execute("BEGIN")
            try:
                # A range scan of the primary key in cursor order (no sort); rows the peer
                # may not get are skipped as they are read.
                rows = conn.execute(
                    f"SELECT {_FEDERATED_COLUMNS} {_FROM} WHERE e.cursor > ?"
                    " AND (e.scope = 'public' OR (e.scope = 'peers' AND e.pod = ?))"
                    " AND (e.origin IS NULL OR e.origin != ?)"
                    " ORDER BY e.cursor LIMIT ?",
                    (after, home_pod, peer_pod, limit),
                ).fetchall()
                if len(rows) == limit:
                    upto = int(rows[-1][0])
                else:
                    last = conn.execute("SELECT MAX(cursor) FROM events").fetchone()[0]
                    upto = max(after, int(last or 0))
            finally:
                conn.execute("COMMIT")
            return [FederatedEvent._make(row) for row in rows], upto

        return await _on_thread(self._r, page)

    async def log_ids_at(self, positions: Sequence[LogPosition]) -> dict[LogPosition, str]:
        wanted = list(positions)

        def lookup(conn: sqlite3.Connection) -> dict[LogPosition, str]:
            found: dict[LogPosition, str] = {}
            for start in range(0, len(wanted), _POSITIONS_PER_QUERY):
                chunk = wanted[start : start + _POSITIONS_PER_QUERY]
                # The positions as a VALUES list joined to events: one events_log index
                # probe per position (the reader is query_only, so no temp table).
                values = ",".join("(?, ?, ?, ?)" for _ in chunk)
                rows = conn.execute(
                    f"WITH p (pod, author, scope, seq) AS (VALUES {values})"
                    " SELECT e.pod, e.author, e.scope, e.seq, e.id FROM p JOIN events e"
                    " ON e.pod = p.pod AND e.author = p.author AND e.scope = p.scope"
                    " AND e.seq = p.seq AND e.placement != 1",
                    [v for position in chunk for v in position],
                ).fetchall()
                for pod, author, scope, seq, event_id in rows:
                    found[(pod, author, scope, seq)] = event_id
            return found

        return await _on_thread(self._r, lookup)

    async def missing_events(
        self, ranges: Sequence[LogPosition], *, page: int = 1000
    ) -> AsyncIterator[tuple[list[FederatedEvent], int]]:
        """See ``Store.missing_events``. Two passes, both proportional to what is missing:

        1. For each range, read the cursors of its missing events from the ``events_log``
           index alone (it covers ``cursor``, the rowid): an index seek plus a short range.
           All cursors go into one compact array, sorted once — that merges the logs into
           cursor order.
        2. Fetch the rows a page at a time by primary key.

        Memory is the cursor array (8 bytes per missing event) plus one page. No read
        transaction is held between pages (a slow peer must not pin the WAL); events are
        append-only, so a cursor found in pass 1 is still there in pass 2.
        """
        if page < 1:
            raise ValueError("page must be at least 1")
        # One range per log (the lowest after_seq), so no cursor is found twice.
        wanted: dict[tuple[str, str, str], int] = {}
        for pod, author, scope, after_seq in ranges:
            key = (pod, author, scope)
            wanted[key] = min(after_seq, wanted.get(key, after_seq))

        def cursors(conn: sqlite3.Connection) -> array.array[int]:
            found = array.array("q")
            conn.execute("BEGIN")
            try:
                for (pod, author, scope), after_seq in wanted.items():
                    rows = conn.execute(
                        "SELECT cursor FROM events INDEXED BY events_log"
                        " WHERE pod = ? AND author = ? AND scope = ? AND seq > ?"
                        " AND placement != 1",
                        (pod, author, scope, after_seq),
                    )
                    found.extend(row[0] for row in rows)
            finally:
                conn.execute("COMMIT")
            return array.array("q", sorted(found))

        all_cursors = await _on_thread(self._r, cursors)
        for start in range(0, len(all_cursors), page):
            chunk = all_cursors[start : start + page].tolist()

            def fetch(conn: sqlite3.Connection, chunk: list[int] = chunk) -> list[FederatedEvent]:
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT {_FEDERATED_COLUMNS} {_FROM} WHERE e.cursor IN ({marks})"
                    " ORDER BY e.cursor",
                    chunk,
                ).fetchall()
                return [FederatedEvent._make(row) for row in rows]

            events = await _on_thread(self._r, fetch)
            yield events, chunk[-1]
