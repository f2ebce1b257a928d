"""The roster: who may write in a pod, decided from the *set* of roster events (DESIGN §3).

A pod's roster is a pure function of the roster events stored for it, whatever order they
arrived in (docs/decisions.md D38). ``build`` computes it in two steps, repeated until nothing
changes:

1. **Grants** (monotone): starting from the pod key, every roster event whose author holds a
   grant for its kind — a root for ``pod.root_rotated``/``node.key``; a root, node key or
   anyone ever added as coordinator (or a device of theirs) for ``member.*``; a member for
   their own device links and revocations — is granted, until no more are. Adding events
   only ever adds grants, so this closure has one answer for a given set.
2. **Positions** (the rules that take authority away): each granted event is checked against
   the roster the granted set makes — a root rotated out before it, a key revoked or removed
   before its seq, a block at its position, a coordinator role it no longer had at its ``ts``.
   Events that fail are excluded, and step 1 runs again without them.

Exclusion only grows, so this ends, and nothing in it depends on arrival order. Ties between
roster events are broken by ``(ts, id)``: a member's role at time ``t`` is that of their
latest ``member.added`` with ``ts <= t``; a device key linked to two people belongs to the
earlier link.

Positions name the logs of the key they are about (``effective`` / ``valid_through``: seqs of
that key's logs). A removal or block naming a person also ends or blocks their other device
keys, by time (from the removal's or block's ``ts``), as those keys' logs have other seqs.

Non-roster events are authorized against the final roster by ``authorize``; a known author
whose authority ended before the position is ``ENDED`` (kept unprojected when relayed), an
unknown one ``UNKNOWN`` (held until the roster arrives).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from node.projections.effects import Effect, applied, no_effect
from protocol import kinds
from protocol.envelope import Head
from protocol.validate import Authorization

Role = Literal["root", "node", "coordinator", "member"]
_ADMIN_ROLES = frozenset({"root", "node", "coordinator"})
_ROOT_ONLY = frozenset({"pod.root_rotated", "node.key"})
#: Where roster events may live: the root's attestations only in ``public`` (anyone must be able
#: to check a pod's node key); member changes in ``public`` or, for a pod that keeps its size
#: among its direct peers, ``peers`` (D43).
_PUBLIC_ONLY = frozenset({"pod.created", "pod.root_rotated", "node.key"})
_ROSTER_SCOPES = frozenset({"public", "peers"})


def roster_scope_ok(kind: str, scope: str) -> bool:
    """May a roster event of ``kind`` live in ``scope``?"""
    return scope == "public" if kind in _PUBLIC_ONLY else scope in _ROSTER_SCOPES


_YES, _NO, _UNKNOWN, _BLOCKED, _ENDED = (
    Authorization.YES,
    Authorization.NO,
    Authorization.UNKNOWN,
    Authorization.BLOCKED,
    Authorization.ENDED,
)


@dataclass(frozen=True)
class RosterEvent:
    """One stored roster event: its id, head and validated body."""

    id: str
    head: Head
    body: msgspec.Struct

    @property
    def order(self) -> tuple[int, str]:
        """The one total order of roster events: ``(ts, id)``."""
        return (self.head.ts, self.id)


#: A block or unblock: (seq or ts it takes effect at, ts, id, is it a block?).
Toggle = tuple[int, int, str, bool]


@dataclass
class Member:
    """A person in a pod: their primary key, role and box key now, and how they came to be.

    ``removed``/``blocked`` are about the primary key's own logs: scope → the first seq no
    longer valid / blocked now (absent when not blocked now).
    """

    key: str
    role: Literal["coordinator", "member"]
    box_key: str
    removed: dict[str, int] = field(default_factory=dict)
    blocked: dict[str, int] = field(default_factory=dict)
    #: Every ``member.added`` for this person: (ts, id, role, box key), in order.
    history: list[tuple[int, str, Literal["coordinator", "member"], str]] = field(
        default_factory=list
    )

    def role_at(self, ts: int) -> Literal["coordinator", "member"]:
        """The role this person held at ``ts``: their latest ``member.added`` at or before it
        (the first one, for a ``ts`` before any)."""
        role = self.history[0][2] if self.history else self.role
        for added_ts, _, added_role, _ in self.history:
            if added_ts > ts:
                break
            role = added_role
        return role


@dataclass
class PodRoster:
    """The roster of one pod, as ``build`` derives it from its roster events."""

    pod: str
    #: Every stored roster event of the pod that ``build`` considers, by id.
    events: dict[str, RosterEvent] = field(default_factory=dict)
    #: The ids of the roster events that count (granted, and within their positions).
    counted: frozenset[str] = frozenset()
    #: The ids granted by the first, unrestricted closure (a superset of ``counted``).
    granted: frozenset[str] = frozenset()
    #: Keys granted by the first, unrestricted closure: the pod's authors as far as anything
    #: stored says. An author outside it is unknown (held); one inside it is never held.
    known: frozenset[str] = frozenset()
    #: Key → person for every device link of that first closure (for erasure, which must
    #: not depend on positions: an erased body cannot come back).
    ever_linked: dict[str, str] = field(default_factory=dict)
    #: Keys and persons that were ever root, node key or coordinator in the first closure.
    ever_admin: frozenset[str] = frozenset()
    #: Every key some stored roster event names (``key``, ``member``, ``new_key``).
    named: frozenset[str] = frozenset()
    created: bool = False
    roots: dict[str, int | None] = field(default_factory=dict)  # key -> last valid seq or None
    node_keys: set[str] = field(default_factory=set)
    members: dict[str, Member] = field(default_factory=dict)
    devices: dict[str, str] = field(default_factory=dict)  # device key -> person key
    revoked: dict[str, dict[str, int]] = field(default_factory=dict)  # key -> scope -> last seq
    name: str = ""
    #: key → scope → first seq no longer valid (removals naming that key).
    removed_keys: dict[str, dict[str, int]] = field(default_factory=dict)
    #: person → the earliest ``ts`` of a removal naming them (ends their other devices).
    removed_at: dict[str, int] = field(default_factory=dict)
    #: key → scope → blocks and unblocks naming that key, by position.
    toggles: dict[str, dict[str, list[Toggle]]] = field(default_factory=dict)
    #: person → blocks and unblocks naming them, by time (for their other devices).
    person_toggles: dict[str, list[Toggle]] = field(default_factory=dict)
    _blocked: frozenset[str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The pod id *is* its genesis root key: it is a root from the start.
        self.roots.setdefault(self.pod, None)

    # -- who is who --------------------------------------------------------------------

    def person_of(self, key: str) -> str | None:
        """The person a key belongs to (itself for a primary key), or None if unknown."""
        if key in self.members:
            return key
        if key in self.roots or key in self.node_keys:
            return key
        return self.devices.get(key)

    def role_of(self, key: str) -> Role | None:
        """The role a key acts with now, or None for an unknown key."""
        if key in self.roots:
            return "root"
        if key in self.node_keys:
            return "node"
        person = self.devices.get(key, key)
        member = self.members.get(person)
        return member.role if member is not None else None

    def role_at(self, key: str, ts: int) -> Role | None:
        """The role a key acted with at ``ts`` (roles change with a later ``member.added``)."""
        if key in self.roots:
            return "root"
        if key in self.node_keys:
            return "node"
        member = self.members.get(self.devices.get(key, key))
        return member.role_at(ts) if member is not None else None

    def keys_of(self, person: str) -> list[str]:
        """A person's keys: the primary key, then their device keys in key order."""
        return [person, *sorted(k for k, p in self.devices.items() if p == person)]

    # -- standing now --------------------------------------------------------------------

    def _blocked_now(self, key: str) -> bool:
        if any(ts[-1][3] for ts in self.toggles.get(key, {}).values() if ts):
            return True
        person = self.person_of(key)
        if person is not None and person != key:
            toggles = self.person_toggles.get(person, [])
            return bool(toggles) and toggles[-1][3]
        return False

    def is_blocked(self, key: str) -> bool:
        """Is this key (or the person it belongs to) blocked now, in any scope?"""
        person = self.person_of(key)
        return self._blocked_now(key) or (person is not None and self._blocked_now(person))

    def is_removed(self, key: str) -> bool:
        """Has this key, or the person it belongs to, been removed (in any scope)?"""
        person = self.person_of(key)
        return bool(self.removed_keys.get(key)) or (
            person is not None and person in self.removed_at
        )

    def is_active(self, key: str) -> bool:
        """May this key still act for its person now (read with a token)?

        False once the key is revoked, or it or its person is removed or blocked.
        """
        if key in self.revoked:
            return False
        if key in self.roots:
            return self.roots[key] is None
        if self.person_of(key) is None:
            return False
        return not (self.is_removed(key) or self.is_blocked(key))

    def blocked_people(self) -> set[str]:
        """The members blocked now (their open claims lapse).

        Cached: a roster is never changed once built (a newcomer's copy keeps the cache, as a
        key no roster event names cannot be blocked).
        """
        if self._blocked is None:
            self._blocked = frozenset(p for p in self.members if self.is_blocked(p))
        return set(self._blocked)

    def box_key(self, person: str) -> str | None:
        """A member's X25519 box key (for sealing fields to them)."""
        member = self.members.get(person)
        return member.box_key if member is not None else None

    # -- positions -----------------------------------------------------------------------

    def at_position(self, head: Head) -> Authorization:
        """May ``head.author`` write at this position, by membership and the stated ends?"""
        return self.allows(head.author, head.scope, head.seq, head.ts)

    def allows(self, key: str, scope: str, seq: int, ts: int) -> Authorization:
        """``at_position`` for a stored event's head facts."""
        if key in self.roots:
            last = self.roots[key]
            return _YES if last is None or seq <= last else _ENDED
        revoked = self.revoked.get(key)
        if revoked is not None and scope in revoked and seq > revoked[scope]:
            return _ENDED
        if key in self.node_keys:
            return _YES
        person = self.person_of(key)
        if person is None:
            return _ENDED if key in self.known else _UNKNOWN
        removed = self.removed_keys.get(key, {})
        if scope in removed and seq >= removed[scope]:
            return _ENDED
        if person != key and ts >= self.removed_at.get(person, ts + 1):
            return _ENDED
        if _toggled_on(self.toggles.get(key, {}).get(scope, ()), seq):
            return _BLOCKED
        if person != key and _toggled_on(self.person_toggles.get(person, ()), ts):
            return _BLOCKED
        return _YES

    def verdict(self, event: RosterEvent) -> Authorization:
        """Does roster event ``event`` count in this roster (positions and roles included)?"""
        head = event.head
        if head.kind == "pod.created":
            return _YES if head.author == self.pod and head.scope == "public" else _NO
        if not roster_scope_ok(head.kind, head.scope):
            return _NO
        position = self.at_position(head)
        if position is not _YES:
            return position
        if head.kind in _ROOT_ONLY:
            return _YES if head.author in self.roots else _ENDED
        if self.role_at(head.author, head.ts) in _ADMIN_ROLES:
            return _YES
        return _YES if self._own_device(head.author, event.body) else _ENDED

    def _own_device(self, author: str, body: msgspec.Struct) -> bool:
        """A member links or revokes a device key of their own (no coordinator needed)."""
        person = self.person_of(author)
        if person is None or person not in self.members:
            return False
        if isinstance(body, kinds.MemberKeyAdded):
            return body.member == person
        if isinstance(body, kinds.MemberKeyRevoked):
            return self.person_of(body.key) == person and body.key != person
        return False


def _toggled_on(toggles: Iterable[Toggle], at: int) -> bool:
    """Is the latest block/unblock taking effect at or before ``at`` a block?"""
    on = False
    for position, _, _, blocks in toggles:
        if position > at:
            break
        on = blocks
    return on


# --- building a pod's roster from its events ---------------------------------------------


class _Grants:
    """The monotone part: who holds a grant, from the events granted so far."""

    def __init__(self, pod: str) -> None:
        self.pod = pod
        self.roots = {pod}
        self.node_keys: set[str] = set()
        self.members: set[str] = set()
        self.coordinators: set[str] = set()
        self.links: dict[str, set[str]] = {}  # device key -> persons it is linked to

    def persons(self, key: str) -> set[str]:
        return ({key} if key in self.members else set()) | self.links.get(key, set())

    def grants(self, event: RosterEvent) -> bool:
        head, body = event.head, event.body
        if head.kind == "pod.created":
            return head.author == self.pod and head.scope == "public"
        if not roster_scope_ok(head.kind, head.scope):
            return False
        author = head.author
        if head.kind in _ROOT_ONLY:
            return author in self.roots
        if author in self.roots or author in self.node_keys:
            return True
        persons = self.persons(author)
        if persons & self.coordinators:
            return True
        if isinstance(body, kinds.MemberKeyAdded):
            return body.member in persons
        if isinstance(body, kinds.MemberKeyRevoked):
            return bool(self.persons(body.key) & persons)
        return False

    def add(self, event: RosterEvent) -> None:
        body = event.body
        if isinstance(body, kinds.PodRootRotated):
            self.roots.add(body.new_key)
        elif isinstance(body, kinds.NodeKey):
            self.node_keys.add(body.key)
        elif isinstance(body, kinds.MemberAdded):
            self.members.add(body.key)
            if body.role == "coordinator":
                self.coordinators.add(body.key)
        elif isinstance(body, kinds.MemberKeyAdded):
            self.links.setdefault(body.key, set()).add(body.member)

    def known(self) -> frozenset[str]:
        return frozenset(self.roots | self.node_keys | self.members | set(self.links))

    def ever_admin(self) -> frozenset[str]:
        linked = {k for k, persons in self.links.items() if persons & self.coordinators}
        return frozenset(self.roots | self.node_keys | self.coordinators | linked)


def _closure(pod: str, candidates: list[RosterEvent]) -> tuple[_Grants, list[RosterEvent]]:
    """Grant every candidate whose author holds a grant, until no more are."""
    grants = _Grants(pod)
    granted: list[RosterEvent] = []
    pending = candidates
    progress = True
    while progress and pending:
        progress = False
        rest: list[RosterEvent] = []
        for event in pending:
            if grants.grants(event):
                grants.add(event)
                granted.append(event)
                progress = True
            else:
                rest.append(event)
        pending = rest
    return grants, granted


def _derive(pod: str, events: list[RosterEvent]) -> PodRoster:
    """The roster ``events`` make, each a set-based fold (no arrival order)."""
    r = PodRoster(pod)
    links: dict[str, tuple[tuple[int, str], str]] = {}
    for event in sorted(events, key=lambda e: e.order):
        head, body = event.head, event.body
        if isinstance(body, kinds.PodCreated):
            if not r.created:
                r.created, r.name = True, body.name
        elif isinstance(body, kinds.PodRootRotated):
            last = r.roots.get(head.author)
            r.roots[head.author] = head.seq if last is None else min(last, head.seq)
            r.roots.setdefault(body.new_key, None)
        elif isinstance(body, kinds.NodeKey):
            r.node_keys.add(body.key)
        elif isinstance(body, kinds.MemberAdded):
            member = r.members.get(body.key)
            if member is None:
                member = r.members[body.key] = Member(body.key, body.role, body.box_key)
            member.history.append((head.ts, event.id, body.role, body.box_key))
            member.role, member.box_key = body.role, body.box_key  # the latest wins
        elif isinstance(body, kinds.MemberKeyAdded):
            links.setdefault(body.key, (event.order, body.member))
        elif isinstance(body, kinds.MemberKeyRevoked):
            stated = r.revoked.setdefault(body.key, {})
            for scope, seq in body.valid_through.items():
                stated[str(scope)] = min(stated.get(str(scope), seq), seq)
        elif isinstance(body, kinds.MemberRemoved):
            stated = r.removed_keys.setdefault(body.key, {})
            for scope, seq in body.effective.items():
                stated[str(scope)] = min(stated.get(str(scope), seq), seq)
            r.removed_at[body.key] = min(r.removed_at.get(body.key, head.ts), head.ts)
        elif isinstance(body, kinds.MemberBlocked | kinds.MemberUnblocked):
            blocks = isinstance(body, kinds.MemberBlocked)
            per_scope = r.toggles.setdefault(body.key, {})
            for scope, seq in body.effective.items():
                per_scope.setdefault(str(scope), []).append((seq, head.ts, event.id, blocks))
            r.person_toggles.setdefault(body.key, []).append((head.ts, head.ts, event.id, blocks))
    for key, (_, person) in links.items():
        if person in r.members and key not in r.members:
            r.devices[key] = person
    for per_scope in r.toggles.values():
        for toggles in per_scope.values():
            toggles.sort()
    for toggles in r.person_toggles.values():
        toggles.sort()
    for key, member in r.members.items():
        member.removed = dict(r.removed_keys.get(key, {}))
        member.blocked = {
            scope: toggles[-1][0]
            for scope, toggles in r.toggles.get(key, {}).items()
            if toggles and toggles[-1][3]
        }
    return r


def build(pod: str, events: dict[str, RosterEvent]) -> PodRoster:
    """The roster of ``pod`` from its stored roster events (see the module docstring)."""
    candidates = sorted(events.values(), key=lambda e: e.order)
    first, granted = _closure(pod, candidates)
    first_granted = granted
    excluded: set[str] = set()
    while True:
        roster = _derive(pod, granted)
        roster.known = first.known()
        bad = {e.id for e in granted if roster.verdict(e) is not _YES}
        if not bad:
            break
        excluded |= bad
        _, granted = _closure(pod, [e for e in candidates if e.id not in excluded])
    roster.events = events
    roster.counted = frozenset(e.id for e in granted)
    roster.granted = frozenset(e.id for e in first_granted)
    roster.ever_linked = {k: min(persons) for k, persons in first.links.items()}
    roster.ever_admin = first.ever_admin()
    roster.named = frozenset(k for e in candidates for k in _names(e.body))
    return roster


def _names(body: msgspec.Struct) -> list[str]:
    """The keys a roster event's body names."""
    found = (getattr(body, name, None) for name in ("key", "member", "new_key"))
    return [value for value in found if isinstance(value, str)]


def _newcomer(old: PodRoster, event: RosterEvent) -> PodRoster | None:
    """``build`` with one more event, computed without rebuilding, when that is sure to give
    the same roster: a ``member.added`` of a key nothing stored mentions yet, that counts as it
    stands. (A pod's members are mostly added this way; a full build per event would make
    adding the n-th member cost O(n).)"""
    body = event.body
    if not isinstance(body, kinds.MemberAdded) or event.id in old.events:
        return None
    key = body.key
    if key in old.known or key in old.named:
        return None
    if old.verdict(event) is not _YES or old.role_at(event.head.author, event.head.ts) is None:
        return None
    new = copy.copy(old)
    new.events = {**old.events, event.id: event}
    new.counted = old.counted | {event.id}
    new.granted = old.granted | {event.id}
    new.known = old.known | {key}
    new.named = old.named | {key}
    new.members = {**old.members, key: Member(key, body.role, body.box_key)}
    new.members[key].history.append((event.head.ts, event.id, body.role, body.box_key))
    new.members[key].removed = dict(old.removed_keys.get(key, {}))
    new.members[key].blocked = {
        scope: toggles[-1][0]
        for scope, toggles in old.toggles.get(key, {}).items()
        if toggles and toggles[-1][3]
    }
    if body.role == "coordinator":
        new.ever_admin = old.ever_admin | {key}
    return new


#: Where each kind carries a sealed field, and who may be its recipients: the members of the
#: event's own pod, or the coordinators of the pod a referral is assigned to.
_SEALED_FIELDS: dict[str, tuple[str, Literal["members", "to_pod_coordinators"]]] = {
    "need.posted": ("personal", "members"),
    "claim.accepted": ("personal", "members"),
    "profile.set": ("contact", "members"),
    "report.filed": ("sealed", "members"),
    "gathering.scheduled": ("place_sealed", "members"),
    "overflow.assigned": ("details", "to_pod_coordinators"),
}


def _anonymous_id(head: Head, body: msgspec.Struct | None) -> str:
    """An id for a roster event given without one (tests, HELLO attestation)."""
    digest = hashlib.sha256(msgspec.json.encode([head, body])).hexdigest()
    return f"local:{digest}"


class Roster:
    """Rosters of every pod this node knows."""

    def __init__(self) -> None:
        self.pods: dict[str, PodRoster] = {}

    def pod(self, pod: str) -> PodRoster:
        """The roster of ``pod`` (created empty on first use)."""
        roster = self.pods.get(pod)
        if roster is None:
            roster = self.pods[pod] = PodRoster(pod)
        return roster

    def box_keys(self, pod: str, *, coordinators_only: bool = False) -> set[str]:
        """The box keys of ``pod``'s active members (or only its coordinators)."""
        roster = self.pods.get(pod)
        if roster is None:
            return set()
        return {
            m.box_key
            for key, m in roster.members.items()
            if roster.is_active(key) and (m.role == "coordinator" or not coordinators_only)
        }

    def sealed_to_outsiders(self, head: Head, body: msgspec.Struct | None) -> str | None:
        """Why a sealed field of this event is addressed to someone it must not be, or ``None``.

        Checked for a client's post only (a relayed event is judged by its own node): sealing
        to a key outside the pod would hand a person's details to a stranger.
        """
        rule = _SEALED_FIELDS.get(head.kind)
        if rule is None or body is None:
            return None
        field_name, who = rule
        sealed = getattr(body, field_name, None)
        if sealed is None:
            return None
        if who == "members":
            allowed = self.box_keys(head.pod)
            whom = "members of this pod"
        else:
            allowed = self.box_keys(getattr(body, "to_pod", ""), coordinators_only=True)
            whom = "the coordinators of the pod it is assigned to"
        if any(recipient.key not in allowed for recipient in sealed.to):
            return f"`{field_name}` is sealed to a key that is not one of {whom}"
        return None

    def snapshot(self) -> Roster:
        """A copy to restore if a write transaction fails (pod rosters are replaced, never
        changed in place, so a shallow copy of the map is enough)."""
        copied = Roster()
        copied.pods = dict(self.pods)
        return copied

    def authorize(self, head: Head) -> Authorization:
        """May ``head.author`` write at this position of this log?

        For a roster kind, whether it would count if it arrived now (``admit`` decides for an
        event being stored).
        """
        if head.kind == "pod.created":
            ok = head.author == head.pod and head.scope == "public"
            return _YES if ok else _NO
        roster = self.pods.get(head.pod)
        if head.kind in kinds.ROSTER_KINDS and not roster_scope_ok(head.kind, head.scope):
            return _NO
        if roster is None:
            return _UNKNOWN
        if head.kind not in kinds.ROSTER_KINDS:
            return roster.at_position(head)
        position = roster.at_position(head)
        if position is not _YES:
            return position
        if head.kind in _ROOT_ONLY:
            return _YES if head.author in roster.roots else _NO
        return _YES if roster.role_at(head.author, head.ts) in _ADMIN_ROLES else _NO

    def admit(
        self, event_id: str, head: Head, body: msgspec.Struct
    ) -> tuple[Authorization, PodRoster]:
        """Would roster event ``event_id`` count, with it added to its pod's events?

        Returns the verdict and the pod's roster with the event among its events (install it
        with ``install`` once the event is stored; drop it to leave the roster as it was).
        """
        old = self.pods.get(head.pod) or PodRoster(head.pod)
        event = RosterEvent(event_id, head, body)
        quick = _newcomer(old, event)
        if quick is not None:
            return _YES, quick
        new = build(head.pod, {**old.events, event_id: event})
        if event_id in new.counted:
            return _YES, new
        if head.kind == "pod.created" or not roster_scope_ok(head.kind, head.scope):
            return _NO, new
        if event_id not in new.granted:
            # Nobody who may sign it as far as this node knows: held for the roster event
            # that would admit it (a promotion, a rotation), like an unknown author.
            return _UNKNOWN, new
        verdict = new.verdict(event)
        if verdict is _YES:  # excluded along the way, by an event that no longer counts
            verdict = _ENDED
        return verdict, new

    def install(self, roster: PodRoster) -> None:
        """Make ``roster`` the pod's roster."""
        self.pods[roster.pod] = roster

    def may_redact(self, redaction: Head, target: Head | RedactionTarget) -> bool:
        """Does a redaction erase the target: by its author (any key of the same person) or by
        someone who was ever an admin of the pod, in the same pod and scope?

        Deliberately blind to positions and later removals: an erased body cannot come back,
        so this must only ever grow with the roster events a node holds (docs/decisions.md D38).
        """
        if redaction.pod != target.pod or redaction.scope != target.scope:
            return False
        if redaction.author == target.author:
            return True
        roster = self.pods.get(target.pod)
        if roster is None:
            return False
        if redaction.author in roster.ever_admin:
            return True
        linked = roster.ever_linked
        return linked.get(redaction.author, redaction.author) == linked.get(
            target.author, target.author
        )

    def effect_of(self, head: Head, body: msgspec.Struct | None) -> Effect:
        """What an accepted roster event will do, asked *before* it is installed."""
        roster = self.pods.get(head.pod)
        members = {} if roster is None else roster.members
        if isinstance(body, kinds.MemberAdded):
            existing = members.get(body.key)
            if existing is None:
                return applied("member added")
            if (existing.role, existing.box_key) == (body.role, body.box_key):
                return no_effect("already-member", "member already added, with this role and key")
            return applied("member updated: new role or box key")
        if isinstance(body, kinds.MemberRemoved | kinds.MemberBlocked):
            if roster is None or roster.person_of(body.key) is None:
                return no_effect("not-a-member", "the key is not a member of this pod")
            removal = isinstance(body, kinds.MemberRemoved)
            stated = roster.removed_keys if removal else roster.toggles
            now = stated.get(body.key, {})
            if removal and all(now.get(str(k)) == v for k, v in body.effective.items()):
                return no_effect("already-removed", "the member is already removed from there")
            if not removal and roster.is_blocked(body.key):
                return no_effect("already-blocked", "the member is already blocked")
            return applied("member removed" if removal else "member blocked")
        if isinstance(body, kinds.MemberUnblocked):
            if roster is None or roster.person_of(body.key) is None:
                return no_effect("not-a-member", "the key is not a member of this pod")
            if not roster.is_blocked(body.key):
                return no_effect("not-blocked", "the member is not blocked")
            return applied("member unblocked")
        if isinstance(body, kinds.MemberKeyAdded):
            if roster is not None and roster.devices.get(body.key) == body.member:
                return no_effect("already-linked", "the key is already linked to this member")
            return applied("device key linked")
        if isinstance(body, kinds.MemberKeyRevoked):
            return applied("device key revoked")
        return applied()

    def apply(self, head: Head, body: msgspec.Struct | None, event_id: str | None = None) -> None:
        """Add one roster event to its pod's events and rebuild that pod's roster.

        It counts only if ``build`` says so (a roster event by someone who may not write it
        changes nothing).
        """
        self.pod(head.pod)
        if body is None or head.kind not in kinds.ROSTER_KINDS:
            return
        _, roster = self.admit(event_id or _anonymous_id(head, body), head, body)
        self.install(roster)


class RedactionTarget(msgspec.Struct, frozen=True):
    """The head facts of a stored redaction target."""

    pod: str
    author: str
    scope: str
    kind: str


__all__ = [
    "Member",
    "PodRoster",
    "RedactionTarget",
    "Roster",
    "RosterEvent",
    "build",
]
