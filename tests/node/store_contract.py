"""The storage contract: every backend subclasses ``StoreContract`` and must pass unchanged.

(Pattern from eventsourcing's ``aggregaterecorder_testcase``.)
"""

from __future__ import annotations

import abc
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.store.base import Checkpoint, EventQuery, FederatedEvent, NewEvent, Placement, Store
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
    pod: str = "pod1",
    origin: str | None = None,
) -> NewEvent:
    return NewEvent(
        id=f"id{n:040d}",
        pod=pod,
        author=author,
        scope=scope,
        seq=seq or n,
        ts=ts if ts is not None else 1000 + n,
        kind=kind,
        head=f'{{"n":{n}}}',
        sig="sig",
        body=body,
        placement=placement,
        origin=origin,
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

    async def test_set_placement_moves_an_in_log_event_and_never_a_proof(
        self, store: Store
    ) -> None:
        await store.transact(lambda t: t.insert(ev(1)))
        await store.transact(lambda t: t.set_placement(ev(1).id, Placement.UNPROJECTED))
        got = await store.get(ev(1).id)
        assert got is not None and got.placement == Placement.UNPROJECTED
        await store.transact(lambda t: t.set_placement(ev(1).id, Placement.LOG))
        got = await store.get(ev(1).id)
        assert got is not None and got.placement == Placement.LOG
        proof = ev(9, seq=1, placement=Placement.PROOF)
        await store.transact(lambda t: t.insert(proof))
        with pytest.raises(sqlite3.DatabaseError):
            await store.transact(lambda t: t.set_placement(proof.id, Placement.LOG))
        with pytest.raises(sqlite3.DatabaseError):
            await store.transact(lambda t: t.set_placement(ev(1).id, Placement.PROOF))

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
            "UPDATE events SET origin = 'x'",
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

    # -- federation ---------------------------------------------------------------------

    async def test_store_id_is_random_base64url_and_kept_across_opens(
        self, store: Store, tmp_path: Path
    ) -> None:
        first = store.store_id
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", first)
        await store.close()
        again = await self.make_store(tmp_path)
        try:
            assert again.store_id == first
        finally:
            await again.close()
        other = await self.make_store(tmp_path / "elsewhere")
        try:
            assert other.store_id != first
        finally:
            await other.close()

    async def test_checkpoints_never_move_back_within_one_store(
        self, store: Store, tmp_path: Path
    ) -> None:
        assert await store.get_checkpoint("oak") is None
        assert await store.checkpoints() == {}
        await store.set_checkpoint("oak", "s1", 10, 1000)
        await store.set_checkpoint("oak", "s1", 5, 2000)  # a late, older report
        assert await store.get_checkpoint("oak") == Checkpoint(
            store="s1", cursor=10, updated_ms=2000
        )
        await store.set_checkpoint("oak", "s1", 12, 3000)
        assert await store.get_checkpoint("oak") == Checkpoint(
            store="s1", cursor=12, updated_ms=3000
        )
        # The peer's database was replaced: its cursors start over, so a lower one wins.
        await store.set_checkpoint("oak", "s2", 3, 4000)
        assert await store.get_checkpoint("oak") == Checkpoint(
            store="s2", cursor=3, updated_ms=4000
        )
        await store.set_checkpoint("elm", "s9", 7, 5000)
        await store.close()
        again = await self.make_store(tmp_path)  # durable
        try:
            assert await again.checkpoints() == {
                "oak": Checkpoint(store="s2", cursor=3, updated_ms=4000),
                "elm": Checkpoint(store="s9", cursor=7, updated_ms=5000),
            }
        finally:
            await again.close()

    async def _fill_for_federation(self, store: Store) -> dict[str, int]:
        """Events of home pod ``pod1`` and of peers ``pod2``/``pod3``; name → cursor."""
        events = {
            "home-public": ev(1, scope="public", seq=1),
            "home-peers": ev(2, scope="peers", seq=1),
            "home-pod": ev(3, scope="pod", seq=1),
            "pod2-peers": ev(4, scope="peers", seq=1, pod="pod2", origin="pod2"),
            "pod2-public": ev(5, scope="public", seq=1, pod="pod2", origin="pod2"),
            "pod3-public": ev(6, scope="public", seq=1, pod="pod3", origin="pod3"),
            "home-public-proof": ev(7, scope="public", seq=1, placement=Placement.PROOF),
            "relayed-by-pod2": ev(
                8, scope="public", seq=1, pod="pod4", origin="pod2", placement=Placement.UNPROJECTED
            ),
            "home-pod-last": ev(9, scope="pod", seq=2),
        }
        cursors = await store.transact(lambda t: [t.insert(e) for e in events.values()])
        return {name: c for name, c in zip(events, cursors, strict=True) if c is not None}

    async def test_federation_page_sends_what_a_direct_peer_may_have_and_never_echoes(
        self, store: Store
    ) -> None:
        cursors = await self._fill_for_federation(store)
        names = {c: n for n, c in cursors.items()}
        last = await store.last_cursor()

        async def page(peer: str) -> tuple[list[str], int]:
            rows, upto = await store.federation_page(0, home_pod="pod1", peer_pod=peer, limit=100)
            return [names[r.cursor] for r in rows], upto

        # Only the home pod's `peers` events; never `pod`; never what came from that peer.
        assert await page("pod2") == (
            ["home-public", "home-peers", "pod3-public", "home-public-proof"],
            last,
        )
        assert await page("pod3") == (
            [
                "home-public",
                "home-peers",
                "pod2-public",
                "home-public-proof",
                "relayed-by-pod2",
            ],
            last,
        )
        rows, _ = await store.federation_page(0, home_pod="pod1", peer_pod="pod2", limit=100)
        for row in rows:
            assert isinstance(row, FederatedEvent)
            stored = await store.get(row.id)
            assert stored is not None
            assert (row.cursor, row.pod, row.author, row.scope, row.seq, row.kind) == (
                stored.cursor,
                stored.pod,
                stored.author,
                stored.scope,
                stored.seq,
                stored.kind,
            )
            assert row.envelope == stored.envelope  # bytes exactly as stored

    async def test_federation_page_upto_covers_full_and_partial_pages(self, store: Store) -> None:
        cursors = await self._fill_for_federation(store)
        last = await store.last_cursor()
        assert last == cursors["home-pod-last"]  # the newest event is not for peers
        # A full page covers up to its last row, not beyond (more may follow).
        rows, upto = await store.federation_page(0, home_pod="pod1", peer_pod="pod2", limit=2)
        assert [r.cursor for r in rows] == [cursors["home-public"], cursors["home-peers"]]
        assert upto == cursors["home-peers"]
        # A partial page covers everything committed, skipped rows included.
        rows, upto = await store.federation_page(upto, home_pod="pod1", peer_pod="pod2", limit=2)
        assert [r.cursor for r in rows] == [cursors["pod3-public"], cursors["home-public-proof"]]
        assert upto == cursors["home-public-proof"]
        rows, upto = await store.federation_page(upto, home_pod="pod1", peer_pod="pod2", limit=2)
        assert (rows, upto) == ([], last)
        assert await store.federation_page(last, home_pod="pod1", peer_pod="pod2", limit=2) == (
            [],
            last,
        )
        # Nothing stored after ``after`` (or at all) never moves ``upto`` backwards.
        assert await store.federation_page(last + 5, home_pod="pod1", peer_pod="pod2", limit=2) == (
            [],
            last + 5,
        )
        with pytest.raises(ValueError):
            await store.federation_page(0, home_pod="pod1", peer_pod="pod2", limit=0)

    async def test_log_ids_at_reads_in_log_events_not_proofs(self, store: Store) -> None:
        def fill(t: object) -> None:
            for n in range(1, 1201):  # more than one statement's worth of positions
                t.insert(ev(n, scope="public"))  # type: ignore[attr-defined]
            t.insert(ev(5000, scope="public", seq=3, placement=Placement.PROOF))  # type: ignore[attr-defined]
            t.insert(ev(5001, scope="peers", seq=1, author="bob"))  # type: ignore[attr-defined]

        await store.transact(fill)
        positions = [("pod1", "alice", "public", n) for n in range(1, 1201)]
        missing = [("pod1", "alice", "public", 1201), ("pod1", "alice", "pod", 1)]
        got = await store.log_ids_at([*positions, *missing, ("pod1", "bob", "peers", 1)])
        assert got[("pod1", "alice", "public", 3)] == ev(3).id  # the log's event, not the proof
        assert len(got) == 1201
        assert all(got[p] == ev(p[3]).id for p in positions)
        assert got[("pod1", "bob", "peers", 1)] == ev(5001).id
        assert not set(missing) & set(got)
        assert await store.log_ids_at([]) == {}

    async def test_missing_events_merges_logs_in_cursor_order_within_seq_bounds(
        self, store: Store
    ) -> None:
        # Three logs written interleaved, plus a proof in one of them.
        def fill(t: object) -> dict[str, int]:
            out = {}
            for seq in range(1, 6):
                for author in ("alice", "bob", "carol"):
                    e = ev(len(out) + 1, author=author, scope="public", seq=seq)
                    out[e.id] = t.insert(e)  # type: ignore[attr-defined]
            proof = ev(99, author="bob", scope="public", seq=4, placement=Placement.PROOF)
            out[proof.id] = t.insert(proof)  # type: ignore[attr-defined]
            return out

        await store.transact(fill)
        everything = [e async for batch in store.scan() for e in batch]
        by_cursor = {e.cursor: e for e in everything}
        ranges = [
            ("pod1", "alice", "public", 3),  # wants seq 4, 5
            ("pod1", "bob", "public", 1),  # wants seq 2..5 (not the proof)
            ("pod1", "bob", "public", 2),  # the same log again: the lower bound wins
            ("pod1", "nobody", "public", 0),  # an unknown log: nothing
            ("pod1", "carol", "public", 5),  # up to date: nothing
        ]
        pages = [p async for p in store.missing_events(ranges, page=2)]
        rows: list[FederatedEvent] = [r for page, _ in pages for r in page]
        assert all(len(page) <= 2 for page, _ in pages)
        assert all(last == page[-1].cursor for page, last in pages)
        cursors = [r.cursor for r in rows]
        assert cursors == sorted(cursors)
        expected = {
            e.cursor
            for e in everything
            if e.placement != Placement.PROOF
            and ((e.author == "alice" and e.seq > 3) or (e.author == "bob" and e.seq > 1))
        }
        assert set(cursors) == expected and len(cursors) == len(expected) == 6
        for r in rows:
            assert r.envelope == by_cursor[r.cursor].envelope
            assert (r.id, r.pod, r.author, r.scope, r.seq, r.kind) == (
                by_cursor[r.cursor].id,
                by_cursor[r.cursor].pod,
                by_cursor[r.cursor].author,
                by_cursor[r.cursor].scope,
                by_cursor[r.cursor].seq,
                by_cursor[r.cursor].kind,
            )
        assert [p async for p in store.missing_events([])] == []
        with pytest.raises(ValueError):
            [p async for p in store.missing_events(ranges, page=0)]
