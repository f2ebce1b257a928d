"""Ingest against a real SQLite store: every outcome of DESIGN §2's check order, the roster
rules of §3, erasure (§4), group commit, and order independence (a property test)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node import projections
from node.ingest import Committed, Ingestor, Result
from node.projections.effects import applied
from node.store.base import Placement
from node.store.sqlite import SQLiteStore
from protocol.codec import b64e
from protocol.crypto import SigningKey
from protocol.envelope import MAX_ENVELOPE_BYTES, Envelope, encode_envelope
from protocol.logs import LogKey, LogState
from protocol.validate import CLIENT, IMPORT, from_peer
from tests.node.arrival import ingest_chunks, placements
from tests.node.conftest import NOW_MS, FakeClock, PodBuilder, event_id, signing_key

# --- helpers ---------------------------------------------------------------------------

POSTED = applied("need posted")


async def stored_body(store: SQLiteStore, eid: str) -> Any:
    """The body text of a stored event as served (``None`` when erased or never had one)."""
    stored = await store.get(eid)
    assert stored is not None, "event not stored"
    return msgspec.json.decode(stored.envelope)["body"]


async def need_view(store: SQLiteStore, eid: str) -> projections.NeedView | None:
    return await store.read(lambda c: projections.get_need(c, eid, now_ms=NOW_MS))


async def all_ids(store: SQLiteStore) -> set[str]:
    ids: set[str] = set()
    async for batch in store.scan():
        ids.update(e.id for e in batch)
    return ids


def stored_ok(result: Result) -> bool:
    """Stored now as a normal event (not a duplicate, proof or hold)."""
    return result.ok and result.reason is None


@pytest.fixture
async def members(ingestor: Ingestor, pod: PodBuilder) -> PodBuilder:
    """A live pod: genesis, Ada and Bo (members), Cy (coordinator), each with a first need."""
    envs = [
        *pod.genesis(),
        pod.add("ada"),
        pod.add("bo"),
        pod.add("cy", "coordinator"),
    ]
    for person in ("ada", "bo", "cy"):
        envs.append(pod.need(pod.key(person), f"{person}'s first"))
        pod.named[f"{person}'s first"] = event_id(envs[-1])
    results = await ingestor.submit(envs, CLIENT)
    assert all(stored_ok(r) for r in results), results
    return pod


# --- accept and duplicate --------------------------------------------------------------


async def test_accept_stores_projects_and_advances_the_log(
    ingestor: Ingestor, store: SQLiteStore, members: PodBuilder
) -> None:
    pod = members
    ada = pod.key("ada")
    env = pod.need(ada, "Groceries", area="Elm & 5th")
    [result] = await ingestor.submit([env], CLIENT)
    eid = event_id(env)
    assert result == Result(id=eid, ok=True, effect=POSTED)
    stored = await store.get(eid)
    assert stored is not None and stored.placement == Placement.LOG
    assert stored.envelope == encode_envelope(env)  # the exact bytes, not a re-encoding
    view = await need_view(store, eid)
    assert view is not None and view.title == "Groceries" and view.author == ada.public_b64
    key = LogKey(pod.id, ada.public_b64, "pod")
    assert ingestor.heads[key] == LogState(2, eid, msgspec.json.decode(env.head)["ts"])
    assert await store.log_head(key) == ingestor.heads[key]
    assert ingestor.counters["accepted"] >= 1


async def test_every_input_form_is_accepted(ingestor: Ingestor, members: PodBuilder) -> None:
    pod = members
    ada = pod.key("ada")
    as_env, as_bytes, as_str = pod.need(ada, "a"), pod.need(ada, "b"), pod.need(ada, "c")
    results = await ingestor.submit(
        [as_env, encode_envelope(as_bytes), encode_envelope(as_str).decode()], CLIENT
    )
    assert [r.id for r in results] == [event_id(e) for e in (as_env, as_bytes, as_str)]
    assert all(stored_ok(r) for r in results)


async def test_duplicate_is_found_before_the_signature(
    ingestor: Ingestor, store: SQLiteStore, members: PodBuilder
) -> None:
    pod = members
    env = pod.need(pod.key("ada"))
    assert stored_ok((await ingestor.submit([env], CLIENT))[0])
    cursor = await store.last_cursor()
    # Same head (same id), signature destroyed: known by id, so never even verified.
    broken = Envelope(env.head, b64e(bytes(64)), env.body)
    results = await ingestor.submit([env, broken], CLIENT)
    assert [(r.ok, r.reason) for r in results] == [(True, "duplicate"), (True, "duplicate")]
    assert await store.last_cursor() == cursor


async def test_repeats_inside_one_batch_are_duplicates_not_forks(
    ingestor: Ingestor, store: SQLiteStore, members: PodBuilder
) -> None:
    """A repeat of an event queued earlier in the same group, behind a later event of its log."""
    pod = members
    ada, bo = pod.key("ada"), pod.key("bo")
    a1, a2 = pod.need(ada, "one"), pod.need(ada, "two")
    results = await ingestor.submit([a1, a2, a1], IMPORT)
    assert [(r.ok, r.reason) for r in results] == [(True, None), (True, None), (True, "duplicate")]
    assert ingestor.forked_logs == set()
    b1, b2 = pod.need(bo, "one"), pod.need(bo, "two")
    results = await ingestor.submit([b1, b2, b1], CLIENT)
    assert [(r.ok, r.reason) for r in results] == [(True, None), (True, None), (True, "duplicate")]
    stored = await store.get(event_id(a1))
    assert stored is not None and stored.placement == Placement.LOG


async def test_concurrent_repeats_from_two_submitters_do_not_flag_a_fork(
    ingestor: Ingestor, members: PodBuilder
) -> None:
    pod = members
    ada = pod.key("ada")
    a1, a2 = pod.need(ada, "one"), pod.need(ada, "two")
    first, second = await asyncio.gather(
        ingestor.submit([a1, a2], IMPORT), ingestor.submit([a1], IMPORT)
    )
    assert first == [
        Result(id=event_id(a1), ok=True, effect=POSTED),
        Result(id=event_id(a2), ok=True, effect=POSTED),
    ]
    assert second[0].ok and second[0].reason in (None, "duplicate")
    assert ingestor.forked_logs == set()


# --- rejections ------------------------------------------------------------------------

Make = Callable[[PodBuilder], Any]


def _tampered_sig(pod: PodBuilder) -> Envelope:
    env = pod.need(pod.key("ada"), advance=False)
    other = pod.need(pod.key("ada"), "other", advance=False)
    return Envelope(env.head, other.sig, env.body)


def _tampered_body(pod: PodBuilder) -> Envelope:
    env = pod.need(pod.key("ada"), "Soup", advance=False)
    assert env.body is not None
    return Envelope(env.head, env.sig, env.body.replace("Soup", "Stew"))


def _before_prev(pod: PodBuilder) -> Envelope:
    bo = pod.key("bo")
    prev_ts = pod.logs[LogKey(pod.id, bo.public_b64, "pod")].ts
    return pod.sign(
        bo,
        "need.posted",
        {"title": "x", "category": "food", "urgency": "low"},
        ts=prev_ts - 5,
        advance=False,
    )


REJECTIONS: dict[str, tuple[Any, Make, str]] = {
    "too-large": (CLIENT, lambda p: b'{"head":"' + b"x" * MAX_ENVELOPE_BYTES + b'"}', "too-large"),
    "not-json": (CLIENT, lambda p: b"{not json", "invalid:envelope:json"),
    "missing-sig": (
        CLIENT,
        lambda p: b'{"head":"{}","body":null}',
        "invalid:envelope:missing:sig",
    ),
    "head-prev": (
        CLIENT,
        lambda p: p.sign(p.key("ada"), "need.posted", None, seq=1, prev=p.id, advance=False),
        "invalid:head:prev",
    ),
    "sig-encoding": (
        CLIENT,
        lambda p: Envelope(p.need(p.key("ada"), advance=False).head, "AAAA", None),
        "invalid:sig:encoding",
    ),
    "bad-sig": (CLIENT, _tampered_sig, "invalid:sig"),
    "body-hash": (CLIENT, _tampered_body, "invalid:body:hash"),
    "ts-skew": (
        CLIENT,
        lambda p: p.sign(p.key("ada"), "need.posted", None, ts=NOW_MS - 11 * 60_000, advance=False),
        "invalid:ts:skew",
    ),
    "ts-before-prev": (CLIENT, _before_prev, "invalid:ts:before-prev"),
    "out-of-scope-client": (
        CLIENT,
        lambda p: PodBuilder("oak").need(signing_key("oak:zed")),
        "out-of-scope",
    ),
    "out-of-scope-peer-pod": (
        from_peer("x"),
        lambda p: p.need(p.key("ada"), advance=False),
        "out-of-scope",
    ),
    "out-of-scope-peer-peers": (
        from_peer("someone-else"),
        lambda p: p.sign(p.key("ada"), "need.posted", None, scope="peers"),
        "out-of-scope",
    ),
    "out-of-scope-import": (
        IMPORT,
        lambda p: PodBuilder("oak").need(signing_key("oak:zed")),
        "out-of-scope",
    ),
    "unauthorized-stranger": (
        CLIENT,
        lambda p: p.need(signing_key("stranger")),
        "unauthorized",
    ),
    "unauthorized-roster-by-member": (
        CLIENT,
        lambda p: p.add("zed", by=p.key("ada")),
        "unauthorized",
    ),
    "body-schema": (
        CLIENT,
        lambda p: p.sign(
            p.key("ada"), "need.posted", {"category": "food", "urgency": "low"}, advance=False
        ),
        "invalid:body:missing:title",
    ),
}


@pytest.mark.parametrize("case", sorted(REJECTIONS))
async def test_every_rejection_reaches_its_result(
    case: str, ingestor: Ingestor, store: SQLiteStore, members: PodBuilder
) -> None:
    source, make, reason = REJECTIONS[case]
    cursor = await store.last_cursor()
    [result] = await ingestor.submit([make(members)], source)
    assert not result.ok
    assert result.reason == reason
    assert result.message and result.message != reason  # a human explanation too
    assert await store.last_cursor() == cursor  # nothing stored
    assert ingestor.counters[reason.split(":")[0]] == 1


async def test_bad_events_in_a_batch_do_not_affect_good_ones(
    ingestor: Ingestor, store: SQLiteStore, members: PodBuilder
) -> None:
    pod = members
    dee = pod.key("dee")
    assert stored_ok((await ingestor.submit([pod.add("dee")], CLIENT))[0])
    items: list[Any] = []
    expected: list[tuple[bool, str | None]] = []
    for case in sorted(REJECTIONS):
        source, make, reason = REJECTIONS[case]
        if source is not CLIENT:
            continue
        items.append(pod.need(dee, f"good before {case}"))
        expected.append((True, None))
        items.append(make(pod))
        expected.append((False, reason))
    items.append(pod.need(dee, "last good"))
    expected.append((True, None))
    results = await ingestor.submit(items, CLIENT)
    assert [(r.ok, r.reason) for r in results] == expected
    good = [r.id for r in results if r.ok]
    assert all(eid is not None for eid in good)
    assert await store.known_ids(e for e in good if e) == set(good)
    head = ingestor.heads[LogKey(pod.id, dee.public_b64, "pod")]
    assert head.seq == len(good) and head.id == good[-1]


async def test_empty_and_all_bad_submissions(ingestor: Ingestor) -> None:
    assert await ingestor.submit([], CLIENT) == []
    [result] = await ingestor.submit([b"[]"], CLIENT)
    assert result.id is None and result.reason is not None
    assert result.reason.startswith("invalid:envelope")


async def test_signatures_of_a_large_batch_are_checked_on_the_pool(
    store: SQLiteStore, pod: PodBuilder, make_ingestor: Callable[..., Any]
) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        ing: Ingestor = await make_ingestor(executor=pool)
        ada = pod.key("ada")
        envs: list[Envelope] = [*pod.genesis(), pod.add("ada")]
        envs += [pod.need(ada, f"need {i}") for i in range(40)]
        bad = Envelope(envs[10].head, envs[11].sig, envs[10].body)
        results = await ing.submit([*envs[:10], bad, *envs[11:]], CLIENT)
        assert results[10].reason == "invalid:sig"
        # The rest of Ada's log waits for the event whose signature was bad.
        assert [r.reason for r in results[11:]] == ["gap"] * (len(envs) - 11)
        assert all(stored_ok(r) for r in results[:10])
        results = await ing.submit([envs[10]], CLIENT)
        assert stored_ok(results[0])
        assert ing.held_count() == 0
        assert await store.known_ids(event_id(e) for e in envs) == {event_id(e) for e in envs}
        await ing.stop()


# --- forks -----------------------------------------------------------------------------


async def test_client_fork_is_refused_with_the_log_head(
    ingestor: Ingestor, store: SQLiteStore, members: PodBuilder
) -> None:
    pod = members
    ada = pod.key("ada")
    first = pod.need(ada, "first")
    assert stored_ok((await ingestor.submit([first], CLIENT))[0])
    key = LogKey(pod.id, ada.public_b64, "pod")
    seq = pod.logs[key].seq
    other = pod.sign(
        ada,
        "need.posted",
        {"title": "rival", "category": "food", "urgency": "low"},
        seq=seq,
        prev=msgspec.json.decode(first.head)["prev"],
        advance=False,
    )
    cursor = await store.last_cursor()
    [result] = await ingestor.submit([other], CLIENT)
    assert (result.ok, result.reason) == (False, "fork")
    assert result.message
    assert result.head == {
        "seq": seq,
        "id": event_id(first),
        "ts": msgspec.json.decode(first.head)["ts"],
    }
    assert await store.last_cursor() == cursor
    assert ingestor.forked_logs == set()


@pytest.mark.parametrize("via", ["peer", "import"])
async def test_relayed_fork_is_kept_as_proof_and_flags_the_log(
    via: str, ingestor: Ingestor, store: SQLiteStore
) -> None:
    oak = PodBuilder("oak")
    zed = oak.key("zed")
    source = from_peer(oak.id) if via == "peer" else IMPORT
    scope = "peers" if via == "peer" else "public"
    setup = [*oak.genesis(), oak.add("zed")]
    assert all(stored_ok(r) for r in await ingestor.submit(setup, source))
    body = {"title": "first", "category": "food", "urgency": "low"}
    first = oak.sign(zed, "need.posted", body, scope=scope)
    rival = oak.sign(
        zed, "need.posted", {**body, "title": "rival"}, scope=scope, seq=1, prev=None, advance=False
    )
    assert stored_ok((await ingestor.submit([first], source))[0])
    [result] = await ingestor.submit([rival], source)
    assert (result.ok, result.reason) == (True, "fork")
    assert result.message
    key = LogKey(oak.id, zed.public_b64, scope)
    assert ingestor.forked_logs == {key}
    proof = await store.get(event_id(rival))
    assert proof is not None and proof.placement == Placement.PROOF
    assert await need_view(store, event_id(rival)) is None  # never projected
    assert await need_view(store, event_id(first)) is not None
    assert ingestor.heads[key].id == event_id(first)  # the log still ends at the first
    [again] = await ingestor.submit([rival], source)
    assert again.reason == "duplicate"


# --- gaps and held events --------------------------------------------------------------


@pytest.mark.parametrize("source", [CLIENT, IMPORT], ids=["client", "import"])
async def test_gap_is_held_then_released_when_the_missing_event_arrives(
    source: Any, ingestor: Ingestor, store: SQLiteStore, members: PodBuilder
) -> None:
    pod = members
    ada = pod.key("ada")
    missing, later, latest = pod.need(ada, "2"), pod.need(ada, "3"), pod.need(ada, "4")
    results = await ingestor.submit([latest, later], source)
    assert [(r.ok, r.reason) for r in results] == [(False, "gap"), (False, "gap")]
    assert all(r.message and "seq 2" in r.message for r in results)
    assert ingestor.held_count() == 2
    assert not await store.known_ids([event_id(later), event_id(latest)])
    key = LogKey(pod.id, ada.public_b64, "pod")
    assert ingestor.heads[key].seq == 1
    # Holding the same event again does not count it twice.
    await ingestor.submit([later], source)
    assert ingestor.held_count() == 2
    [result] = await ingestor.submit([missing], source)
    assert stored_ok(result)
    assert ingestor.held_count() == 0
    assert await store.known_ids(event_id(e) for e in (missing, later, latest)) == {
        event_id(e) for e in (missing, later, latest)
    }
    assert ingestor.heads[key] == LogState(4, event_id(latest), pod.logs[key].ts)
    assert await store.log_head(key) == ingestor.heads[key]
    assert (await need_view(store, event_id(latest))) is not None


async def test_held_events_from_a_peer_count_as_received_from_it_once_stored(
    ingestor: Ingestor, members: PodBuilder
) -> None:
    """A relayed event held for a gap is stored when the gap fills: the peer's received count
    (``/.well-known/kith`` federation) must include it, though its frame answered "gap"."""
    from protocol.validate import Source

    pod = members
    ada = pod.key("ada")
    body = {"title": "Soup", "category": "food", "urgency": "normal"}
    two, three, four = (pod.sign(ada, "need.posted", body, scope="public") for _ in range(3))
    oak, elm = Source("peer", "oak"), Source("peer", "elm")
    assert [r.reason for r in await ingestor.submit([three, four], oak)] == ["gap", "gap"]
    assert ingestor.released_from == {}
    await ingestor.submit([four], elm)  # held again from another peer: one copy counts
    assert stored_ok((await ingestor.submit([two], elm))[0])
    assert ingestor.released_from == {"oak": 2}
    assert ingestor.held_count() == 0


async def test_a_held_event_stored_by_another_path_is_settled(
    ingestor: Ingestor, store: SQLiteStore, members: PodBuilder
) -> None:
    pod = members
    ada = pod.key("ada")
    two, three = pod.need(ada, "2"), pod.need(ada, "3")
    assert (await ingestor.submit([three], IMPORT))[0].reason == "gap"
    # The whole stretch arrives again in one batch: both stored in order.
    results = await ingestor.submit([two, three], IMPORT)
    assert all(stored_ok(r) for r in results)
    # The held copy of 3 must not wait for an expiry that may never come.
    assert ingestor.held_count() == 0
    assert ingestor.forked_logs == set()


async def test_gap_of_an_empty_log(ingestor: Ingestor, members: PodBuilder) -> None:
    pod = members
    dee = pod.key("dee")
    assert stored_ok((await ingestor.submit([pod.add("dee")], CLIENT))[0])
    one, two = pod.need(dee, "1"), pod.need(dee, "2")
    [held] = await ingestor.submit([two], CLIENT)
    assert held.reason == "gap" and held.message is not None and "seq 1" in held.message
    assert stored_ok((await ingestor.submit([one], CLIENT))[0])
    assert ingestor.held_count() == 0


async def test_unknown_author_from_client_is_unauthorized(
    ingestor: Ingestor, members: PodBuilder
) -> None:
    [result] = await ingestor.submit([members.need(members.key("eve"))], CLIENT)
    assert (result.ok, result.reason) == (False, "unauthorized")
    assert ingestor.held_count() == 0


@pytest.mark.parametrize("via", ["peer", "import"])
async def test_unknown_author_from_import_or_peer_waits_for_the_roster(
    via: str, ingestor: Ingestor, store: SQLiteStore, members: PodBuilder
) -> None:
    pod = members
    eve = pod.key("eve")
    source = from_peer(pod.id) if via == "peer" else IMPORT
    scope = "peers" if via == "peer" else "pod"
    env = pod.sign(
        eve, "need.posted", {"title": "t", "category": "food", "urgency": "low"}, scope=scope
    )
    [result] = await ingestor.submit([env], source)
    assert (result.ok, result.reason) == (False, "unauthorized")
    assert result.message and "held" in result.message
    assert ingestor.held_count() == 1
    assert not await store.known_ids([event_id(env)])
    assert stored_ok((await ingestor.submit([pod.add("eve")], CLIENT))[0])
    assert ingestor.held_count() == 0
    stored = await store.get(event_id(env))
    assert stored is not None and stored.placement == Placement.LOG
    view = await need_view(store, event_id(env))
    assert view is not None and view.author == eve.public_b64


async def test_a_whole_pod_arriving_backwards_is_applied(
    ingestor: Ingestor, store: SQLiteStore, pod: PodBuilder
) -> None:
    ada = pod.key("ada")
    envs = [*pod.genesis(), pod.add("ada"), pod.need(ada, "1"), pod.need(ada, "2")]
    for env in reversed(envs[1:]):
        [result] = await ingestor.submit([env], IMPORT)
        assert not result.ok
    assert ingestor.held_count() == 4  # two gaps, two waiting for the roster
    assert stored_ok((await ingestor.submit([envs[0]], IMPORT))[0])
    assert ingestor.held_count() == 0
    assert await all_ids(store) == {event_id(e) for e in envs}


async def test_hold_limit_refuses_then_expired_holds_make_room(
    store: SQLiteStore, pod: PodBuilder, clock: FakeClock, make_ingestor: Callable[..., Any]
) -> None:
    ing: Ingestor = await make_ingestor(hold_limit=2, hold_ttl_ms=1000)
    ada, bo = pod.key("ada"), pod.key("bo")
    setup = [*pod.genesis(), pod.add("ada"), pod.add("bo"), pod.need(ada), pod.need(bo)]
    assert all(stored_ok(r) for r in await ing.submit(setup, CLIENT))
    pod.need(ada, "skipped")
    gap1 = pod.need(ada, "held")
    pod.need(bo, "skipped")
    gap2 = pod.need(bo, "held")
    eve_need = pod.need(pod.key("eve"))
    results = await ing.submit([gap1, gap2], IMPORT)
    assert [r.reason for r in results] == ["gap", "gap"]
    [full] = await ing.submit([eve_need], IMPORT)
    assert (full.ok, full.reason) == (False, "rate-limited")
    assert full.message
    clock.advance_ms(500)
    [still] = await ing.submit([eve_need], IMPORT)
    assert still.reason == "rate-limited"  # nothing has expired yet
    clock.advance_ms(600)
    [held] = await ing.submit([eve_need], IMPORT)
    assert (held.ok, held.reason) == (False, "unauthorized")  # held for the roster
    assert ing.held_count() == 1
    assert ing.counters["rate-limited"] == 2


async def test_gap_beyond_the_hold_limit_is_rate_limited(
    pod: PodBuilder, make_ingestor: Callable[..., Any]
) -> None:
    ing: Ingestor = await make_ingestor(hold_limit=1)
    ada = pod.key("ada")
    assert all(stored_ok(r) for r in await ing.submit([*pod.genesis(), pod.add("ada")], CLIENT))
    pod.need(ada)
    envs = [pod.need(ada, "2"), pod.need(ada, "3")]
    results = await ing.submit(envs, CLIENT)
    assert [r.reason for r in results] == ["gap", "rate-limited"]
    assert results[1].message and "gap" in results[1].message


async def test_retrying_a_held_event_does_not_renew_its_expiry(
    pod: PodBuilder, clock: FakeClock, make_ingestor: Callable[..., Any]
) -> None:
    """Held events are retried after every write; a retry must keep the first expiry."""
    ing: Ingestor = await make_ingestor(hold_limit=1, hold_ttl_ms=1000)
    ada = pod.key("ada")
    assert all(stored_ok(r) for r in await ing.submit([*pod.genesis(), pod.add("ada")], CLIENT))
    [held] = await ing.submit([pod.need(pod.key("eve"))], IMPORT)
    assert held.reason == "unauthorized" and ing.held_count() == 1
    clock.advance_ms(600)
    assert stored_ok((await ing.submit([pod.need(ada)], CLIENT))[0])  # retries the held one
    clock.advance_ms(600)  # 1200 ms after it was first held
    pod.need(ada, "skipped")
    [gap] = await ing.submit([pod.need(ada, "held")], CLIENT)
    assert gap.reason == "gap"  # room was made: the first hold expired
    assert ing.held_count() == 1


async def test_expired_gap_holds_are_dropped(
    pod: PodBuilder, clock: FakeClock, make_ingestor: Callable[..., Any]
) -> None:
    ing: Ingestor = await make_ingestor(hold_limit=2, hold_ttl_ms=1000)
    ada, bo = pod.key("ada"), pod.key("bo")
    setup = [*pod.genesis(), pod.add("ada"), pod.add("bo")]
    assert all(stored_ok(r) for r in await ing.submit(setup, CLIENT))
    pod.need(ada)
    a_held = [pod.need(ada, "2"), pod.need(ada, "3")]
    assert [r.reason for r in await ing.submit(a_held, IMPORT)] == ["gap", "gap"]
    clock.advance_ms(2000)
    pod.need(bo)
    [b] = await ing.submit([pod.need(bo, "2")], IMPORT)
    assert b.reason == "gap"
    assert ing.held_count() == 1  # both of Ada's expired


# --- roster effects --------------------------------------------------------------------


async def test_removal_takes_effect_from_the_stated_seq(
    ingestor: Ingestor, store: SQLiteStore, members: PodBuilder
) -> None:
    pod = members
    ada, cy = pod.key("ada"), pod.key("cy")
    before = pod.need(ada, "seq 2")  # Ada's pod log: seq 1 exists, this is 2
    removal = pod.sign(
        cy,
        "member.removed",
        {"key": ada.public_b64, "effective": {"pod": 3}},
        scope="public",
    )
    after = pod.need(ada, "seq 3")
    public_after = pod.sign(
        ada, "need.posted", {"title": "p", "category": "food", "urgency": "low"}, scope="public"
    )
    results = await ingestor.submit([before, removal, after, public_after], CLIENT)
    assert [(r.ok, r.reason) for r in results] == [
        (True, None),  # seq 2 < 3: valid
        (True, None),
        (False, "unauthorized"),
        (True, None),  # the removal names the pod log only
    ]


async def test_a_client_removal_naming_a_position_beyond_the_log_is_refused(
    ingestor: Ingestor, store: SQLiteStore, members: PodBuilder
) -> None:
    """A removal "from seq 9" of a log at seq 1 would let the person write 7 more events."""
    pod = members
    ada, cy = pod.key("ada"), pod.key("cy")
    ahead = {
        "member.removed": {"key": ada.public_b64, "effective": {"pod": 9}},
        "member.blocked": {"key": ada.public_b64, "effective": {"pod": 3}},
        "member.key_revoked": {"key": ada.public_b64, "valid_through": {"pod": 2}},
    }
    for kind, body in ahead.items():
        env = pod.sign(cy, kind, body, scope="public", advance=False)
        [result] = await ingestor.submit([env], CLIENT)
        assert (result.ok, result.reason) == (False, "invalid:future-position"), kind
        assert result.message is not None and "log is at seq 1" in result.message, kind
        assert await store.get(event_id(env)) is None
    # From now (the next seq) is accepted; the same body relayed by a peer is judged as sent.
    now = pod.sign(
        cy, "member.blocked", {"key": ada.public_b64, "effective": {"pod": 2}}, scope="public"
    )
    assert stored_ok((await ingestor.submit([now], CLIENT))[0])


async def test_blocked_author_is_refused_from_clients_and_kept_unprojected_from_import(
    ingestor: Ingestor, store: SQLiteStore, members: PodBuilder
) -> None:
    pod = members
    bo, cy = pod.key("bo"), pod.key("cy")
    block = pod.sign(
        cy, "member.blocked", {"key": bo.public_b64, "effective": {"pod": 2}}, scope="public"
    )
    assert stored_ok((await ingestor.submit([block], CLIENT))[0])
    env = pod.need(bo, "spam", advance=False)
    [refused] = await ingestor.submit([env], CLIENT)
    assert (refused.ok, refused.reason) == (False, "blocked")
    [kept] = await ingestor.submit([env], IMPORT)
    assert stored_ok(kept)
    stored = await store.get(event_id(env))
    assert stored is not None and stored.placement == Placement.UNPROJECTED
    assert await need_view(store, event_id(env)) is None
    first = await need_view(store, pod.named["bo's first"])
    assert first is not None  # events before the block stay projected


async def test_relayed_schema_failure_is_stored_unprojected(
    ingestor: Ingestor, store: SQLiteStore, members: PodBuilder
) -> None:
    pod = members
    ada = pod.key("ada")
    env = pod.sign(ada, "need.posted", {"title": "", "category": "food", "urgency": "low"})
    [result] = await ingestor.submit([env], IMPORT)
    assert stored_ok(result)
    stored = await store.get(event_id(env))
    assert stored is not None and stored.placement == Placement.UNPROJECTED
    assert await need_view(store, event_id(env)) is None
    # The log still advances: the next event appends.
    assert stored_ok((await ingestor.submit([pod.need(ada)], CLIENT))[0])


async def test_unknown_kinds_are_stored_and_projected_as_nothing(
    ingestor: Ingestor, store: SQLiteStore, members: PodBuilder
) -> None:
    pod = members
    env = pod.sign(pod.key("ada"), "chat.sent", {"text": "hi", "future": [1, 2]})
    [result] = await ingestor.submit([env], CLIENT)
    assert stored_ok(result)
    assert await stored_body(store, event_id(env)) == env.body


async def test_device_key_acts_as_its_person(
    ingestor: Ingestor, store: SQLiteStore, members: PodBuilder
) -> None:
    pod = members
    ada, cy = pod.key("ada"), pod.key("cy")
    phone = pod.key("ada-phone")
    link = pod.sign(
        cy,
        "member.key_added",
        {"member": ada.public_b64, "key": phone.public_b64},
        scope="public",
    )
    need = pod.need(phone, "from my phone")
    [before] = await ingestor.submit([need], CLIENT)
    assert before.reason == "unauthorized"  # not linked yet
    results = await ingestor.submit([link, need], CLIENT)
    assert all(stored_ok(r) for r in results)
    view = await need_view(store, event_id(need))
    assert view is not None and view.author == ada.public_b64  # the person, not the device
    roster = ingestor.roster.pods[pod.id]
    assert roster.person_of(phone.public_b64) == ada.public_b64


async def test_revoked_device_key_is_valid_through_the_stated_seq(
    ingestor: Ingestor, members: PodBuilder
) -> None:
    pod = members
    ada, cy = pod.key("ada"), pod.key("cy")
    phone = pod.key("ada-phone")
    link = pod.sign(
        cy, "member.key_added", {"member": ada.public_b64, "key": phone.public_b64}, scope="public"
    )
    one = pod.need(phone, "1")
    revoke = pod.sign(
        cy,
        "member.key_revoked",
        {"key": phone.public_b64, "valid_through": {"pod": 1}},
        scope="public",
    )
    two = pod.need(phone, "2")
    results = await ingestor.submit([link, one, revoke, two], CLIENT)
    assert [(r.ok, r.reason) for r in results] == [
        (True, None),
        (True, None),
        (True, None),
        (False, "unauthorized"),
    ]


async def test_rotated_out_root_can_no_longer_sign_roster_events(
    ingestor: Ingestor, members: PodBuilder
) -> None:
    pod = members
    new_root = pod.key("new-root")
    rotate = pod.sign(
        pod.root, "pod.root_rotated", {"new_key": new_root.public_b64}, scope="public"
    )
    late = pod.add("mallory", "coordinator", by=pod.root)
    by_new = pod.add("ned", by=new_root)
    results = await ingestor.submit([rotate, late, by_new], CLIENT)
    assert [(r.ok, r.reason) for r in results] == [
        (True, None),
        (False, "unauthorized"),
        (True, None),
    ]
    roster = ingestor.roster.pods[pod.id]
    assert pod.key("mallory").public_b64 not in roster.members
    assert pod.key("ned").public_b64 in roster.members


async def test_removed_coordinator_can_no_longer_add_members(
    ingestor: Ingestor, members: PodBuilder
) -> None:
    pod = members
    cy = pod.key("cy")
    removal = pod.sign(
        pod.node,
        "member.removed",
        {"key": cy.public_b64, "effective": {"public": 1}},
        scope="public",
    )
    [removed, added] = await ingestor.submit([removal, pod.add("zoe", by=cy)], CLIENT)
    assert stored_ok(removed)
    assert (added.ok, added.reason) == (False, "unauthorized")


# --- erasure ---------------------------------------------------------------------------


@pytest.mark.parametrize("redactor", ["ada", "cy"], ids=["author", "coordinator"])
async def test_redaction_by_author_or_coordinator_erases_the_body(
    redactor: str, ingestor: Ingestor, store: SQLiteStore, members: PodBuilder
) -> None:
    pod = members
    need = pod.need(pod.key("ada"), "Private matter", details="very private")
    assert stored_ok((await ingestor.submit([need], CLIENT))[0])
    redaction = pod.redact(pod.key(redactor), event_id(need))
    assert stored_ok((await ingestor.submit([redaction], CLIENT))[0])
    assert await stored_body(store, event_id(need)) is None
    view = await need_view(store, event_id(need))
    assert view is not None
    assert (view.title, view.details, view.redacted) == ("[removed]", "[removed]", True)
    # The erased body is never accepted again: the event is known, so it is a duplicate.
    assert (await ingestor.submit([need], IMPORT))[0].reason == "duplicate"
    assert await stored_body(store, event_id(need)) is None


async def test_an_erased_body_is_left_nowhere_on_disk(
    ingestor: Ingestor, store: SQLiteStore, members: PodBuilder
) -> None:
    """Not in the database file, its free pages, or the WAL: secure_delete and a checkpoint."""
    pod = members
    marker = "MARKER-7f3a-12-Elm-Street"
    need = pod.need(pod.key("ada"), f"Lift {marker}", details=f"ring twice at {marker}")
    assert stored_ok((await ingestor.submit([need], CLIENT))[0])
    files = [store.path, store.path.with_name(store.path.name + "-wal")]

    def on_disk() -> bool:
        return any(marker.encode() in f.read_bytes() for f in files if f.exists())

    assert on_disk()  # the test can see it before
    [result] = await ingestor.submit([pod.redact(pod.key("ada"), event_id(need))], CLIENT)
    assert result.effect is not None and result.effect.message == "erased"
    assert not on_disk()
    view = await need_view(store, event_id(need))
    assert view is not None and view.redacted


async def test_redaction_by_another_member_does_nothing(
    ingestor: Ingestor, store: SQLiteStore, members: PodBuilder
) -> None:
    pod = members
    need = pod.need(pod.key("ada"), "Mine")
    redaction = pod.redact(pod.key("bo"), event_id(need))
    results = await ingestor.submit([need, redaction], CLIENT)
    assert all(stored_ok(r) for r in results)  # the redaction is stored, just powerless
    assert results[1].effect is not None and results[1].effect.reason == "effect:not-allowed"
    assert await stored_body(store, event_id(need)) == need.body
    view = await need_view(store, event_id(need))
    assert view is not None and view.title == "Mine" and not view.redacted


@pytest.mark.parametrize("redactor", ["ada-phone", "cy"], ids=["same-person", "coordinator"])
async def test_redaction_before_its_target_stores_the_target_without_body(
    redactor: str, ingestor: Ingestor, store: SQLiteStore, members: PodBuilder
) -> None:
    pod = members
    ada = pod.key("ada")
    link = pod.sign(
        pod.node,
        "member.key_added",
        {"member": ada.public_b64, "key": pod.key("ada-phone").public_b64},
        scope="public",
    )
    assert stored_ok((await ingestor.submit([link], CLIENT))[0])
    need = pod.need(ada, "secret", details="very")  # signed, not sent yet
    redaction = pod.redact(pod.key(redactor), event_id(need))
    assert stored_ok((await ingestor.submit([redaction], CLIENT))[0])
    assert stored_ok((await ingestor.submit([need], CLIENT))[0])
    assert await stored_body(store, event_id(need)) is None
    view = await need_view(store, event_id(need))
    assert view is not None and (view.title, view.details) == ("[removed]", "[removed]")
    conn = sqlite3.connect(store.path)
    try:
        [(by,)] = conn.execute("SELECT by_id FROM redactions WHERE target = ?", (event_id(need),))
    finally:
        conn.close()
    assert by == event_id(redaction)


@pytest.mark.parametrize("order", ["permitted-first", "other-first"])
async def test_any_permitted_redaction_erases_whatever_arrived_first(
    order: str, ingestor: Ingestor, store: SQLiteStore
) -> None:
    """Two redactions of a target not yet here: the outcome may not depend on their order."""
    oak = PodBuilder("oak")
    zed, yan, cy = oak.key("zed"), oak.key("yan"), oak.key("cy")
    roster = [*oak.genesis(), oak.add("zed"), oak.add("yan"), oak.add("cy", "coordinator")]
    assert all(stored_ok(r) for r in await ingestor.submit(roster, IMPORT))
    need = oak.sign(
        zed, "need.posted", {"title": "t", "category": "food", "urgency": "low"}, scope="public"
    )
    by_coordinator = oak.redact(cy, event_id(need), scope="public")
    by_other = oak.redact(yan, event_id(need), scope="public")
    pair = [by_coordinator, by_other]
    if order == "other-first":
        pair.reverse()
    for env in pair:
        assert stored_ok((await ingestor.submit([env], IMPORT))[0])
    assert stored_ok((await ingestor.submit([need], IMPORT))[0])
    assert await stored_body(store, event_id(need)) is None


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("need.withdrawn", lambda need: {"need": need}),
        ("claim.made", lambda need: {"need": need}),
    ],
)
async def test_withdrawals_and_ledgers_are_not_redactable(
    kind: str,
    body: Callable[[str], Any],
    ingestor: Ingestor,
    store: SQLiteStore,
    members: PodBuilder,
) -> None:
    pod = members
    ada = pod.key("ada")
    need = pod.need(ada)
    target = pod.sign(ada, kind, body(event_id(need)))
    redaction = pod.redact(ada, event_id(target))
    results = await ingestor.submit([need, target, redaction], CLIENT)
    assert all(stored_ok(r) for r in results)
    assert await stored_body(store, event_id(target)) == target.body


async def test_redaction_of_a_target_in_another_scope_does_nothing(
    ingestor: Ingestor, store: SQLiteStore, members: PodBuilder
) -> None:
    pod = members
    ada = pod.key("ada")
    public_need = pod.sign(
        ada, "need.posted", {"title": "t", "category": "food", "urgency": "low"}, scope="public"
    )
    redaction = pod.redact(ada, event_id(public_need), scope="pod")
    results = await ingestor.submit([public_need, redaction], CLIENT)
    assert all(stored_ok(r) for r in results)
    assert await stored_body(store, event_id(public_need)) == public_need.body


# --- group commit and listeners ----------------------------------------------------------


async def test_concurrent_submissions_are_group_committed(
    ingestor: Ingestor, store: SQLiteStore, pod: PodBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    people = [f"p{i}" for i in range(200)]
    setup = [*pod.genesis(), *(pod.add(p) for p in people)]
    assert all(stored_ok(r) for r in await ingestor.submit(setup, CLIENT))
    needs = [pod.need(pod.key(p), f"need of {p}") for p in people]
    transactions = 0
    original = store.transact

    async def counting(fn: Any) -> Any:
        nonlocal transactions
        transactions += 1
        return await original(fn)

    monkeypatch.setattr(store, "transact", counting)
    results = await asyncio.gather(*(ingestor.submit([env], CLIENT) for env in needs))
    assert [r for [r] in results] == [
        Result(id=event_id(env), ok=True, effect=POSTED) for env in needs
    ]
    assert await store.known_ids(event_id(env) for env in needs) == {event_id(e) for e in needs}
    assert transactions < len(needs) / 4  # many submissions shared each commit


async def test_listeners_receive_commits_in_cursor_order(
    ingestor: Ingestor, store: SQLiteStore, pod: PodBuilder
) -> None:
    seen_sync: list[Committed] = []
    seen_async: list[Committed] = []

    def sync_listener(batch: list[Committed]) -> None:
        seen_sync.extend(batch)

    async def async_listener(batch: list[Committed]) -> None:
        await asyncio.sleep(0)
        seen_async.extend(batch)

    ingestor.listeners += [sync_listener, async_listener]
    ada = pod.key("ada")
    envs = [*pod.genesis(), pod.add("ada"), *(pod.need(ada, str(i)) for i in range(20))]
    # Out of order, from several tasks: held events are released in log order.
    chunks = [envs[10:], envs[3:10], envs[:3]]
    await asyncio.gather(*(ingestor.submit(c, IMPORT) for c in chunks))
    assert ingestor.held_count() == 0
    cursors = [c.cursor for c in seen_sync]
    assert cursors == sorted(cursors) and len(set(cursors)) == len(envs)
    assert [c.cursor for c in seen_async] == cursors
    stored = [e async for batch in store.scan() for e in batch]
    assert [(e.cursor, e.id) for e in stored] == [(c.cursor, c.event.id) for c in seen_sync]
    assert all(c.placement == Placement.LOG for c in seen_sync)


async def test_listeners_see_a_proof_once(ingestor: Ingestor, pod: PodBuilder) -> None:
    seen: list[Committed] = []
    ingestor.listeners.append(seen.extend)
    ada = pod.key("ada")
    setup = [*pod.genesis(), pod.add("ada"), pod.need(ada)]
    assert all(stored_ok(r) for r in await ingestor.submit(setup, IMPORT))
    rival = pod.sign(
        ada,
        "need.posted",
        {"title": "r", "category": "food", "urgency": "low"},
        seq=1,
        prev=None,
        advance=False,
    )
    seen.clear()
    await ingestor.submit([rival], IMPORT)
    assert [(c.event.id, c.placement) for c in seen] == [(event_id(rival), Placement.PROOF)]


async def test_events_remember_the_peer_they_came_from(
    ingestor: Ingestor, store: SQLiteStore, pod: PodBuilder
) -> None:
    """Origin is the direct peer (for "never echo"); the node's own clients and imports: None."""
    seen: list[Committed] = []
    ingestor.listeners.append(seen.extend)
    oak, ash = PodBuilder("oak"), PodBuilder("ash")
    assert all(stored_ok(r) for r in await ingestor.submit(pod.genesis(), CLIENT))
    assert all(stored_ok(r) for r in await ingestor.submit(oak.genesis(), from_peer(oak.id)))
    assert all(stored_ok(r) for r in await ingestor.submit(ash.genesis(), IMPORT))
    zed = oak.key("zed")
    await ingestor.submit([oak.add("zed")], from_peer(oak.id))
    rival = oak.sign(
        oak.node,
        "member.added",
        {"key": zed.public_b64, "role": "coordinator", "box_key": "x"},
        scope="public",
        seq=1,
        prev=None,
        advance=False,
    )
    [proof] = await ingestor.submit([rival], from_peer("relay"))  # a fork: kept as proof
    assert proof.reason == "fork"
    origins = {c.event.id: c.event.origin for c in seen}
    assert list(origins.values()) == [None, None, oak.id, oak.id, None, None, oak.id, "relay"]
    rows, _ = await store.federation_page(0, home_pod=pod.id, peer_pod=oak.id, limit=100)
    assert [r.id for r in rows] == [c.event.id for c in seen if c.event.origin != oak.id]
    rows, _ = await store.federation_page(0, home_pod=pod.id, peer_pod="relay", limit=100)
    assert event_id(rival) not in {r.id for r in rows} and len(rows) == 7


async def test_stop_is_idempotent_and_safe_before_start(
    store: SQLiteStore, pod: PodBuilder, make_ingestor: Callable[..., Any]
) -> None:
    await Ingestor(store, home_pod=pod.id).stop()  # never started: nothing to stop
    ing: Ingestor = await make_ingestor()
    results = await ing.submit(pod.genesis(), CLIENT)
    await ing.stop()
    await ing.stop()
    assert all(stored_ok(r) for r in results)
    assert await store.last_cursor() == 2


async def test_a_failed_write_answers_unavailable_and_restores_the_roster(
    ingestor: Ingestor, store: SQLiteStore, members: PodBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod = members
    original = store.transact

    async def broken(fn: Any) -> Any:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "transact", broken)
    [alone] = await ingestor.submit([pod.need(pod.key("bo"), advance=False)], CLIENT)
    assert alone.reason == "unavailable"
    add = pod.add("dee", advance=False)
    need = pod.need(pod.key("ada"), advance=False)
    results = await ingestor.submit([add, need], CLIENT)
    assert [(r.ok, r.reason) for r in results] == [(False, "unavailable")] * 2
    assert all(r.message for r in results)
    assert pod.key("dee").public_b64 not in ingestor.roster.pods[pod.id].members
    monkeypatch.setattr(store, "transact", original)
    # Nothing was half-applied: the same events now go through.
    results = await ingestor.submit([add, need], CLIENT)
    assert all(stored_ok(r) for r in results)
    assert pod.key("dee").public_b64 in ingestor.roster.pods[pod.id].members


async def test_a_submitter_that_went_away_does_not_break_the_writer(
    ingestor: Ingestor, store: SQLiteStore, members: PodBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod = members
    original = store.transact
    release = asyncio.Event()
    entered = asyncio.Event()

    async def slow(fn: Any) -> Any:
        entered.set()
        await release.wait()
        return await original(fn)

    monkeypatch.setattr(store, "transact", slow)
    gone = pod.need(pod.key("ada"), "gone")
    task = asyncio.create_task(ingestor.submit([gone], CLIENT))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    monkeypatch.setattr(store, "transact", original)
    # The write itself went through, and the writer still serves the next submission.
    [after] = await ingestor.submit([pod.need(pod.key("ada"), "after")], CLIENT)
    assert stored_ok(after)
    assert await store.known_ids([event_id(gone)]) == {event_id(gone)}


async def test_events_without_body_are_stored_and_chained(
    ingestor: Ingestor, store: SQLiteStore, members: PodBuilder
) -> None:
    pod = members
    ada = pod.key("ada")
    bare = pod.sign(ada, "need.posted", None)
    bare_redaction = pod.sign(ada, "event.redacted", None)
    results = await ingestor.submit([bare, bare_redaction], CLIENT)
    assert all(stored_ok(r) for r in results)
    assert await stored_body(store, event_id(bare)) is None
    view = await need_view(store, event_id(bare))
    # Shown like an erased need: a node cannot tell "never had a body" from "body erased".
    assert view is not None and (view.title, view.redacted) == ("[removed]", True)


async def test_held_events_expire_one_by_one(
    pod: PodBuilder, clock: FakeClock, make_ingestor: Callable[..., Any]
) -> None:
    ing: Ingestor = await make_ingestor(hold_limit=2, hold_ttl_ms=1000)
    assert all(stored_ok(r) for r in await ing.submit([*pod.genesis(), pod.add("ada")], CLIENT))
    [old] = await ing.submit([pod.need(pod.key("eve"))], IMPORT)
    clock.advance_ms(700)
    [young] = await ing.submit([pod.need(pod.key("fay"))], IMPORT)
    assert (old.reason, young.reason) == ("unauthorized", "unauthorized")
    clock.advance_ms(500)  # the first is 1200 ms old, the second 500
    [third] = await ing.submit([pod.need(pod.key("gus"))], IMPORT)
    assert third.reason == "unauthorized"
    assert ing.held_count() == 2
    # The young one is still held: adding Fay applies her need.
    assert stored_ok((await ing.submit([pod.add("fay")], CLIENT))[0])
    assert ing.held_count() == 1


# --- restart ---------------------------------------------------------------------------


async def test_restart_reloads_log_heads_roster_and_redactions(
    tmp_path: Path, pod: PodBuilder, clock: FakeClock
) -> None:
    path = tmp_path / "restart.db"
    ada, cy = pod.key("ada"), pod.key("cy")
    phone = pod.key("ada-phone")
    store = SQLiteStore(path, extra_schema=projections.SCHEMA)
    await store.open()
    ing = Ingestor(store, home_pod=pod.id, clock=clock)
    await ing.start()
    envs = [
        *pod.genesis(),
        pod.add("ada"),
        pod.add("cy", "coordinator"),
        pod.sign(
            cy,
            "member.key_added",
            {"member": ada.public_b64, "key": phone.public_b64},
            scope="public",
        ),
        pod.need(ada, "1"),
    ]
    # A redaction of an event that has not arrived yet must survive the restart.
    later = pod.need(ada, "later")
    envs.append(pod.redact(cy, event_id(later)))
    envs.append(pod.sign(cy, "event.redacted", None))  # a bare one: nothing to remember
    # A member.added with a bad body, relayed: stored unprojected, and must not break start-up.
    bad = pod.sign(
        pod.node,
        "member.added",
        {"key": pod.key("odd").public_b64, "role": "admin", "box_key": phone.public_b64},
        scope="public",
    )
    results = await ing.submit(envs, CLIENT)
    assert all(stored_ok(r) for r in results)
    assert stored_ok((await ing.submit([bad], IMPORT))[0])
    heads = dict(ing.heads)
    roster = ing.roster.pods[pod.id]
    await ing.stop()
    await store.close()

    store = SQLiteStore(path, extra_schema=projections.SCHEMA)
    await store.open()
    ing = Ingestor(store, home_pod=pod.id, clock=clock)
    await ing.start()
    try:
        assert ing.heads == heads
        again = ing.roster.pods[pod.id]
        assert again.members == roster.members and again.devices == roster.devices
        assert again.node_keys == {pod.node.public_b64} and again.name == pod.name
        assert pod.key("odd").public_b64 not in again.members
        [result] = await ing.submit([later], CLIENT)
        assert stored_ok(result)  # posting continues at the next seq
        assert ing.heads[LogKey(pod.id, ada.public_b64, "pod")].seq == 2
        assert await stored_body(store, event_id(later)) is None  # the remembered redaction
        assert stored_ok((await ing.submit([pod.need(phone)], CLIENT))[0])
    finally:
        await ing.stop()
        await store.close()


# --- order independence ------------------------------------------------------------------

PEOPLE = ("ada", "bo", "cy")


@st.composite
def histories(draw: st.DrawFn) -> list[Envelope]:
    """A pod's history: roster, then needs, offers, claims, acceptances, fulfilments,
    hours and redactions by members (one via a linked device key), over several logs."""
    pod = PodBuilder("prop")
    keys = {p: pod.key(p) for p in PEOPLE}
    phone = pod.key("ada-phone")
    envs = [
        *pod.genesis(),
        pod.add("ada"),
        pod.add("bo"),
        pod.add("cy", "coordinator"),
        pod.sign(
            pod.node,
            "member.key_added",
            {"member": keys["ada"].public_b64, "key": phone.public_b64},
            scope="public",
        ),
    ]
    signers = [keys["ada"], phone, keys["bo"], keys["cy"]]
    person = {k.public_b64: k.public_b64 for k in keys.values()}
    person[phone.public_b64] = keys["ada"].public_b64
    needs: list[str] = []
    claims: list[tuple[str, str]] = []
    entries: list[str] = []
    everything: list[str] = []
    redactable: list[str] = []
    actions = draw(
        st.lists(
            st.sampled_from(
                [
                    "need",
                    "need",
                    "public-need",
                    "offer",
                    "update",
                    "withdraw",
                    "claim",
                    "claim",
                    "accept",
                    "fulfil",
                    "hours",
                    "confirm",
                    "redact",
                    "redact",
                    "profile",
                ]
            ),
            min_size=4,
            max_size=28,
        )
    )
    for n, action in enumerate(actions):
        who = draw(st.sampled_from(signers))
        me = person[who.public_b64]
        scope = "pod"
        if action in ("need", "public-need"):
            kind = "need.posted"
            body: dict[str, Any] = {
                "title": f"need {n}",
                "category": draw(st.sampled_from(["food", "ride"])),
                "urgency": "normal",
                "details": f"details {n}",
            }
            scope = "public" if action == "public-need" else "pod"
        elif action == "offer":
            kind, body = "offer.posted", {"title": f"offer {n}", "category": "repair"}
        elif action == "profile":
            kind, body = "profile.set", {"name": f"name {n}"}
        elif action == "update" and needs:
            kind, body = "need.updated", {"need": draw(st.sampled_from(needs)), "title": f"u{n}"}
        elif action == "withdraw" and needs:
            kind, body = "need.withdrawn", {"need": draw(st.sampled_from(needs))}
        elif action == "claim" and needs:
            kind, body = "claim.made", {"need": draw(st.sampled_from(needs))}
        elif action == "accept" and claims:
            claim, need = draw(st.sampled_from(claims))
            kind, body = "claim.accepted", {"claim": claim, "need": need}
        elif action == "fulfil" and claims:
            claim, need = draw(st.sampled_from(claims))
            kind, body = "fulfilment.recorded", {"need": need, "claim": claim, "minutes": 30}
        elif action == "hours":
            other = draw(st.sampled_from([p for p in person.values() if p != me]))
            giver, receiver = (me, other) if draw(st.booleans()) else (other, me)
            kind = "hours.logged"
            body = {"giver": giver, "receiver": receiver, "minutes": draw(st.integers(1, 90))}
        elif action == "confirm" and entries:
            kind, body = "hours.confirmed", {"entry": draw(st.sampled_from(entries))}
        elif action == "redact" and everything:
            # Mostly bodies that may be erased, and often by someone writing another log than
            # the target's (a coordinator, the other device), so that in a shuffled arrival
            # the redaction can come first.
            pool = redactable if redactable and draw(st.integers(0, 3)) else everything
            target = draw(st.sampled_from(pool))
            if draw(st.booleans()):
                who = draw(st.sampled_from([keys["cy"], phone, keys["ada"]]))
            kind, body = "event.redacted", {"target": target}
        else:
            kind = "need.posted"
            body = {"title": f"fallback {n}", "category": "goods", "urgency": "low"}
        env = pod.sign(who, kind, body, scope=scope)
        envs.append(env)
        eid = event_id(env)
        everything.append(eid)
        if kind in ("need.posted", "need.updated", "offer.posted", "profile.set"):
            redactable.append(eid)
        if kind == "need.posted" and scope == "pod":
            needs.append(eid)
        elif kind == "claim.made":
            claims.append((eid, body["need"]))
        elif kind == "hours.logged":
            entries.append(eid)
    return envs


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_any_arrival_order_gives_the_same_state(data: st.DataObject) -> None:
    envs = data.draw(histories(), label="history")
    order = data.draw(st.permutations(range(len(envs))), label="order")
    shuffled = [envs[i] for i in order]
    chunks: list[list[Envelope]] = []
    while shuffled:
        size = data.draw(st.integers(1, 8), label="chunk")
        chunks.append(shuffled[:size])
        shuffled = shuffled[size:]
    home = PodBuilder("prop").id
    in_order = asyncio.run(ingest_chunks([envs], home_pod=home))
    permuted = asyncio.run(ingest_chunks(chunks, home_pod=home))
    assert in_order[2] == 0 and permuted[2] == 0
    assert set(in_order[1]) == {event_id(e) for e in envs}  # the whole history is valid
    assert set(permuted[1]) == set(in_order[1])
    assert permuted[0] == in_order[0]


async def test_removal_arriving_late_gives_the_same_state_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    """D9's old gap: a removal that arrives after the events it ends un-projects them."""
    pod = PodBuilder("late")
    ada = pod.key("ada")
    roster = [*pod.genesis(), pod.add("ada")]
    one = pod.need(ada, "1")
    removal = pod.sign(
        pod.node,
        "member.removed",
        {"key": ada.public_b64, "effective": {"pod": 2}},
        scope="public",
    )
    two = pod.need(ada, "2")  # invalid: at seq 2, Ada was removed
    claim = pod.sign(ada, "claim.made", {"need": event_id(one)})  # seq 3: invalid too
    outcomes = []
    for name, order in (
        ("a", [*roster, one, removal, two, claim]),
        ("b", [*roster, one, two, claim, removal]),
    ):
        path = tmp_path / f"{name}.db"
        store = SQLiteStore(path, extra_schema=projections.SCHEMA)
        await store.open()
        ing = Ingestor(store, home_pod=pod.id, clock=FakeClock())
        await ing.start()
        results = await ing.submit(order, IMPORT)
        assert all(r.ok for r in results), results
        state = (
            await all_ids(store),
            await placements(store),
            await store.read(projections.projection_hash),
        )
        needs = await store.read(lambda c: projections.list_needs(c, now_ms=0))
        assert [n.id for n in needs] == [event_id(one)]
        assert needs[0].claims == ()
        await ing.stop()
        await store.close()
        outcomes.append(state)
        # The same after a restart, and after a rebuild from the log.
        store = SQLiteStore(path, extra_schema=projections.SCHEMA)
        await store.open()
        ing = Ingestor(store, home_pod=pod.id, clock=FakeClock())
        await ing.start()
        assert ing.roster.pods[pod.id].is_removed(ada.public_b64)
        assert await store.read(projections.projection_hash) == state[2]
        await ing.stop()
        await store.close()
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][1][event_id(two)] == Placement.UNPROJECTED


async def test_a_redaction_that_counts_only_after_a_promotion_erases_in_either_order(
    tmp_path: Path,
) -> None:
    """Who may erase only grows (D38): a member's redaction of someone else's need takes effect
    once a promotion makes them a coordinator, whichever arrives first."""
    pod = PodBuilder("promote")
    ada, bo = pod.key("ada"), pod.key("bo")
    roster = [*pod.genesis(), pod.add("ada"), pod.add("bo")]
    need = pod.need(bo, "Marker soup")
    redaction = pod.redact(ada, event_id(need))
    promotion = pod.add("ada", "coordinator")
    hashes = []
    for name, order in (
        ("promoted-first", [*roster, need, promotion, redaction]),
        ("promoted-last", [*roster, need, redaction, promotion]),
    ):
        store = SQLiteStore(tmp_path / f"{name}.db", extra_schema=projections.SCHEMA)
        await store.open()
        ing = Ingestor(store, home_pod=pod.id, clock=FakeClock())
        await ing.start()
        assert all(r.ok for r in await ing.submit(order, IMPORT))
        assert await stored_body(store, event_id(need)) is None, name
        hashes.append(await store.read(projections.projection_hash))
        await ing.stop()
        await store.close()
    assert hashes[0] == hashes[1]


async def test_forked_logs_survive_a_restart(tmp_path: Path) -> None:
    pod = PodBuilder("forks")
    ada = pod.key("ada")
    history = [*pod.genesis(), pod.add("ada")]
    body = {"title": "Soup", "category": "food", "urgency": "normal"}
    first = pod.sign(ada, "need.posted", body, scope="public", advance=False)
    other = pod.sign(  # the same seq, another event: a fork
        ada, "need.posted", {**body, "title": "Stew"}, scope="public", advance=False
    )
    path = tmp_path / "k.db"
    for attempt in range(2):
        store = SQLiteStore(path, extra_schema=projections.SCHEMA)
        await store.open()
        ing = Ingestor(store, home_pod=pod.id, clock=FakeClock())
        await ing.start()
        if attempt == 0:
            await ing.submit([*history, first], IMPORT)
            [proof] = await ing.submit([other], from_peer(PodBuilder("neighbour").id))
            assert (proof.ok, proof.reason) == (True, "fork")
        assert ing.forked_logs == {LogKey(pod.id, ada.public_b64, "public")}
        await ing.stop()
        await store.close()


async def test_one_peer_fills_at_most_its_share_of_the_hold(
    pod: PodBuilder, make_ingestor: Callable[..., Any]
) -> None:
    """A neighbour relaying signed events of unknown authors cannot crowd out other peers."""
    ing: Ingestor = await make_ingestor(hold_limit=8)  # a share is 8 // 4 = 2 per peer
    assert all(stored_ok(r) for r in await ing.submit(pod.genesis(), CLIENT))
    strangers = [pod.key(f"stranger{i}") for i in range(4)]

    def public_need(key: SigningKey) -> Envelope:
        body = {"title": "Soup", "category": "food", "urgency": "normal"}
        return pod.sign(key, "need.posted", body, scope="public")

    flood = [public_need(k) for k in strangers[:3]]
    results = await ing.submit(flood, from_peer("noisy"))
    assert [r.reason for r in results] == ["unauthorized", "unauthorized", "rate-limited"]
    assert ing.held_count() == 2
    [other] = await ing.submit([public_need(strangers[3])], from_peer("quiet"))
    assert (other.ok, other.reason) == (False, "unauthorized")  # held: quiet has room
    assert ing.held_count() == 3
    # The roster arrives: held events are applied and leave the hold, making room again.
    admitted = [pod.add(k) for k in strangers]
    assert all(stored_ok(r) for r in await ing.submit(admitted, CLIENT))
    assert ing.held_count() == 0
    assert stored_ok((await ing.submit([flood[2]], from_peer("noisy")))[0])


async def test_on_queued_is_called_once_items_are_queued_before_they_are_written(
    pod: PodBuilder, make_ingestor: Callable[..., Any]
) -> None:
    """Federation verifies its next frame while this one is written: it must learn when."""
    ing: Ingestor = await make_ingestor()
    calls: list[int] = []
    task = asyncio.ensure_future(
        ing.submit(pod.genesis(), CLIENT, on_queued=lambda: calls.append(ing.held_count()))
    )
    while not calls:
        await asyncio.sleep(0)
    assert not task.done()  # queued, not yet answered: the writer has not committed
    assert all(stored_ok(r) for r in await task)
    rejected: list[int] = []
    [bad] = await ing.submit([b"{}"], CLIENT, on_queued=lambda: rejected.append(1))
    assert not bad.ok and rejected == [1]  # nothing to queue: told at once
