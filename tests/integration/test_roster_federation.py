"""Late roster changes across real federated `kith serve` processes (D38, issue 12 item 1).

The roster is a function of the *set* of roster events: a removal or block that reaches a node
after the events it covers takes them out of every read model there, exactly as on a node that
saw it first, and every node ends with the same projection hash.

- A removal signed with an earlier ``effective`` and delivered last (A → B → C) un-projects the
  removed member's events from that position on, on every node, and a restart keeps it so.
- A block from an earlier position hides what already reached a neighbour and what the
  neighbour is relayed later; the blocked member's new posts are refused; an unblock makes new
  events count again while the blocked stretch stays out.
- The same final state whichever order a node learns the events in: a copy of B's data
  directory, taken before B ever ran, imports B's events with the removal first, last, or in
  reverse, and gets B's projection hash each time.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest

from protocol.envelope import decode_envelope, parse_event
from protocol.kinds import ROSTER_KINDS
from tests.integration.conftest import Pod, Poster, free_port, kith, member
from tests.integration.test_federation import held, info, peer, peer_state, wait_for


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[Callable[..., Pod]]:
    """``nodes(name)``: a new pod's node, started unless ``start=False``; stopped at the end."""
    made: list[Pod] = []

    def make(name: str, *, start: bool = True) -> Pod:
        port = free_port()
        data = tmp_path / name
        kith("init", "--dir", str(data), "--name", f"Pod {name}", "--port", str(port))
        p = Pod(data, port)
        made.append(p)
        if start:
            p.start()
        return p

    yield make
    for p in made:
        p.stop()


def on_each(nodes: tuple[Pod, ...], check: Callable[[Pod], bool], what: str) -> None:
    """Wait until ``check`` holds on every one of ``nodes``."""
    for node in nodes:
        wait_for(partial(check, node), what=f"{what} ({node.dir.name})")


def shows(event: str) -> Callable[[Pod], bool]:
    """Whether a node serves ``event`` in its ``/v1/events``."""
    return lambda node: event in held(node)


def projection_hash(pod: Pod) -> str:
    return str(info(pod)["projection_hash"])


def all_agree(nodes: tuple[Pod, ...]) -> bool:
    return len({projection_hash(n) for n in nodes}) == 1


def need_ids(pod: Pod) -> set[str]:
    return {n["id"] for n in httpx.get(pod.url + "/v1/needs", timeout=10).json()}


def offer_ids(pod: Pod) -> set[str]:
    return {o["id"] for o in httpx.get(pod.url + "/v1/offers", timeout=10).json()}


def stored_ids(pod: Pod, out: Path) -> set[str]:
    """Every event the node stores, shown or not, as ``kith export`` writes them."""
    kith("export", "--dir", str(pod.dir), "--out", str(out))
    return {_id(line) for line in out.read_text().splitlines() if line}


def _id(line: str) -> str:
    return parse_event(decode_envelope(line.encode())).id


def _kind(line: str) -> str:
    return parse_event(decode_envelope(line.encode())).head.kind


def recorded(out: str, kind: str) -> str:
    match = re.search(rf"^{re.escape(kind)} recorded[^\n]*: (\S+)$", out, re.M)
    assert match, out
    return match[1]


def coordinator_acts(pod: Pod, key_file: Path, *args: str) -> str:
    """A coordinator's `kith member …` against the running node; the id it recorded."""
    out = kith("member", *args, "--key", str(key_file), "--url", pod.url).stdout
    return recorded(out, _RECORDS[args[0]])


_RECORDS = {"remove": "member.removed", "block": "member.blocked", "unblock": "member.unblocked"}


class Mo:
    """Mo, a member of pod A posting in her public log."""

    def __init__(self, a: Pod, tmp_path: Path) -> None:
        self.key = member(a, tmp_path, "mo")
        self.poster = Poster(a.url, self.key, info(a)["pod"], "public")

    @property
    def public(self) -> str:
        return self.key.public_b64

    def need(self, title: str) -> str:
        (event,) = self.poster.need(title)
        return event

    def offer(self, title: str) -> str:
        env = self.poster.sign("offer.posted", {"title": title, "category": "ride"})
        (event,) = self.poster.post([env])
        return event


def test_a_removal_delivered_last_unprojects_on_every_node(
    nodes: Callable[..., Pod], tmp_path: Path
) -> None:
    a, b, c = nodes("a"), nodes("b"), nodes("c")
    peer(a, b)
    peer(b, c)  # C hears of A only through B
    wait_for(lambda: peer_state(a, b).get("state") == "live", what="A–B live")
    wait_for(lambda: peer_state(c, b).get("state") == "live", what="B–C live")
    member(a, tmp_path, "cora", role="coordinator")
    mo = Mo(a, tmp_path)
    kept = mo.need("Soup on Tuesday")  # public seq 1
    offer = mo.offer("Lifts to the clinic")  # seq 2
    later = mo.need("Someone to mend a bike")  # seq 3
    everyone = (a, b, c)
    on_each(everyone, shows(later), "Mo's events")
    for node in everyone:
        assert {kept, later} <= need_ids(node) and offer in offer_ids(node)
    wait_for(lambda: all_agree(everyone), what="the same state before the removal")
    before = projection_hash(b)

    # Cora removes Mo from public seq 2: after both of Mo's later events reached B and C.
    removal = coordinator_acts(
        a, tmp_path / "cora.key", "remove", mo.public, "--effective", "public=2"
    )
    on_each(everyone, shows(removal), "the removal")
    wait_for(lambda: all_agree(everyone), what="the same projection hash on A, B and C")
    assert projection_hash(b) != before

    def removed_everywhere() -> None:
        for node in everyone:
            shown = held(node)
            assert kept in shown, node.dir.name  # before the position: stays
            assert offer not in shown and later not in shown, node.dir.name
            assert kept in need_ids(node) and later not in need_ids(node), node.dir.name
            assert offer not in offer_ids(node), node.dir.name
            gone = httpx.get(node.url + f"/v1/events/{later}", timeout=10)
            assert gone.status_code == 404, node.dir.name

    removed_everywhere()
    # Still stored on the neighbours (relayed, kept unprojected), just never shown.
    assert {offer, later} <= stored_ids(c, tmp_path / "c.jsonl")

    settled = projection_hash(b)
    b.stop()
    b.start()
    assert projection_hash(b) == settled
    removed_everywhere()


def test_a_blocked_members_later_events_are_shown_nowhere(
    nodes: Callable[..., Pod], tmp_path: Path
) -> None:
    a, b, c = nodes("a"), nodes("b"), nodes("c")
    peer(a, b)
    peer(b, c)  # C hears of A only through B
    wait_for(lambda: peer_state(b, a).get("state") == "live", what="A–B live")
    wait_for(lambda: peer_state(c, b).get("state") == "live", what="B–C live")
    cora = tmp_path / "cora.key"
    member(a, tmp_path, "cora", role="coordinator")
    mo = Mo(a, tmp_path)
    kept = mo.need("Soup on Tuesday")  # public seq 1
    seen = mo.need("Lift to the market")  # seq 2: reaches B and C before the block
    on_each((b, c), shows(seen), "Mo's need")
    for node in (b, c):
        assert seen in need_ids(node)

    b.stop()  # B (and so C) miss what follows, and are relayed it later
    unseen = mo.need("Help with a form")  # seq 3
    block = coordinator_acts(a, cora, "block", mo.public, "--effective", "public=2")
    more: dict[str, object] = {"title": "More soup", "category": "food", "urgency": "normal"}
    refused = mo.poster.refused("need.posted", more)
    assert refused["reason"] == "blocked", refused
    assert held(a).keys() & {seen, unseen} == set()

    b.start()
    everyone = (a, b, c)
    on_each((b, c), shows(block), "the block")
    on_each(
        (b, c),
        lambda node: unseen in stored_ids(node, tmp_path / "dump.jsonl"),
        "Mo's blocked need relayed, kept unprojected",
    )
    wait_for(lambda: all_agree(everyone), what="A, B and C agree")
    for node in everyone:
        shown = held(node)
        assert kept in shown and seen not in shown and unseen not in shown, node.dir.name
        assert need_ids(node) & {kept, seen, unseen} == {kept}, node.dir.name

    # Unblocked from now: a new need counts again, the blocked stretch stays out.
    coordinator_acts(a, cora, "unblock", mo.public)
    again = mo.need("Soup again")  # seq 4
    on_each((b, c), shows(again), "the need after the unblock")
    wait_for(lambda: all_agree(everyone), what="A, B and C agree after the unblock")
    for node in everyone:
        shown = held(node)
        assert {kept, again} <= shown.keys() and not {seen, unseen} & shown.keys()
        assert need_ids(node) & {kept, seen, unseen, again} == {kept, again}, node.dir.name


def test_the_same_state_whether_the_removal_comes_first_or_last(
    nodes: Callable[..., Pod], tmp_path: Path
) -> None:
    a = nodes("a")
    b = nodes("b", start=False)
    # Copies of B's data directory before B ever ran: the same pod, keys and genesis events.
    twins = [tmp_path / f"b-{order}" for order in ("first", "last", "reversed", "none")]
    for twin in twins:
        shutil.copytree(b.dir, twin)
    b.start()
    peer(a, b)
    wait_for(lambda: peer_state(b, a).get("state") == "live", what="A–B live")
    member(a, tmp_path, "cora", role="coordinator")
    mo = Mo(a, tmp_path)
    kept = mo.need("Soup on Tuesday")
    offer = mo.offer("Lifts to the clinic")
    later = mo.need("Someone to mend a bike")
    wait_for(lambda: later in held(b), what="Mo's events at B")
    removal = coordinator_acts(
        a, tmp_path / "cora.key", "remove", mo.public, "--effective", "public=2"
    )
    wait_for(lambda: removal in held(b), what="the removal at B (after Mo's events)")
    wait_for(lambda: all_agree((a, b)), what="A and B agree")
    assert need_ids(b) & {kept, later} == {kept} and offer not in offer_ids(b)

    # B's events in the order B stored them: the removal after Mo's events.
    dump = tmp_path / "b.jsonl"
    kith("export", "--dir", str(b.dir), "--out", str(dump))
    lines = [line for line in dump.read_text().splitlines() if line]
    ids = [_id(line) for line in lines]
    assert ids.index(removal) > max(ids.index(e) for e in (kept, offer, later))
    rest = [line for line, i in zip(lines, ids, strict=True) if i != removal]
    roster = [line for line in lines if _kind(line) in ROSTER_KINDS]
    # Each part is its own `kith import`, committed before the next begins.
    orders = {
        # The roster, the removal among it, before any of Mo's events.
        "first": [roster, [line for line in lines if _kind(line) not in ROSTER_KINDS]],
        # Everything else first, settled; the removal alone afterwards.
        "last": [rest, [lines[ids.index(removal)]]],
        # Newest first: every event waits for the ones before it.
        "reversed": [lines[::-1]],
        # The control: without the removal the hash must differ.
        "none": [rest],
    }
    hashes: dict[str, str] = {}
    for twin, (name, parts) in zip(twins, orders.items(), strict=True):
        for n, part in enumerate(parts):
            file = tmp_path / f"{name}-{n}.jsonl"
            file.write_text("\n".join(part) + "\n")
            kith("import", "--quiet", "--dir", str(twin), str(file))
        verified = kith("verify", "--dir", str(twin)).stdout
        assert verified.rstrip().endswith("OK"), verified
        match = re.search(r"^projection hash:\s+(\S+)$", verified, re.M)
        assert match, verified
        hashes[name] = match[1]
    live = projection_hash(b)
    assert hashes["first"] == hashes["last"] == hashes["reversed"] == live, (hashes, live)
    assert hashes["none"] != live

    # The twin that learnt the removal first shows what B, which learnt it last, shows.
    first = Pod(twins[0], free_port())
    first.start()
    try:
        assert need_ids(first) == need_ids(b) and offer_ids(first) == offer_ids(b)
        assert set(held(first)) == set(held(b))
    finally:
        first.stop()
