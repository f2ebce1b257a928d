"""The roster: who may write in a pod, decided from roster events (DESIGN §3).

A pure in-memory model fed by roster events as they are committed and rebuilt from the
store at start-up. Roster events are small and few, so the whole roster of every known pod
fits in memory.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from node.projections.effects import Effect, applied, no_effect
from protocol import kinds
from protocol.envelope import Head
from protocol.validate import Authorization

Role = Literal["root", "node", "coordinator", "member"]
_ADMIN_ROLES = frozenset({"root", "node", "coordinator"})


@dataclass
class Member:
    """A person in a pod: their primary key, role, X25519 box key and any stated ends."""

    key: str
    role: Literal["coordinator", "member"]
    box_key: str
    removed: dict[str, int] = field(default_factory=dict)  # scope -> first seq no longer valid
    blocked: dict[str, int] = field(default_factory=dict)  # scope -> first seq blocked


@dataclass
class PodRoster:
    """The roster of one pod."""

    pod: str
    created: bool = False
    roots: dict[str, int | None] = field(default_factory=dict)  # key -> last valid seq or None
    node_keys: set[str] = field(default_factory=set)
    members: dict[str, Member] = field(default_factory=dict)
    devices: dict[str, str] = field(default_factory=dict)  # device key -> person key
    revoked: dict[str, dict[str, int]] = field(default_factory=dict)  # key -> scope -> last seq
    name: str = ""

    def __post_init__(self) -> None:
        # The pod id *is* its genesis root key: it is a root from the start.
        self.roots.setdefault(self.pod, None)

    def person_of(self, key: str) -> str | None:
        """The person a key belongs to (itself for a primary key), or None if unknown."""
        if key in self.members:
            return key
        if key in self.roots or key in self.node_keys:
            return key
        return self.devices.get(key)

    def role_of(self, key: str) -> Role | None:
        """The role a key acts with, or None for an unknown key."""
        if key in self.roots:
            return "root"
        if key in self.node_keys:
            return "node"
        person = self.devices.get(key, key)
        member = self.members.get(person)
        return member.role if member is not None else None

    def is_active(self, key: str) -> bool:
        """May this key still act for its person now (read with a token)?

        False once the key is revoked, or its person removed or blocked in any scope.
        """
        if key in self.revoked:
            return False
        if key in self.roots:
            return self.roots[key] is None
        person = self.person_of(key)
        member = self.members.get(person) if person is not None else None
        if member is not None and (member.removed or member.blocked):
            return False
        return person is not None

    def box_key(self, person: str) -> str | None:
        """A member's X25519 box key (for sealing fields to them)."""
        member = self.members.get(person)
        return member.box_key if member is not None else None


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
            roster = self.pods.get(head.pod)
            allowed = (
                set()
                if roster is None
                else {m.box_key for key, m in roster.members.items() if roster.is_active(key)}
            )
            whom = "members of this pod"
        else:
            to_pod = getattr(body, "to_pod", "")
            roster = self.pods.get(to_pod)
            allowed = (
                set()
                if roster is None
                else {
                    m.box_key
                    for key, m in roster.members.items()
                    if m.role == "coordinator" and roster.is_active(key)
                }
            )
            whom = "the coordinators of the pod it is assigned to"
        if any(recipient.key not in allowed for recipient in sealed.to):
            return f"`{field_name}` is sealed to a key that is not one of {whom}"
        return None

    def snapshot(self) -> Roster:
        """A deep copy, to restore if a write transaction fails."""
        return copy.deepcopy(self)

    def authorize(self, head: Head) -> Authorization:
        """May ``head.author`` write at this position of this log?"""
        roster = self.pods.get(head.pod)
        if head.kind == "pod.created":
            ok = head.author == head.pod and head.scope == "public"
            return Authorization.YES if ok else Authorization.NO
        if roster is None:
            return Authorization.UNKNOWN
        role = roster.role_of(head.author)
        if head.kind in kinds.ROSTER_KINDS:
            if head.scope != "public":
                return Authorization.NO
            needed = {"root"} if head.kind in ("pod.root_rotated", "node.key") else _ADMIN_ROLES
            if role is None:
                return Authorization.UNKNOWN
            if role not in needed:
                return Authorization.NO
            # A rotated-out root, a removed or blocked coordinator, a revoked device key:
            # the same position rules as for any other event (below).
        elif role is None:
            return Authorization.UNKNOWN
        if role == "root":
            last = roster.roots[head.author]
            return Authorization.YES if last is None or head.seq <= last else Authorization.NO
        person = roster.person_of(head.author)
        member = roster.members.get(person) if person is not None else None
        revoked = roster.revoked.get(head.author, {})
        if head.scope in revoked and head.seq > revoked[head.scope]:
            return Authorization.NO
        if member is not None:
            if head.scope in member.removed and head.seq >= member.removed[head.scope]:
                return Authorization.NO
            if head.scope in member.blocked and head.seq >= member.blocked[head.scope]:
                return Authorization.BLOCKED
        return Authorization.YES

    def effect_of(self, head: Head, body: msgspec.Struct | None) -> Effect:
        """What an accepted roster event will do, asked *before* ``apply``."""
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
            member = members.get(body.key)
            if member is None:
                return no_effect("not-a-member", "the key is not a member of this pod")
            stated = member.removed if isinstance(body, kinds.MemberRemoved) else member.blocked
            if all(stated.get(str(k)) == v for k, v in body.effective.items()):
                word = "removed" if isinstance(body, kinds.MemberRemoved) else "blocked"
                return no_effect(f"already-{word}", f"the member is already {word} from there")
            return applied(
                "member removed" if isinstance(body, kinds.MemberRemoved) else "member blocked"
            )
        if isinstance(body, kinds.MemberKeyAdded):
            if roster is not None and roster.devices.get(body.key) == body.member:
                return no_effect("already-linked", "the key is already linked to this member")
            return applied("device key linked")
        return applied()

    def apply(self, head: Head, body: msgspec.Struct | None) -> None:
        """Fold one accepted roster event into the roster."""
        roster = self.pod(head.pod)
        if isinstance(body, kinds.PodCreated):
            roster.created = True
            roster.name = body.name
        elif isinstance(body, kinds.PodRootRotated):
            roster.roots[head.author] = head.seq
            roster.roots.setdefault(body.new_key, None)
        elif isinstance(body, kinds.NodeKey):
            roster.node_keys.add(body.key)
        elif isinstance(body, kinds.MemberAdded):
            existing = roster.members.get(body.key)
            if existing is None:
                roster.members[body.key] = Member(body.key, body.role, body.box_key)
            else:
                existing.role = body.role
                existing.box_key = body.box_key
        elif isinstance(body, kinds.MemberRemoved):
            member = roster.members.get(body.key)
            if member is not None:
                member.removed.update({str(k): v for k, v in body.effective.items()})
        elif isinstance(body, kinds.MemberKeyAdded):
            roster.devices[body.key] = body.member
        elif isinstance(body, kinds.MemberKeyRevoked):
            roster.revoked[body.key] = {str(k): v for k, v in body.valid_through.items()}
        elif isinstance(body, kinds.MemberBlocked):
            member = roster.members.get(body.key)
            if member is not None:
                member.blocked.update({str(k): v for k, v in body.effective.items()})
