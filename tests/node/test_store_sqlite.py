"""The SQLite backend runs the storage contract, plus its own durability settings."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from node.store.base import Store
from node.store.sqlite import SCHEMA_VERSION, SQLiteStore, connect_sync
from protocol.reasons import KithError
from tests.node.store_contract import StoreContract, ev

#: The schema as released at version 1 (before ``origin`` and ``peer_checkpoints``), verbatim.
V1_SCHEMA = """
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
    body      BLOB
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
CREATE TRIGGER IF NOT EXISTS events_heads_append_only
BEFORE UPDATE OF cursor, id, pod, author, scope, seq, ts, kind, placement, prefix ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_body_only_redacted BEFORE UPDATE OF body ON events
WHEN NEW.body IS NOT NULL OR NOT EXISTS (SELECT 1 FROM redactions WHERE target = OLD.id)
BEGIN SELECT RAISE(ABORT, 'a body is dropped only through redaction, never rewritten'); END;
CREATE TRIGGER IF NOT EXISTS redactions_no_delete BEFORE DELETE ON redactions
BEGIN SELECT RAISE(ABORT, 'redactions are permanent'); END;
"""


class TestSQLiteStore(StoreContract):
    async def make_store(self, tmp_path: Path) -> Store:
        store = SQLiteStore(tmp_path / "kith.db")
        await store.open()
        return store


async def test_wal_and_full_sync(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "kith.db")
    await store.open()
    await store.close()
    conn = connect_sync(tmp_path / "kith.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    conn.close()


def _v1_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
    conn.execute(
        "INSERT INTO events (id, pod, author, scope, seq, ts, kind, placement, prefix, body)"
        " VALUES ('old', 'pod1', 'alice', 'public', 1, 1000, 'need.posted', 0,"
        ' CAST(\'{"head":"{}","sig":"s","body":\' AS BLOB), NULL)'
    )
    conn.commit()
    conn.close()


async def test_a_version_1_database_is_migrated_on_open(tmp_path: Path) -> None:
    path = tmp_path / "kith.db"
    _v1_database(path)
    store = SQLiteStore(path)
    await store.open()
    try:
        assert (store.opened_version, store.schema_version) == (1, SCHEMA_VERSION) == (1, 3)
        rows, upto = await store.federation_page(0, home_pod="pod1", peer_pod="pod2", limit=10)
        assert [r.id for r in rows] == ["old"]  # an old event is local: origin NULL
        assert rows[0].envelope == b'{"head":"{}","sig":"s","body":null}'
        assert upto == 1
        await store.transact(lambda t: t.insert(ev(2, scope="public", origin="pod2")))
        rows, _ = await store.federation_page(0, home_pod="pod1", peer_pod="pod2", limit=10)
        assert [r.id for r in rows] == ["old"]
        await store.set_checkpoint("pod2", "s", 4, 1)  # the new table exists
        sid = store.store_id
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    try:
        assert "origin" in {row[1] for row in conn.execute("PRAGMA table_info(events)")}
        [trigger] = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'events_heads_append_only'"
        ).fetchall()
        assert "origin" in trigger[0]
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE events SET origin = 'x' WHERE id = 'old'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE events SET kind = 'x' WHERE id = 'old'")
        # v3: an in-log event may become unprojected and back, never a proof (D38).
        conn.execute("UPDATE events SET placement = 2 WHERE id = 'old'")
        conn.execute("UPDATE events SET placement = 0 WHERE id = 'old'")
        with pytest.raises(sqlite3.DatabaseError, match="never to proof"):
            conn.execute("UPDATE events SET placement = 1 WHERE id = 'old'")
        conn.commit()
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        assert meta["schema_version"] == "3" and meta["store_id"] == sid
    finally:
        conn.close()
    again = SQLiteStore(path)  # opening a migrated database changes nothing
    await again.open()
    assert (again.opened_version, again.store_id) == (3, sid)
    await again.close()


async def test_a_failed_migration_leaves_the_database_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from node.store import sqlite as backend

    path = tmp_path / "kith.db"
    _v1_database(path)
    monkeypatch.setattr(backend, "_HEADS_TRIGGER", "broken trigger text")
    store = SQLiteStore(path)
    with pytest.raises(sqlite3.OperationalError):
        await store.open()
    await store.close()
    conn = sqlite3.connect(path)
    try:
        assert "origin" not in {row[1] for row in conn.execute("PRAGMA table_info(events)")}
        [trigger] = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'events_heads_append_only'"
        ).fetchall()
        assert "origin" not in trigger[0]  # the old trigger is still there, not dropped
        assert dict(conn.execute("SELECT key, value FROM meta")) == {"schema_version": "1"}
    finally:
        conn.close()
    monkeypatch.undo()
    store = SQLiteStore(path)  # and a later open migrates it
    await store.open()
    assert store.opened_version == 1
    await store.close()


async def test_a_new_database_is_created_at_the_current_version(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "kith.db")
    await store.open()
    assert (store.opened_version, store.schema_version) == (0, SCHEMA_VERSION)
    await store.close()


async def test_a_database_from_a_newer_kith_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kith.db"
    _v1_database(path)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    store = SQLiteStore(path)
    with pytest.raises(KithError, match="schema version 99, newer"):
        await store.open()
    with pytest.raises(RuntimeError):
        store.store_id  # noqa: B018
    await store.close()


def _plan(path: Path, sql: str, args: tuple[object, ...]) -> str:
    conn = sqlite3.connect(path)
    try:
        return " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
    finally:
        conn.close()


async def test_federation_reads_use_indexes_not_scans(tmp_path: Path) -> None:
    """The SQL behind the federation reads: a primary-key range, index probes, no sort."""
    store = SQLiteStore(tmp_path / "kith.db")
    await store.open()
    await store.close()
    from node.store import sqlite as backend

    page = _plan(
        store.path,
        f"SELECT {backend._FEDERATED_COLUMNS} FROM events e WHERE e.cursor > ?"
        " AND (e.scope = 'public' OR (e.scope = 'peers' AND e.pod = ?))"
        " AND (e.origin IS NULL OR e.origin != ?) ORDER BY e.cursor LIMIT ?",
        (0, "p", "q", 10),
    )
    assert "USING INTEGER PRIMARY KEY (rowid>?)" in page and "TEMP B-TREE" not in page
    ids = _plan(
        store.path,
        "WITH p (pod, author, scope, seq) AS (VALUES (?, ?, ?, ?))"
        " SELECT e.id FROM p JOIN events e ON e.pod = p.pod AND e.author = p.author"
        " AND e.scope = p.scope AND e.seq = p.seq AND e.placement != 1",
        ("p", "a", "s", 1),
    )
    assert "USING INDEX events_log" in ids and "SCAN e" not in ids


async def test_missing_events_costs_what_is_missing(tmp_path: Path) -> None:
    """20k events in 200 logs stored, 10k missing: fetched well within a second or two."""
    store = SQLiteStore(tmp_path / "kith.db")
    await store.open()
    try:

        def fill(t: object) -> None:
            n = 0
            for seq in range(1, 101):
                for a in range(200):
                    n += 1
                    t.insert(  # type: ignore[attr-defined]
                        ev(n, author=f"a{a}", scope="public", seq=seq, body=None)
                    )

        await store.transact(fill)
        ranges = [("pod1", f"a{a}", "public", 50) for a in range(200)]
        started = time.perf_counter()
        got = [r.cursor async for page, _ in store.missing_events(ranges) for r in page]
        took = time.perf_counter() - started
        assert len(got) == 10_000 and got == sorted(got)
        assert took < 2.0, took
    finally:
        await store.close()


async def test_a_backup_is_another_store_so_peers_never_skip_what_a_restore_commits(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "kith.db")
    await store.open()
    try:
        await store.transact(lambda t: [t.insert(ev(n)) for n in range(1, 4)])
        await store.backup(str(tmp_path / "backup.db"))
    finally:
        await store.close()
    restored = SQLiteStore(tmp_path / "backup.db")
    await restored.open()
    try:
        # Same events, but cursors a peer may have seen past will be reused from 3 on.
        assert await restored.last_cursor() == 3
        assert restored.store_id != store.store_id
    finally:
        await restored.close()
