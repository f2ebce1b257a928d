"""The erasures read model: every ``event.redacted`` and every ``erasure.confirmed`` receipt.

Two insert-only tables, one row per event, so the model is a function of the event *set*
(applying is a set union; the same rows on every node that holds the same events, and the
projection hash covers them):

* ``pj_erasures`` — one row per redaction: which pod and scope, its target, who signed it (key,
  person, role) and when. Never a body: a redaction carries only the target's id.
* ``pj_erasure_receipts`` — one row per ``erasure.confirmed``: which pod confirmed (the pod of
  the receipt's log), who signed it (only a pod's node, root or coordinators count), and the
  redaction and target it names.

What a redaction *did* — erased, still waiting for its target, or refused because its target
may not be erased (``not-redactable``) or not by that person (``not-allowed``) — is decided when
read, by ``status_of`` from the target's head as stored: the same rule ingest applies
(node/ingest.py ``may_redact``), asked of the same facts.

>>> import sqlite3
>>> from protocol.kinds import ErasureConfirmed
>>> conn = sqlite3.connect(":memory:")
>>> _ = conn.executescript(SCHEMA)
>>> apply(conn, _input("R1", "erasure.confirmed", ErasureConfirmed(redaction="R0", target="T")))
Effect(ok=True, reason='applied', message='erasure confirmed')
>>> confirmed_pods(conn, "T", erasing_pod="A")
['B']
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Literal

import msgspec

from node.projections.effects import Effect, applied, no_effect
from node.projections.facts import COORDINATING_ROLES, ProjectionInput
from protocol.kinds import ErasureConfirmed, EventRedacted, is_redactable

__all__ = [
    "HASHED",
    "KINDS",
    "SCHEMA",
    "ErasureRow",
    "ErasureStatus",
    "TargetHead",
    "apply",
    "confirmed_pods",
    "list_erasures",
    "needs_past_retention",
    "projected_as",
    "reset",
    "status_of",
    "target_head",
    "unapply",
]

#: The kinds this model reads.
KINDS = frozenset({"event.redacted", "erasure.confirmed"})

SCHEMA = """
CREATE TABLE IF NOT EXISTS pj_erasures (
    id TEXT PRIMARY KEY,
    pod TEXT NOT NULL,
    scope TEXT NOT NULL,
    target TEXT NOT NULL,
    author TEXT NOT NULL,
    person TEXT NOT NULL,
    role TEXT NOT NULL,
    ts INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pj_erasures_target ON pj_erasures (target);
CREATE INDEX IF NOT EXISTS pj_erasures_pod ON pj_erasures (pod, ts, id);
CREATE TABLE IF NOT EXISTS pj_erasure_receipts (
    id TEXT PRIMARY KEY,
    pod TEXT NOT NULL,
    author TEXT NOT NULL,
    role TEXT NOT NULL,
    scope TEXT NOT NULL,
    redaction TEXT NOT NULL,
    target TEXT NOT NULL,
    ts INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pj_erasure_receipts_target ON pj_erasure_receipts (target, pod);
"""

_TABLES = ("pj_erasures", "pj_erasure_receipts")

#: The rows the projection hash covers, each table in primary-key order.
HASHED = (
    "SELECT id, pod, scope, target, author, person, role, ts FROM pj_erasures ORDER BY id",
    "SELECT id, pod, author, role, scope, redaction, target, ts FROM pj_erasure_receipts"
    " ORDER BY id",
)

#: A receipt counts when it is in ``peers`` scope (it is meant for the direct peers) and signed
#: by the confirming pod's node, root or a coordinator: a member cannot speak for the node.
_COUNTED = "scope = 'peers' AND role IN ('root', 'node', 'coordinator')"

#: What a redaction did, as read now: ``erased`` (the target is here and has no body),
#: ``waiting`` (the target is not here: it is stored without its body if it comes),
#: ``not-redactable`` (records are never erased), ``not-allowed`` (neither its author nor a
#: coordinator signed the redaction, or it names another pod's or scope's event).
ErasureStatus = Literal["erased", "waiting", "not-redactable", "not-allowed"]


class TargetHead(msgspec.Struct, frozen=True, kw_only=True):
    """What the stored head of a redaction's target says (and who its author is as a person)."""

    pod: str
    author: str
    person: str
    scope: str
    kind: str
    has_body: bool
    #: The redaction the store recorded as erasing it (ingest's own decision, D38), if any.
    erased_by: str | None = None


class ErasureRow(msgspec.Struct, frozen=True, kw_only=True):
    """One redaction as this model holds it, with what it did and which pods confirmed it.

    ``person`` is who erased (a member, not a device key); ``target_person`` the target's
    author, when the target is here; ``confirmed_by`` the pods whose node confirmed that it
    holds no body of the target (the erasing pod itself never counts).
    """

    id: str
    pod: str
    scope: str
    target: str
    author: str
    person: str
    role: str
    ts: int
    status: ErasureStatus
    target_kind: str | None
    target_person: str | None
    confirmed_by: tuple[str, ...]


# --- writing -----------------------------------------------------------------------------


def apply(conn: sqlite3.Connection, ev: ProjectionInput) -> Effect | None:
    """Record a redaction or a receipt (idempotent: ``None`` for a repeat, as for other kinds).

    A redaction's effect is ingest's to say (it erased, or why not), so this answers ``None``
    for it; a receipt is answered here.
    """
    body = ev.body
    if isinstance(body, EventRedacted):
        conn.execute(
            "INSERT OR IGNORE INTO pj_erasures (id, pod, scope, target, author, person, role, ts)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (ev.id, ev.pod, ev.scope, body.target, ev.author, ev.person, ev.role, ev.ts),
        )
        return None
    if not isinstance(body, ErasureConfirmed):
        return None
    inserted = conn.execute(
        "INSERT OR IGNORE INTO pj_erasure_receipts"
        " (id, pod, author, role, scope, redaction, target, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (ev.id, ev.pod, ev.author, ev.role, ev.scope, body.redaction, body.target, ev.ts),
    ).rowcount
    if not inserted:
        return None
    if ev.role not in COORDINATING_ROLES:
        return no_effect("not-allowed", "only a pod's node or coordinators confirm erasures")
    if ev.scope != "peers":
        return no_effect("scope", "a receipt counts in peers scope only (it is for the peers)")
    return applied("erasure confirmed")


def unapply(conn: sqlite3.Connection, event_id: str) -> bool:
    """Take a redaction's or receipt's row back out (its author's authority ended before it,
    D38): the model is then as if it had never been applied. Returns whether there was one."""
    gone = conn.execute("DELETE FROM pj_erasures WHERE id = ?", (event_id,)).rowcount
    gone += conn.execute("DELETE FROM pj_erasure_receipts WHERE id = ?", (event_id,)).rowcount
    return gone > 0


def projected_as(conn: sqlite3.Connection, event_id: str) -> tuple[str, str] | None:
    """The (person, role) a redaction's row was recorded with, or None if it has no row.

    A receipt's row keeps no person: it answers ``("", role)``, which never matches a person,
    so a change of its author's standing always applies it again (idempotently).
    """
    row = conn.execute("SELECT person, role FROM pj_erasures WHERE id = ?", (event_id,)).fetchone()
    if row is not None:
        return (row[0], row[1])
    row = conn.execute("SELECT role FROM pj_erasure_receipts WHERE id = ?", (event_id,)).fetchone()
    return None if row is None else ("", row[0])


def reset(conn: sqlite3.Connection) -> None:
    """Delete every row (a rebuild re-applies every event)."""
    for table in _TABLES:
        conn.execute(f"DELETE FROM {table}")


# --- the rule ----------------------------------------------------------------------------


def status_of(
    *,
    pod: str,
    scope: str,
    author: str,
    person: str,
    role: str,
    target: TargetHead | None,
    redaction: str | None = None,
) -> ErasureStatus:
    """What a redaction by ``author`` (``person``, ``role``) in ``pod``/``scope`` did to
    ``target`` — the rule of DESIGN §4, as ingest applies it.

    >>> t = TargetHead(pod="P", author="K", person="ada", scope="pod", kind="need.posted",
    ...                has_body=False)
    >>> status_of(pod="P", scope="pod", author="K2", person="ada", role="member", target=t)
    'erased'
    >>> status_of(pod="P", scope="pod", author="B", person="bo", role="member", target=t)
    'not-allowed'
    """
    if target is None:
        return "waiting"
    if redaction is not None and target.erased_by == redaction:
        return "erased"  # what ingest decided (it also counts keys ever linked or ever admin)
    if not is_redactable(target.kind):
        return "not-redactable"
    if target.pod != pod or target.scope != scope:
        return "not-allowed"
    if author != target.author and person != target.person and role not in COORDINATING_ROLES:
        return "not-allowed"
    return "erased"


# --- reading -----------------------------------------------------------------------------


def target_head(conn: sqlite3.Connection, target: str) -> TargetHead | None:
    """The stored head of ``target`` (not a fork's proof), or ``None`` if it is not here.

    Reads the store's ``events`` table (the event set itself) and the target's fact for its
    author as a person; an event the projections do not read counts its key as the person.
    """
    row = conn.execute(
        "SELECT e.pod, e.author, e.scope, e.kind, e.body IS NOT NULL, f.person, r.by_id"
        " FROM events e LEFT JOIN pj_facts f ON f.id = e.id"
        " LEFT JOIN redactions r ON r.target = e.id"
        " WHERE e.id = ? AND e.placement != 1",
        (target,),
    ).fetchone()
    if row is None:
        return None
    pod, author, scope, kind, has_body, person, erased_by = row
    return TargetHead(
        pod=pod,
        author=author,
        person=person or author,
        scope=scope,
        kind=kind,
        has_body=bool(has_body),
        erased_by=erased_by,
    )


def confirmed_pods(conn: sqlite3.Connection, target: str, *, erasing_pod: str) -> list[str]:
    """The pods (other than ``erasing_pod``) whose node confirmed it holds no body of ``target``."""
    rows = conn.execute(
        f"SELECT DISTINCT pod FROM pj_erasure_receipts WHERE target = ? AND pod != ? AND {_COUNTED}"
        " ORDER BY pod",
        (target, erasing_pod),
    )
    return [row[0] for row in rows]


_ERASURE_COLUMNS = "id, pod, scope, target, author, person, role, ts"


def list_erasures(
    conn: sqlite3.Connection,
    *,
    pod: str | None = None,
    pods: Sequence[str] = (),
    target: str | None = None,
    limit: int = 100,
) -> list[ErasureRow]:
    """Redactions newest first (``ts``, then ``id``): of ``pod``, or of any of ``pods``, or of
    ``target`` — each with what it did and who confirmed it."""
    where: list[str] = []
    params: list[object] = []
    if pod is not None:
        where.append("pod = ?")
        params.append(pod)
    if pods:
        where.append(f"pod IN ({','.join('?' * len(pods))})")
        params.extend(pods)
    if target is not None:
        where.append("target = ?")
        params.append(target)
    params.append(max(0, min(limit, 1000)))
    rows = conn.execute(
        f"SELECT {_ERASURE_COLUMNS} FROM pj_erasures WHERE {' AND '.join(where) or '1'}"
        " ORDER BY ts DESC, id DESC LIMIT ?",
        params,
    ).fetchall()
    out = []
    for rid, rpod, scope, rtarget, author, person, role, ts in rows:
        head = target_head(conn, rtarget)
        status = status_of(
            pod=rpod,
            scope=scope,
            author=author,
            person=person,
            role=role,
            target=head,
            redaction=rid,
        )
        confirmed = confirmed_pods(conn, rtarget, erasing_pod=rpod) if status == "erased" else []
        out.append(
            ErasureRow(
                id=rid,
                pod=rpod,
                scope=scope,
                target=rtarget,
                author=author,
                person=person,
                role=role,
                ts=ts,
                status=status,
                target_kind=None if head is None else head.kind,
                target_person=None if head is None else head.person,
                confirmed_by=tuple(confirmed),
            )
        )
    return out


def needs_past_retention(conn: sqlite3.Connection, *, pod: str, closed_before: int) -> list[str]:
    """Ids of ``pod``'s events that still hold a need's details (``need.posted``,
    ``need.updated``) although the need closed before ``closed_before``: fulfilled or withdrawn
    then, or open with a window that ended then (expired).

    When a need closed is read from its facts: the latest fulfilment or withdrawal of it, or the
    end of its window. A claimed need whose helper never recorded a fulfilment stays.
    """
    rows = conn.execute(
        "SELECT n.id FROM pj_needs n WHERE n.pod = ? AND ("
        " (n.status = 'open' AND n.window_end < ?)"
        " OR (n.status IN ('fulfilled', 'withdrawn') AND (SELECT MAX(f.ts) FROM pj_facts f"
        "  WHERE f.subject = n.id AND f.kind IN ('fulfilment.recorded', 'need.withdrawn')) < ?))",
        (pod, closed_before, closed_before),
    ).fetchall()
    out: list[str] = []
    for (need,) in rows:
        held = conn.execute(
            "SELECT id FROM pj_facts WHERE subject = ? AND kind IN ('need.posted', 'need.updated')"
            " AND data IS NOT NULL ORDER BY ts, id",
            (need,),
        )
        out.extend(row[0] for row in held)
    return out


def _input(event_id: str, kind: str, body: msgspec.Struct) -> ProjectionInput:
    """A receipt or redaction as ingest would hand it over (for the examples above)."""
    return ProjectionInput(
        id=event_id,
        pod="B",
        author="NB",
        person="NB",
        role="node",
        scope="peers",
        seq=1,
        ts=1,
        kind=kind,
        body=body,
    )
