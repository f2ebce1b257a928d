"""A fresh node fed a history in chunks, as an import: the state it ends in.

The order-independence properties (``test_ingest.py``, ``test_roster_convergence.py``) feed
one history in its signing order and in a shuffled order, and compare the two states.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from node import projections
from node.ingest import Ingestor
from node.store.base import Placement
from node.store.sqlite import SQLiteStore
from protocol.envelope import Envelope
from protocol.validate import IMPORT
from tests.node.conftest import FakeClock

#: The projection hash, where each stored event was placed, and how many are still held.
State = tuple[str, dict[str, Placement], int]

#: How many times the whole history is fed again while something is still held.
REFEEDS = 6


async def placements(store: SQLiteStore) -> dict[str, Placement]:
    """Each stored event's id and where it was placed (in its log, unprojected, …)."""
    placed: dict[str, Placement] = {}
    async for batch in store.scan():
        placed.update((e.id, e.placement) for e in batch)
    return placed


async def state_of(store: SQLiteStore, ing: Ingestor) -> State:
    """What a node holds and shows, to compare two nodes (or one before and after a restart)."""
    return await store.read(projections.projection_hash), await placements(store), ing.held_count()


async def ingest_chunks(
    chunks: list[list[Envelope]], *, home_pod: str, restart: bool = False
) -> State:
    """A fresh node of ``home_pod`` fed ``chunks`` as an import, re-fed until nothing is held.

    Every event is accepted, held (``gap``) or not counted (``unauthorized``), and no log forks.
    With ``restart``, the node is stopped and started again on the same store, and must show
    the same state.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "k.db"
        store = SQLiteStore(path, extra_schema=projections.SCHEMA)
        await store.open()
        ing = Ingestor(store, home_pod=home_pod, clock=FakeClock())
        await ing.start()
        try:
            for chunk in chunks:
                results = await ing.submit(chunk, IMPORT)
                assert all(r.ok or r.reason in ("gap", "unauthorized") for r in results), results
            for _ in range(REFEEDS):
                if not ing.held_count():
                    break
                await ing.submit([e for c in chunks for e in c], IMPORT)
            assert not ing.forked_logs
            state = await state_of(store, ing)
        finally:
            await ing.stop()
            await store.close()
        if restart:
            store = SQLiteStore(path, extra_schema=projections.SCHEMA)
            await store.open()
            ing = Ingestor(store, home_pod=home_pod, clock=FakeClock())
            await ing.start()
            try:
                assert await state_of(store, ing) == state
            finally:
                await ing.stop()
                await store.close()
        return state
