"""``kith verify``: re-check every stored event, and optionally rebuild the read models."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from node import projections
from node.app import Node
from node.ingest import projection_input
from node.roster import Roster, RosterEvent, build
from node.store.base import Placement, WriteTxn
from protocol.envelope import Event, check_body, decode_envelope, parse_event, verify_event
from protocol.kinds import ROSTER_KINDS, validate_body
from protocol.logs import LogKey
from protocol.reasons import RejectedEvent
from protocol.validate import Authorization


@dataclass
class Report:
    """What verification found."""

    events: int = 0
    bad_signatures: int = 0
    bad_bodies: int = 0
    broken_chains: int = 0
    erased_bodies: int = 0
    hash_before: str = ""
    hash_after: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No signature, body or chain problem (and, after a rebuild, the same hash)."""
        same = not self.hash_after or self.hash_after == self.hash_before
        return not (self.bad_signatures or self.bad_bodies or self.broken_chains) and same

    def lines(self) -> list[str]:
        """A readable summary."""
        out = [
            f"events checked:   {self.events}",
            f"bad signatures:   {self.bad_signatures}",
            f"bad bodies:       {self.bad_bodies}",
            f"broken chains:    {self.broken_chains}",
            f"erased bodies:    {self.erased_bodies}",
            f"projection hash:  {self.hash_before}",
        ]
        if self.hash_after:
            verdict = (
                "same"
                if self.hash_after == self.hash_before
                else "DIFFERENT (read models repaired)"
            )
            out.append(f"after rebuild:    {self.hash_after} ({verdict})")
        out += self.problems[:20]
        out.append("OK" if self.ok else "PROBLEMS FOUND")
        return out


async def verify_store(node: Node, *, rebuild: bool = False) -> Report:
    """Check every event's signature, body hash and chain; rebuild projections if asked."""
    report = Report(hash_before=await node.projection_hash())
    last: dict[LogKey, tuple[int, str]] = {}
    async for batch in node.store.scan():
        for stored in batch:
            report.events += 1
            event = parse_event(decode_envelope(stored.envelope))
            if not verify_event(event):
                report.bad_signatures += 1
                report.problems.append(f"bad signature: {event.id}")
            try:
                if check_body(event) is None and event.head.body_hash is not None:
                    report.erased_bodies += 1
            except RejectedEvent as exc:
                report.bad_bodies += 1
                report.problems.append(f"bad body ({exc.reason}): {event.id}")
            if stored.placement == Placement.PROOF:
                continue
            key = LogKey(*event.log)
            prev = last.get(key)
            expected = (prev[0] + 1, prev[1]) if prev else (1, None)
            if (event.head.seq, event.head.prev) != expected:
                report.broken_chains += 1
                report.problems.append(
                    f"chain broken at {key.scope} seq {event.head.seq}: {event.id}"
                )
            last[key] = (event.head.seq, event.id)
    if rebuild:
        await rebuild_projections(node)
        node._hash_cache = None
        report.hash_after = await node.projection_hash()
    return report


async def rebuild_projections(node: Node) -> None:
    """Reset the read models and re-derive them from every stored event (one transaction).

    The rosters are rebuilt from the stored roster events first (their set decides who may
    write, D38); then each event is placed and projected as they say, in commit order.
    """
    envelopes: list[tuple[str, bytes, Placement]] = []
    async for batch in node.store.scan():
        envelopes.extend((e.id, e.envelope, e.placement) for e in batch)

    def run(txn: WriteTxn) -> None:
        conn = txn.connection
        projections.reset(conn)
        parsed: list[tuple[str, Event, Placement, Any, bool]] = []
        by_pod: dict[str, dict[str, RosterEvent]] = {}
        for event_id, raw, placement in envelopes:
            if placement == Placement.PROOF:
                continue
            event = parse_event(decode_envelope(raw))
            try:
                body = check_body(event)
                struct = validate_body(event.head.kind, body) if body is not None else None
                ok = True
            except RejectedEvent:
                struct, ok = None, False
            parsed.append((event_id, event, placement, struct, ok))
            if ok and struct is not None and event.head.kind in ROSTER_KINDS:
                by_pod.setdefault(event.head.pod, {})[event_id] = RosterEvent(
                    event_id, event.head, struct
                )
        roster = Roster()
        for pod_id, events in by_pod.items():
            roster.install(build(pod_id, events))
        for event_id, event, placement, struct, ok in parsed:
            head = event.head
            pod = roster.pods.get(head.pod)
            if head.kind in ROSTER_KINDS:
                counts = pod is not None and event_id in pod.counted
            else:
                counts = pod is not None and pod.at_position(head) is Authorization.YES
            counts = counts and ok
            want = Placement.LOG if counts else Placement.UNPROJECTED
            if want != placement:
                txn.set_placement(event_id, want)
            if counts and pod is not None:
                projections.apply(conn, projection_input(pod, event, struct))
        for (target,) in conn.execute("SELECT target FROM redactions").fetchall():
            projections.redact(conn, target)
        for pod_roster in roster.pods.values():
            projections.set_blocked(conn, pod_roster.pod, pod_roster.blocked_people())
        node.ingest.roster = roster

    await node.store.transact(run)
