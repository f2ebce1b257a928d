"""The SQLite backend runs the storage contract, plus its own durability settings."""

from __future__ import annotations

from pathlib import Path

from node.store.base import Store
from node.store.sqlite import SQLiteStore, connect_sync
from tests.node.store_contract import StoreContract


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
