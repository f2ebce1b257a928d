"""The moderation view: reports, coordinator actions and neighbours' block advice, read from
the signed events themselves (docs/moderation.md).

Nothing here is state of its own. The log is the audit trail: every report, every resolution,
every block, unblock, removal, device revocation and recovery is an event signed by a person's
key, with its time and reason; this room only reads them back, in order, and says who signed
each one (the *person*, through the roster, so a coordinator's phone and laptop are one name).

- A **report** is open until a coordinator (or the node, or the root) signs a
  ``report.resolved`` naming it; a resolution by anyone else changes nothing (D41).
- An **action** is a roster event of this pod that moderates someone: ``member.blocked``,
  ``member.unblocked``, ``member.removed``, ``member.key_revoked``, and ``member.key_added`` when
  a coordinator (not the member) signed it — a recovery.
- An **advisory** is a neighbour's ``block.advised`` (peers scope), signed by one of that pod's
  coordinators or its node key. It is shown, never applied: it is ``adopted`` once one of this
  pod's coordinators signs a ``member.blocked`` naming it as its ``advisory`` (D42).

Reports pass ``may_read`` like any other read, so a coordinator never sees a report about
themselves here either.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

import msgspec

from node.access import Reader, ReportParties, needs_about, visible
from node.roster import PodRoster, Roster
from node.store.base import EventQuery, Store, StoredEvent
from protocol import kinds
from protocol.reasons import RejectedEvent

__all__ = [
    "ADMIN_ROLES",
    "ActionItem",
    "AdvisoryItem",
    "MemberItem",
    "ModerationView",
    "ReportItem",
    "members_of",
    "moderation_view",
]

#: The roles that moderate: a pod's coordinators, its node key and its root.
ADMIN_ROLES = frozenset({"root", "node", "coordinator"})

#: Rows per store query while reading the moderation kinds back.
_PAGE = 1000

#: What each moderating roster kind is called in the view.
_ACTIONS: dict[str, str] = {
    "member.blocked": "block",
    "member.unblocked": "unblock",
    "member.removed": "remove",
    "member.key_revoked": "revoke-device",
    "member.key_added": "recover",
}

AboutLookup = Callable[[Sequence[int]], Awaitable[dict[int, ReportParties]]]


class ReportItem(msgspec.Struct, frozen=True, kw_only=True):
    """One report as a coordinator reads it.

    ``by`` is the person who filed it; ``about`` the key it names and ``about_person`` whose key
    that is; ``event`` the event it is about. ``text`` is ``null`` once erased. ``sealed`` says
    whether it carries a sealed part (open it with a coordinator's key file). ``status`` is
    ``open`` until a coordinator resolves it; then ``resolution`` is that event's id.
    """

    id: str
    by: str
    ts: int
    about: str | None
    about_person: str | None
    event: str | None
    text: str | None
    sealed: bool
    status: Literal["open", "resolved"]
    resolution: str | None = None
    resolved_by: str | None = None
    resolved_at: int | None = None
    note: str | None = None
    action: str | None = None


class ActionItem(msgspec.Struct, frozen=True, kw_only=True):
    """One coordinator action, as the log has it: who (person) did what to whom, when, why.

    ``position`` is the event's ``effective`` (block, unblock, removal: the first seq affected
    in each scope) or ``valid_through`` (revocation: the last seq still valid).
    """

    id: str
    action: str
    kind: str
    key: str
    person: str | None
    by: str
    by_role: str | None
    ts: int
    reason: str | None
    position: dict[str, int]
    advisory: str | None = None


class AdvisoryItem(msgspec.Struct, frozen=True, kw_only=True):
    """A block advice: ``incoming`` from a direct peer, or ``outgoing`` (this pod's own).

    ``member_here``: the key is (or belongs to) a member of this pod. ``status`` is ``adopted``
    once a coordinator here signed a ``member.blocked`` naming it (``adopted_by``); an incoming
    advisory is never applied otherwise.
    """

    id: str
    direction: Literal["incoming", "outgoing"]
    pod: str
    by: str
    ts: int
    key: str
    reason: str
    blocked: str | None
    member_here: bool
    status: Literal["open", "adopted"]
    adopted_by: str | None = None


class ModerationView(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/moderation``: open reports first (oldest first), then resolved ones; actions
    and advisories newest first."""

    pod: str
    open_reports: int
    reports: list[ReportItem]
    actions: list[ActionItem]
    advisories: list[AdvisoryItem]


class DeviceItem(msgspec.Struct, frozen=True, kw_only=True):
    """A device key linked to a member; ``valid_through`` once revoked."""

    key: str
    revoked: bool
    valid_through: dict[str, int] | None = None


class MemberItem(msgspec.Struct, frozen=True, kw_only=True):
    """A person on the roster: their primary key, role, status and device keys.

    ``status`` is ``removed`` or ``blocked`` once a removal or block names them (``removed`` and
    ``blocked`` hold its positions), else ``active``; ``primary_revoked`` when the key they
    joined with was revoked (a recovery: they act through a newer device key).
    """

    key: str
    role: str
    status: Literal["active", "blocked", "removed"]
    box_key: str
    devices: list[DeviceItem]
    primary_revoked: bool
    removed: dict[str, int]
    blocked: dict[str, int]


class _Event(msgspec.Struct, frozen=True):
    id: str
    cursor: int
    pod: str
    author: str
    scope: str
    kind: str
    ts: int
    body: Any


class _Wire(msgspec.Struct, frozen=True):
    head: str
    body: str | None


class _Head(msgspec.Struct, frozen=True):
    ts: int


_wire = msgspec.json.Decoder(_Wire)
_head = msgspec.json.Decoder(_Head)


def _decoded(row: StoredEvent) -> _Event:
    """A stored event with its body checked against its kind (``None`` if erased or invalid)."""
    wire = _wire.decode(row.envelope)
    body = None
    if wire.body is not None:
        try:
            body = kinds.validate_body(row.kind, msgspec.json.decode(wire.body))
        except RejectedEvent:  # stored from a peer unprojected: not a moderation fact
            body = None
    ts = _head.decode(wire.head).ts
    return _Event(row.id, row.cursor, row.pod, row.author, row.scope, row.kind, ts, body)


async def _all(store: Store, query: EventQuery) -> list[StoredEvent]:
    rows: list[StoredEvent] = []
    q = msgspec.structs.replace(query, limit=_PAGE)
    while True:
        page = await store.query(q)
        rows.extend(page)
        if len(page) < _PAGE:
            return rows
        q = msgspec.structs.replace(q, after=page[-1].cursor)


def _person(roster: PodRoster | None, key: str) -> str:
    return (roster.person_of(key) if roster is not None else None) or key


def _is_admin(roster: PodRoster | None, key: str) -> bool:
    return roster is not None and roster.role_of(key) in ADMIN_ROLES


async def moderation_view(
    *, store: Store, roster: Roster, pod: str, reader: Reader, about: AboutLookup
) -> ModerationView:
    """The moderation view of ``pod`` for ``reader`` (a coordinator: the route checks)."""
    here = roster.pods.get(pod)
    stored = await _all(
        store, EventQuery(kinds=("report.filed", "report.resolved"), pods=(pod,), scopes=("pod",))
    )
    shown = visible(reader, stored, await about(needs_about(reader, stored)))
    reports = [_decoded(row) for row in shown]
    actions = [
        _decoded(row)
        for row in await _all(
            store, EventQuery(kinds=tuple(_ACTIONS), pods=(pod,), scopes=("public",))
        )
    ]
    advised = [
        _decoded(row)
        for row in await _all(store, EventQuery(kinds=("block.advised",), scopes=("peers",)))
    ]
    return ModerationView(
        pod=pod,
        **_reports(reports, here),
        actions=_actions(actions, here),
        advisories=_advisories(advised, actions, roster, pod),
    )


def _reports(events: list[_Event], roster: PodRoster | None) -> dict[str, Any]:
    resolutions: dict[str, _Event] = {}
    for ev in events:  # commit order: the first resolution by a coordinator counts
        if isinstance(ev.body, kinds.ReportResolved) and _is_admin(roster, ev.author):
            resolutions.setdefault(ev.body.report, ev)
    items = []
    for ev in events:
        if ev.kind != "report.filed":
            continue
        body = ev.body if isinstance(ev.body, kinds.ReportFiled) else None
        about = None if body is None else body.about
        done = resolutions.get(ev.id)
        closing = done.body if done is not None else None
        assert closing is None or isinstance(closing, kinds.ReportResolved)
        items.append(
            ReportItem(
                id=ev.id,
                by=_person(roster, ev.author),
                ts=ev.ts,
                about=about,
                about_person=None if about is None else _person(roster, about),
                event=None if body is None else body.event,
                text=None if body is None else body.text,
                sealed=body is not None and body.sealed is not None,
                status="open" if done is None else "resolved",
                resolution=None if done is None else done.id,
                resolved_by=None if done is None else _person(roster, done.author),
                resolved_at=None if done is None else done.ts,
                note=None if closing is None else closing.note,
                action=None if closing is None else closing.action,
            )
        )
    items.sort(key=lambda r: (r.status != "open", r.ts if r.status == "open" else -r.ts, r.id))
    return {"open_reports": sum(r.status == "open" for r in items), "reports": items}


def _actions(events: list[_Event], roster: PodRoster | None) -> list[ActionItem]:
    items = []
    for ev in events:
        body = ev.body
        if body is None:
            continue
        if isinstance(body, kinds.MemberKeyAdded):
            if not _is_admin(roster, ev.author) or _person(roster, ev.author) == body.member:
                continue  # a member linking their own device: not a moderation action
            key, person, position = body.key, body.member, {}
        else:
            key = getattr(body, "key", "")
            person = _person(roster, key)
            position = dict(getattr(body, "effective", None) or getattr(body, "valid_through", {}))
        items.append(
            ActionItem(
                id=ev.id,
                action=_ACTIONS[ev.kind],
                kind=ev.kind,
                key=key,
                person=person,
                by=_person(roster, ev.author),
                by_role=None if roster is None else roster.role_of(ev.author),
                ts=ev.ts,
                reason=getattr(body, "reason", None),
                position=position,
                advisory=getattr(body, "advisory", None),
            )
        )
    items.sort(key=lambda a: (-a.ts, a.id))
    return items


def _advisories(
    advised: list[_Event], actions: list[_Event], roster: Roster, pod: str
) -> list[AdvisoryItem]:
    here = roster.pods.get(pod)
    adopted: dict[str, str] = {}
    for ev in actions:
        body = ev.body
        if isinstance(body, kinds.MemberBlocked) and body.advisory and _is_admin(here, ev.author):
            adopted.setdefault(body.advisory, ev.id)
    items = []
    for ev in advised:
        body = ev.body
        source = roster.pods.get(ev.pod)
        # Advice counts only from the advising pod's coordinators (or its node key or root).
        if not isinstance(body, kinds.BlockAdvised) or not _is_admin(source, ev.author):
            continue
        person = here.person_of(body.key) if here is not None else None
        taken = adopted.get(ev.id)
        items.append(
            AdvisoryItem(
                id=ev.id,
                direction="outgoing" if ev.pod == pod else "incoming",
                pod=ev.pod,
                by=_person(source, ev.author),
                ts=ev.ts,
                key=body.key,
                reason=body.reason,
                blocked=body.blocked,
                member_here=person is not None and here is not None and person in here.members,
                status="open" if taken is None else "adopted",
                adopted_by=taken,
            )
        )
    items.sort(key=lambda a: (-a.ts, a.id))
    return items


def members_of(roster: PodRoster | None) -> list[MemberItem]:
    """Every person on ``roster``, coordinators first, then by key; with their device keys."""
    if roster is None:
        return []
    devices: dict[str, list[DeviceItem]] = {}
    for device, person in sorted(roster.devices.items()):
        through = roster.revoked.get(device)
        devices.setdefault(person, []).append(
            DeviceItem(key=device, revoked=through is not None, valid_through=through)
        )
    items = [
        MemberItem(
            key=m.key,
            role=m.role,
            status="removed" if m.removed else "blocked" if m.blocked else "active",
            box_key=m.box_key,
            devices=devices.get(m.key, []),
            primary_revoked=m.key in roster.revoked,
            removed=dict(m.removed),
            blocked=dict(m.blocked),
        )
        for m in roster.members.values()
    ]
    items.sort(key=lambda m: (m.role != "coordinator", m.key))
    return items
