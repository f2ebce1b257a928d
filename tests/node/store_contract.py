"""The storage contract: every backend subclasses ``StoreContract`` and must pass unchanged.

(Pattern from eventsourcing's ``aggregaterecorder_testcase``.)
"""

from __future__ import annotations

import abc
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.store.base import EventQuery, NewEvent, Placement, Store
from protocol.logs import LogKey, LogState


def ev(
    n: int,
    *,
    author: str = "alice",
    scope: str = "pod",
    kind: str = "need.posted",
    ts: int | None = None,
    body: str | None = '{"n":1}',
    seq: int | None = None,
    placement: Placement = Placement.LOG,
) -> NewEvent:
    return NewEvent(
        id=f"id{n:040d}",
        pod="pod1",
        author=author,
        scope=scope,
        seq=seq or n,
        ts=ts if ts is not None else 1000 + n,
        kind=kind,
        head=f'{{"n":{n}}}',
        sig="sig",
        body=body,
        placement=placement,
    )


class StoreContract(abc.ABC):
    """Behaviour every Store must have."""

    @abc.abstractmethod
    async def make_store(self, tmp_path: Path) -> Store: ...

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[Store]:
        s = await self.make_store(tmp_path)
        yield s
        await s.close()

    async def test_insert_assigns_increasing_cursors_and_ignores_duplicates(
        self, store: Store
    ) -> None:
        cursors = await store.transact(
            lambda t: [t.insert(ev(1)), t.insert(ev(2)), t.insert(ev(1))]
        )
        assert cursors[0] is not None and cursors[1] is not None
        assert cursors[1] > cursors[0]
        assert cursors[2] is None
        assert await store.last_cursor() == cursors[1]
        assert await store.known_ids([ev(1).id, ev(3).id]) == {ev(1).id}

    async def test_envelope_bytes_round_trip(self, store: Store) -> None:
        await store.transact(lambda t: t.insert(ev(1)))
        got = await store.get(ev(1).id)
        assert got is not None
        assert got.envelope == b'{"head":"{\\"n\\":1}","sig":"sig","body":"{\\"n\\":1}"}'
        assert await store.get("missing") is None

    async def test_filters(self, store: Store) -> None:
        def fill(t: object) -> None:
            t.insert(ev(1, kind="need.posted"))  # type: ignore[attr-defined]
            t.insert(ev(2, kind="need.withdrawn"))  # type: ignore[attr-defined]
            t.insert(ev(3, kind="offer.posted", author="bob", seq=1))  # type: ignore[attr-defined]
            t.insert(ev(4, kind="needy.thing", scope="public", seq=1))  # type: ignore[attr-defined]

        await store.transact(fill)
        ids = lambda rows: [r.id for r in rows]  # noqa: E731
        assert ids(await store.query(EventQuery(kinds=("need.*",)))) == [ev(1).id, ev(2).id]
        assert ids(await store.query(EventQuery(kinds=("*",)))) == [ev(n).id for n in (1, 2, 3, 4)]
        assert ids(await store.query(EventQuery(authors=("bob",)))) == [ev(3).id]
        assert ids(await store.query(EventQuery(scopes=("public",)))) == [ev(4).id]
        assert ids(await store.query(EventQuery(since=1002, until=1003))) == [ev(2).id, ev(3).id]
        first = await store.query(EventQuery(limit=2))
        assert ids(first) == [ev(1).id, ev(2).id]
        rest = await store.query(EventQuery(after=first[-1].cursor))
        assert ids(rest) == [ev(3).id, ev(4).id]
        assert ids(await store.query(EventQuery(descending=True, limit=1))) == [ev(4).id]
        assert ids(await store.query(EventQuery(ids=(ev(2).id, "x")))) == [ev(2).id]
        assert ids(await store.query(EventQuery(pods=("other",)))) == []

    async def test_log_heads(self, store: Store) -> None:
        await store.transact(
            lambda t: [t.insert(ev(1)), t.insert(ev(2)), t.insert(ev(3, author="bob", seq=1))]
        )
        heads = await store.log_heads()
        assert heads[LogKey("pod1", "alice", "pod")] == LogState(2, ev(2).id, 1002)
        assert heads[LogKey("pod1", "bob", "pod")] == LogState(1, ev(3).id, 1003)
        assert await store.log_head(LogKey("pod1", "alice", "pod")) == LogState(2, ev(2).id, 1002)
        assert await store.log_head(LogKey("pod1", "carol", "pod")) is None

    async def test_fork_proofs_do_not_take_a_log_position(self, store: Store) -> None:
        await store.transact(lambda t: t.insert(ev(1)))
        proof = ev(9, seq=1, placement=Placement.PROOF)
        assert await store.transact(lambda t: t.insert(proof)) is not None
        assert (await store.log_heads())[LogKey("pod1", "alice", "pod")].id == ev(1).id
        got = await store.get(proof.id)
        assert got is not None and got.placement == Placement.PROOF

    async def test_a_second_event_at_one_log_position_is_refused(self, store: Store) -> None:
        await store.transact(lambda t: t.insert(ev(1)))
        with pytest.raises(sqlite3.IntegrityError):
            await store.transact(lambda t: t.insert(ev(7, seq=1)))

    async def test_failed_transaction_leaves_nothing(self, store: Store) -> None:
        def boom(t: object) -> None:
            t.insert(ev(1))  # type: ignore[attr-defined]
            raise RuntimeError("disk on fire")

        with pytest.raises(RuntimeError):
            await store.transact(boom)
        assert await store.last_cursor() == 0

    async def test_heads_are_append_only(self, store: Store) -> None:
        await store.transact(lambda t: t.insert(ev(1)))
        for sql in (
            "UPDATE events SET kind = 'x'",
            "DELETE FROM events",
            "UPDATE bodies SET body = x'00'",
        ):
            with pytest.raises(sqlite3.DatabaseError):
                await store.transact(lambda t, sql=sql: t.connection.execute(sql))

    async def test_bodies_are_dropped_only_through_redaction(self, store: Store) -> None:
        await store.transact(lambda t: t.insert(ev(1)))
        with pytest.raises(sqlite3.DatabaseError):
            await store.transact(lambda t: t.drop_body(ev(1).id))

        def redact(t: object) -> bool:
            t.record_redaction(ev(1).id, "by")  # type: ignore[attr-defined]
            return t.drop_body(ev(1).id)  # type: ignore[attr-defined, no-any-return]

        assert await store.transact(redact) is True
        assert await store.transact(lambda t: t.is_redacted(ev(1).id)) is True
        got = await store.get(ev(1).id)
        assert got is not None and got.envelope.endswith(b'"body":null}')
        with pytest.raises(sqlite3.DatabaseError):
            await store.transact(lambda t: t.connection.execute("DELETE FROM redactions"))

    async def test_scan_and_backup(self, store: Store, tmp_path: Path) -> None:
        await store.transact(lambda t: [t.insert(ev(n)) for n in range(1, 8)])
        seen = [e.id async for batch in store.scan(batch=3) for e in batch]
        assert seen == [ev(n).id for n in range(1, 8)]
        target = tmp_path / "backup.db"
        await store.backup(str(target))
        conn = sqlite3.connect(target)
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 7
        conn.close()

    async def test_read_runs_on_a_reader(self, store: Store) -> None:
        await store.transact(lambda t: t.insert(ev(1)))
        count = await store.read(lambda c: c.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        assert count == 1
