"""The projections' tables in SQLite: all of their SQL lives here.

Two layers, so that state is a function of the event *set* and never of arrival order:

* ``pj_facts`` — one insert-only row per projected event (``INSERT OR IGNORE``: applying is a
  set union, commutative and idempotent). Erasing a body blanks the body-derived columns of its
  row, which then equals the row of a node that never saw the body.
* ``pj_needs``, ``pj_offers``, ``pj_hours`` — one row per subject, **recomputed** from all of
  that subject's facts by the pure ``derive_*`` functions whenever one of them arrives or is
  erased; ``pj_balances`` — per person, changed by exactly what a recomputed entry changes.

``pj_erased`` remembers erasures whose target has not arrived yet, so that a body arriving
after its erasure is never projected. Everything is plain ``sqlite3`` inside the caller's
transaction; nothing here commits. The read functions only read (the node's reader connection
is ``query_only``).

>>> conn = sqlite3.connect(":memory:")
>>> _ = conn.executescript(SCHEMA)
>>> len(projection_hash(conn))  # base64url of a SHA-256, unpadded
43
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from node.projections import erasures
from node.projections.effects import Effect, applied, no_effect
from node.projections.facts import (
    Fact,
    FactData,
    Family,
    ProjectionInput,
    erased,
    fact_of,
    family_of,
)
from node.projections.gatherings import (
    GatheringView,
    derive_gathering,
    explain_gathering,
    is_upcoming,
)
from node.projections.needs import derive_need, explain_need, need_status_at
from node.projections.offers import derive_offer, explain_offer, offer_status_at
from node.projections.overflow import (
    ReferralView,
    derive_referral,
    explain_referral,
    shown_state,
)
from node.projections.proposals import (
    ProposalView,
    derive_proposal,
    explain_proposal,
)
from node.projections.timebank import (
    HoursEntry,
    balance_changes,
    derive_entry,
    explain_entry,
    timebank_view,
)
from node.projections.views import NeedOverflow, NeedView, OfferView, TimebankView
from protocol.codec import b64e
from protocol.kinds import is_redactable, shown_category

__all__ = [
    "MAX_PAGE",
    "SCHEMA",
    "apply",
    "clearing_totals",
    "facts_about",
    "get_gathering",
    "get_need",
    "get_proposal",
    "get_referral",
    "helped_needs",
    "list_gatherings",
    "list_needs",
    "list_offers",
    "list_proposals",
    "list_referrals",
    "needs_for_referral",
    "projected_as",
    "projection_hash",
    "redact",
    "reset",
    "set_blocked",
    "timebank",
    "unapply",
]

#: The most rows one list call returns, whatever ``limit`` asks for.
MAX_PAGE = 1000

SCHEMA = """
CREATE TABLE IF NOT EXISTS pj_facts (
    id TEXT PRIMARY KEY,
    pod TEXT NOT NULL,
    kind TEXT NOT NULL,
    person TEXT NOT NULL,
    author TEXT NOT NULL,
    role TEXT NOT NULL,
    ts INTEGER NOT NULL,
    subject TEXT,
    ref TEXT,
    data TEXT,
    scope TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pj_facts_subject ON pj_facts (subject);
CREATE INDEX IF NOT EXISTS pj_facts_ref ON pj_facts (ref);
CREATE TABLE IF NOT EXISTS pj_erased (target TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pj_needs (
    id TEXT PRIMARY KEY,
    pod TEXT NOT NULL,
    ts INTEGER NOT NULL,
    status TEXT NOT NULL,
    category TEXT,
    urgency TEXT,
    window_end INTEGER,
    view TEXT NOT NULL,
    scope TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pj_needs_pod ON pj_needs (pod, ts, id);
CREATE INDEX IF NOT EXISTS pj_needs_status ON pj_needs (status, ts, id);
CREATE INDEX IF NOT EXISTS pj_needs_scope ON pj_needs (scope, pod, ts, id);
CREATE TABLE IF NOT EXISTS pj_offers (
    id TEXT PRIMARY KEY,
    pod TEXT NOT NULL,
    ts INTEGER NOT NULL,
    status TEXT NOT NULL,
    category TEXT,
    view TEXT NOT NULL,
    scope TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pj_offers_pod ON pj_offers (pod, ts, id);
CREATE INDEX IF NOT EXISTS pj_offers_scope ON pj_offers (scope, pod, ts, id);
CREATE TABLE IF NOT EXISTS pj_hours (
    id TEXT PRIMARY KEY,
    pod TEXT NOT NULL,
    giver TEXT NOT NULL,
    receiver TEXT NOT NULL,
    minutes INTEGER NOT NULL,
    logged_by TEXT NOT NULL,
    ts INTEGER NOT NULL,
    status TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pj_hours_status ON pj_hours (pod, status, ts, id);
CREATE TABLE IF NOT EXISTS pj_referrals (
    id TEXT PRIMARY KEY,
    pod TEXT NOT NULL,
    ts INTEGER NOT NULL,
    state TEXT NOT NULL,
    need TEXT,
    to_pod TEXT,
    valid INTEGER NOT NULL,
    view TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pj_referrals_need ON pj_referrals (need);
CREATE INDEX IF NOT EXISTS pj_referrals_ts ON pj_referrals (ts, id);
CREATE TABLE IF NOT EXISTS pj_clearing (
    id TEXT PRIMARY KEY,
    referral TEXT NOT NULL,
    pod TEXT NOT NULL,
    peer_pod TEXT NOT NULL,
    minutes INTEGER NOT NULL,
    ts INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pj_clearing_referral ON pj_clearing (referral);
CREATE TABLE IF NOT EXISTS pj_proposals (
    id TEXT PRIMARY KEY,
    pod TEXT NOT NULL,
    ts INTEGER NOT NULL,
    closes_at INTEGER NOT NULL,
    view TEXT NOT NULL,
    scope TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pj_proposals_closes ON pj_proposals (pod, closes_at, id);
CREATE INDEX IF NOT EXISTS pj_facts_votes ON pj_facts (person) WHERE kind = 'vote.cast';
CREATE TABLE IF NOT EXISTS pj_gatherings (
    id TEXT PRIMARY KEY,
    pod TEXT NOT NULL,
    ts INTEGER NOT NULL,
    status TEXT NOT NULL,
    window_end INTEGER,
    view TEXT NOT NULL,
    scope TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pj_gatherings_pod ON pj_gatherings (pod, ts, id);
CREATE TABLE IF NOT EXISTS pj_blocked (
    pod TEXT NOT NULL,
    person TEXT NOT NULL,
    PRIMARY KEY (pod, person)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pj_balances (
    pod TEXT NOT NULL,
    person TEXT NOT NULL,
    given INTEGER NOT NULL,
    received INTEGER NOT NULL,
    PRIMARY KEY (pod, person)
) WITHOUT ROWID;
"""
SCHEMA += erasures.SCHEMA  # redactions and their receipts: node/projections/erasures.py

_TABLES = (
    "pj_facts",
    "pj_erased",
    "pj_needs",
    "pj_offers",
    "pj_hours",
    "pj_balances",
    "pj_referrals",
    "pj_clearing",
    "pj_proposals",
    "pj_gatherings",
    "pj_blocked",
)

#: The materialized state the hash covers, each table in primary-key order. Facts are not
#: hashed: two nodes agree when what they *show* agrees.
_HASHED = (
    "SELECT id, pod, ts, status, category, urgency, window_end, view FROM pj_needs ORDER BY id",
    "SELECT id, pod, ts, status, category, view FROM pj_offers ORDER BY id",
    "SELECT id, pod, giver, receiver, minutes, logged_by, ts, status FROM pj_hours ORDER BY id",
    "SELECT pod, person, given, received FROM pj_balances ORDER BY pod, person",
    "SELECT id, pod, ts, state, need, to_pod, valid, view FROM pj_referrals ORDER BY id",
    "SELECT id, referral, pod, peer_pod, minutes, ts FROM pj_clearing ORDER BY id",
    "SELECT id, pod, ts, closes_at, view, scope FROM pj_proposals ORDER BY id",
    "SELECT id, pod, ts, status, window_end, view, scope FROM pj_gatherings ORDER BY id",
    "SELECT pod, person FROM pj_blocked ORDER BY pod, person",
)

_FACT_COLUMNS = "id, pod, kind, person, author, role, ts, subject, ref, data, scope"
# The facts about a subject: those naming it, plus withdrawals of its claims (which name only
# the claim).
_FACTS_ABOUT = f"""
SELECT {_FACT_COLUMNS} FROM pj_facts WHERE subject = :s
UNION ALL
SELECT {_FACT_COLUMNS} FROM pj_facts WHERE kind = 'claim.withdrawn' AND ref IN (
    SELECT id FROM pj_facts WHERE subject = :s AND kind = 'claim.made'
)
"""

_data_decoder = msgspec.json.Decoder(FactData)
_need_decoder = msgspec.json.Decoder(NeedView)
_offer_decoder = msgspec.json.Decoder(OfferView)
_referral_decoder = msgspec.json.Decoder(ReferralView)
_proposal_decoder = msgspec.json.Decoder(ProposalView)
_gathering_decoder = msgspec.json.Decoder(GatheringView)
_encoder = msgspec.json.Encoder()


# --- writing -----------------------------------------------------------------------------


def apply(conn: sqlite3.Connection, ev: ProjectionInput) -> Effect | None:
    """Project one accepted event, within the caller's transaction, and say what it did.

    Idempotent for a repeated ``id`` (then ``None``: it did nothing new); kinds the projections
    do not use are ignored (``None`` too: the caller knows better what they did). A body that
    was erased before it arrived (see ``redact``) is not projected. The effect is derived from
    the facts now held and is not stored (node/projections/effects.py).
    """
    if ev.kind in erasures.KINDS:
        return erasures.apply(conn, ev)
    fact = fact_of(ev)
    if fact is None:
        return None
    if (
        fact.data is not None
        and is_redactable(fact.kind)
        and conn.execute("SELECT 1 FROM pj_erased WHERE target = ?", (fact.id,)).fetchone()
    ):
        fact = erased(fact)
    inserted = conn.execute(
        f"INSERT OR IGNORE INTO pj_facts ({_FACT_COLUMNS}) VALUES ({', '.join('?' * 11)})",
        _row(fact),
    ).rowcount
    if not inserted:
        return None
    effect = _refresh(conn, fact)
    category = _raw_category(ev.body)
    if effect.ok and category is not None and shown_category(category) != category:
        effect = applied(f"{effect.message}; its category is not known here and shows as other")
    return effect


def _raw_category(body: msgspec.Struct | None) -> str | None:
    summary = getattr(body, "summary", None)
    category = getattr(summary if summary is not None else body, "category", None)
    return category if isinstance(category, str) else None


def redact(conn: sqlite3.Connection, target_id: str) -> None:
    """The body of ``target_id`` was erased: project it as if the body had never been seen.

    Works whether or not the target has arrived; ledger kinds (claims, fulfilments, hours) are
    never redacted, so this leaves them as they are.
    """
    conn.execute("INSERT OR IGNORE INTO pj_erased (target) VALUES (?)", (target_id,))
    rows = conn.execute(f"SELECT {_FACT_COLUMNS} FROM pj_facts WHERE id = ?", (target_id,))
    fact = next(map(_fact, rows), None)
    if fact is None or fact.data is None or not is_redactable(fact.kind):
        return
    blank = erased(fact)
    conn.execute(
        "UPDATE pj_facts SET subject = ?, ref = ?, data = NULL WHERE id = ?",
        (blank.subject, blank.ref, fact.id),
    )
    _refresh(conn, fact, explain=False)  # the subject the body named, maybe no longer named


def unapply(conn: sqlite3.Connection, event_id: str) -> bool:
    """Take an event's fact back out (its author's authority ended before it, D38).

    Its subject is recomputed from the facts left, exactly as if the event had never been
    projected. Returns whether there was a fact.
    """
    rows = conn.execute(f"SELECT {_FACT_COLUMNS} FROM pj_facts WHERE id = ?", (event_id,))
    fact = next(map(_fact, rows), None)
    if fact is None:
        return erasures.unapply(conn, event_id)  # a redaction or receipt keeps no fact
    # Found through its claim first (the claim may be the very fact going away).
    subject = fact.subject
    if subject is None and fact.ref is not None:
        row = conn.execute(
            "SELECT subject FROM pj_facts WHERE id = ? AND kind = 'claim.made'", (fact.ref,)
        ).fetchone()
        subject = None if row is None else row[0]
    conn.execute("DELETE FROM pj_facts WHERE id = ?", (event_id,))
    if subject is not None:
        _RECOMPUTE[family_of(fact.kind)](conn, subject, None)
    return True


def projected_as(conn: sqlite3.Connection, event_id: str) -> tuple[str, str] | None:
    """The (person, role) an event's fact was projected with, or None if it has no fact."""
    row = conn.execute("SELECT person, role FROM pj_facts WHERE id = ?", (event_id,)).fetchone()
    return erasures.projected_as(conn, event_id) if row is None else (row[0], row[1])


def set_blocked(conn: sqlite3.Connection, pod: str, people: set[str]) -> None:
    """The members of ``pod`` blocked now: their open claims lapse (needs recomputed)."""
    before = {row[0] for row in conn.execute("SELECT person FROM pj_blocked WHERE pod = ?", (pod,))}
    if before == people:
        return
    conn.execute("DELETE FROM pj_blocked WHERE pod = ?", (pod,))
    conn.executemany(
        "INSERT INTO pj_blocked (pod, person) VALUES (?, ?)", [(pod, p) for p in sorted(people)]
    )
    changed = sorted(before ^ people)
    marks = ",".join("?" * len(changed))
    needs = conn.execute(
        f"SELECT DISTINCT subject FROM pj_facts WHERE kind = 'claim.made' AND pod = ?"
        f" AND person IN ({marks}) AND subject IS NOT NULL",
        (pod, *changed),
    ).fetchall()
    for (need_id,) in needs:
        _recompute_need(conn, need_id, None)


def reset(conn: sqlite3.Connection) -> None:
    """Delete every projection row; a rebuild is ``reset`` then ``apply`` of every event.

    Remembered erasures go too: in a rebuild, the store hands erased events over without bodies.
    """
    for table in _TABLES:
        conn.execute(f"DELETE FROM {table}")
    erasures.reset(conn)


def _row(fact: Fact) -> tuple[object, ...]:
    return (
        fact.id,
        fact.pod,
        fact.kind,
        fact.person,
        fact.author,
        fact.role,
        fact.ts,
        fact.subject,
        fact.ref,
        None if fact.data is None else _encoder.encode(fact.data).decode(),
        fact.scope,
    )


def _fact(row: Sequence[Any]) -> Fact:
    fid, pod, kind, person, author, role, ts, subject, ref, data, scope = row
    return Fact(
        id=fid,
        pod=pod,
        kind=kind,
        person=person,
        author=author,
        role=role,
        ts=ts,
        subject=subject,
        ref=ref,
        data=None if data is None else _data_decoder.decode(data),
        scope=scope,
    )


def _facts_about(conn: sqlite3.Connection, subject: str) -> list[Fact]:
    return [_fact(row) for row in conn.execute(_FACTS_ABOUT, {"s": subject})]


def _refresh(conn: sqlite3.Connection, fact: Fact, *, explain: bool = True) -> Effect:
    """Recompute the subject ``fact`` is about (found through its claim, if it names one only),
    and say what ``fact`` did to it."""
    subject = fact.subject
    if subject is None and fact.ref is not None:
        row = conn.execute(
            "SELECT subject FROM pj_facts WHERE id = ? AND kind = 'claim.made'", (fact.ref,)
        ).fetchone()
        subject = None if row is None else row[0]
    if subject is not None:
        return _RECOMPUTE[family_of(fact.kind)](conn, subject, fact if explain else None)
    if fact.data is None:
        return no_effect("no-body", "its body is not here (erased, or never sent)")
    return _EXPLAIN_UNKNOWN[family_of(fact.kind)](fact)


def _put_view(conn: sqlite3.Connection, table: str, view: Any, **columns: object) -> None:
    """Store a recomputed view as its subject's row of ``table``: ``id``, ``pod``, ``ts``, the
    view as JSON, and the ``columns`` the lists filter and order by."""
    values = {"id": view.id, "pod": view.pod, "ts": view.ts, **columns}
    values["view"] = _encoder.encode(view).decode()
    names, marks = ", ".join(values), ", ".join("?" * len(values))
    conn.execute(
        f"INSERT OR REPLACE INTO {table} ({names}) VALUES ({marks})", tuple(values.values())
    )


def _recompute_need(conn: sqlite3.Connection, need_id: str, about: Fact | None) -> Effect:
    facts = _facts_about(conn, need_id)
    claimants = sorted({(f.pod, f.person) for f in facts if f.kind == "claim.made"})
    lapsed = frozenset(
        person
        for pod, person in claimants
        if conn.execute(
            "SELECT 1 FROM pj_blocked WHERE pod = ? AND person = ?", (pod, person)
        ).fetchone()
    )
    view = derive_need(need_id, facts, lapsed=lapsed)
    effect = _NOT_ASKED if about is None else explain_need(about, view, facts)
    if view is None:
        conn.execute("DELETE FROM pj_needs WHERE id = ?", (need_id,))
        return effect
    _put_view(
        conn,
        "pj_needs",
        view,
        status=view.status,
        category=view.category,
        urgency=view.urgency,
        window_end=None if view.window is None else view.window.end,
        scope=view.scope,
    )
    return effect


def _recompute_offer(conn: sqlite3.Connection, offer_id: str, about: Fact | None) -> Effect:
    facts = _facts_about(conn, offer_id)
    view = derive_offer(offer_id, facts)
    effect = _NOT_ASKED if about is None else explain_offer(about, view, facts)
    if view is None:
        conn.execute("DELETE FROM pj_offers WHERE id = ?", (offer_id,))
        return effect
    _put_view(conn, "pj_offers", view, status=view.status, category=view.category, scope=view.scope)
    return effect


_ENTRY_COLUMNS = "id, pod, giver, receiver, minutes, logged_by, ts, status"


def _entry(row: Sequence[Any]) -> HoursEntry:
    eid, pod, giver, receiver, minutes, logged_by, ts, status = row
    return HoursEntry(
        id=eid,
        pod=pod,
        giver=giver,
        receiver=receiver,
        minutes=minutes,
        logged_by=logged_by,
        ts=ts,
        status=status,
    )


def _recompute_hours(conn: sqlite3.Connection, entry_id: str, about: Fact | None) -> Effect:
    facts = _facts_about(conn, entry_id)
    new = derive_entry(entry_id, facts)
    effect = _NOT_ASKED if about is None else explain_entry(about, new, facts)
    rows = conn.execute(f"SELECT {_ENTRY_COLUMNS} FROM pj_hours WHERE id = ?", (entry_id,))
    old = next(map(_entry, rows), None)
    if new is None:
        if old is None:
            return effect
        conn.execute("DELETE FROM pj_hours WHERE id = ?", (entry_id,))
    else:
        conn.execute(
            f"INSERT OR REPLACE INTO pj_hours ({_ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                new.id,
                new.pod,
                new.giver,
                new.receiver,
                new.minutes,
                new.logged_by,
                new.ts,
                new.status,
            ),
        )
    pod = new.pod if new is not None else old.pod  # type: ignore[union-attr]
    for person, (given, received) in balance_changes(old, new).items():
        conn.execute(
            "INSERT INTO pj_balances (pod, person, given, received) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (pod, person) DO UPDATE SET"
            " given = given + excluded.given, received = received + excluded.received",
            (pod, person, given, received),
        )
        # A person with no confirmed entry has no row, however they came to have none.
        conn.execute(
            "DELETE FROM pj_balances WHERE pod = ? AND person = ? AND given = 0 AND received = 0",
            (pod, person),
        )
    return effect


def _recompute_referral(conn: sqlite3.Connection, referral_id: str, about: Fact | None) -> Effect:
    """Recompute a referral, then every re-referral of it (their validity depends on it)."""
    pending = [referral_id]
    seen: set[str] = set()
    effect = _NOT_ASKED
    while pending:
        current = pending.pop()
        if current in seen:  # ids are hashes: a cycle cannot be built, but never loop anyway
            continue
        seen.add(current)
        facts = _facts_about(conn, current)
        referred = next((f for f in facts if f.id == current), None)
        parent = (
            None if referred is None or referred.ref is None else get_referral(conn, referred.ref)
        )
        view = derive_referral(current, facts, parent)
        if about is not None and current == referral_id:
            effect = explain_referral(about, view)
        if view is None:
            conn.execute("DELETE FROM pj_referrals WHERE id = ?", (current,))
            conn.execute("DELETE FROM pj_clearing WHERE referral = ?", (current,))
            continue
        _put_view(
            conn,
            "pj_referrals",
            view,
            state=view.state,
            need=view.need,
            to_pod=None if view.assignment is None else view.assignment.to_pod,
            valid=int(view.problem is None),
        )
        conn.execute("DELETE FROM pj_clearing WHERE referral = ?", (view.id,))
        conn.executemany(
            "INSERT INTO pj_clearing (id, referral, pod, peer_pod, minutes, ts)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(c.id, view.id, c.pod, c.peer_pod, c.minutes, c.ts) for c in view.clearing],
        )
        children = conn.execute(
            "SELECT id FROM pj_facts WHERE kind = 'overflow.referred' AND ref = ?", (current,)
        )
        pending.extend(row[0] for row in children)
    return effect


def _recompute_proposal(conn: sqlite3.Connection, proposal_id: str, about: Fact | None) -> Effect:
    facts = _facts_about(conn, proposal_id)
    voters = sorted({f.person for f in facts if f.kind == "vote.cast"})
    if voters:  # when each voter joined: only members as of the opening count
        marks = ",".join("?" * len(voters))
        rows = conn.execute(
            f"SELECT {_FACT_COLUMNS} FROM pj_facts WHERE kind = 'member.added'"
            f" AND subject IN ({marks})",
            voters,
        )
        facts += [_fact(row) for row in rows]
    view = derive_proposal(proposal_id, facts)
    effect = _NOT_ASKED if about is None else explain_proposal(about, view, facts)
    if view is None:
        conn.execute("DELETE FROM pj_proposals WHERE id = ?", (proposal_id,))
        return effect
    _put_view(conn, "pj_proposals", view, closes_at=view.closes_at, scope=view.scope)
    return effect


def _recompute_member(conn: sqlite3.Connection, member: str, about: Fact | None) -> Effect:
    """A ``member.added`` arrived: the proposals that person voted on may count them now."""
    rows = conn.execute(
        "SELECT DISTINCT subject FROM pj_facts WHERE kind = 'vote.cast' AND person = ?"
        " AND subject IS NOT NULL",
        (member,),
    )
    for (proposal_id,) in rows.fetchall():
        _recompute_proposal(conn, proposal_id, None)
    return _NOT_ASKED  # the roster says what a member.added did (node/roster.py)


def _recompute_gathering(conn: sqlite3.Connection, gathering_id: str, about: Fact | None) -> Effect:
    facts = _facts_about(conn, gathering_id)
    view = derive_gathering(gathering_id, facts)
    effect = _NOT_ASKED if about is None else explain_gathering(about, facts)
    if view is None:
        conn.execute("DELETE FROM pj_gatherings WHERE id = ?", (gathering_id,))
        return effect
    _put_view(
        conn,
        "pj_gatherings",
        view,
        status=view.status,
        window_end=None if view.window is None else view.window.end,
        scope=view.scope,
    )
    return effect


#: What a recompute answers when no fact asked (a redaction, a rebuild): never shown.
_NOT_ASKED = applied()

_RECOMPUTE: Mapping[Family, Callable[[sqlite3.Connection, str, Fact | None], Effect]] = {
    "need": _recompute_need,
    "offer": _recompute_offer,
    "hours": _recompute_hours,
    "referral": _recompute_referral,
    "proposal": _recompute_proposal,
    "member": _recompute_member,
    "gathering": _recompute_gathering,
}

#: What a fact whose subject is not known here did (nothing), per family.
_EXPLAIN_UNKNOWN: Mapping[Family, Callable[[Fact], Effect]] = {
    "need": lambda fact: explain_need(fact, None, ()),
    "offer": lambda fact: explain_offer(fact, None, ()),
    "hours": lambda fact: explain_entry(fact, None, ()),
    "referral": lambda fact: explain_referral(fact, None),
    "proposal": lambda fact: explain_proposal(fact, None, ()),
    "member": lambda fact: _NOT_ASKED,
    "gathering": lambda fact: explain_gathering(fact, ()),
}


# --- reading -----------------------------------------------------------------------------


def _page(
    where: list[str],
    params: list[object],
    table: str,
    after: str | None,
    limit: int,
    *,
    columns: str = "view",
    index: str | None = None,
) -> str:
    """A newest-first page of ``table``: ``columns`` of the rows matching ``where`` after the
    row ``after``, read through ``index`` when given (``INDEXED BY``)."""
    if after is not None:
        where.append(f"(ts, id) < (SELECT ts, id FROM {table} WHERE id = ?)")
        params.append(after)
    params.append(max(0, min(limit, MAX_PAGE)))
    clause = " AND ".join(where) or "1"
    source = table if index is None else f"{table} INDEXED BY {index}"
    return f"SELECT {columns} FROM {source} WHERE {clause} ORDER BY ts DESC, id DESC LIMIT ?"


def _newest(
    conn: sqlite3.Connection,
    table: str,
    where: list[str],
    params: list[object],
    *,
    pods: Sequence[str],
    home: str | None,
    scopes: Sequence[str] | None,
    after: str | None,
    limit: int,
) -> list[str]:
    """The ``view`` texts of ``table`` matching ``where``, newest first (``ts``, then ``id``).

    ``pods`` keeps the rows of those pods (any pod if empty). With ``home``, the rows are that
    pod's own and other pods' ``public`` ones (a neighbour's ``peers`` items stay out of the
    lists) — asked as two queries that each walk an index in order and are merged here: one
    query with ``pod = ? OR scope = 'public'`` cannot use an index for its order, and sorted the
    whole table (tens of ms at 200k rows, a second without statistics).
    """
    base, args = list(where), list(params)
    if pods:
        base.append(f"pod IN ({','.join('?' * len(pods))})")
        args.extend(pods)
    _scopes(base, args, scopes)
    # ``pod != ?`` would scan every public row of ``home``; two ranges each seek the index.
    branches: list[tuple[list[str], list[object]]] = (
        [([], [])]
        if home is None
        else [
            (["pod = ?"], [home]),
            (["scope = 'public'", "pod < ?"], [home]),
            (["scope = 'public'", "pod > ?"], [home]),
        ]
    )
    rows: list[tuple[str, int, str]] = []
    for i, (extra, extra_args) in enumerate(branches):
        clauses, values = [*base, *extra], [*args, *extra_args]
        # Neighbours' public rows are found by the scope index, whatever else is asked: another
        # index (status) would walk every row of this pod to find that there are none.
        index = f"{table}_scope" if i else None
        sql = _page(clauses, values, table, after, limit, columns="view, ts, id", index=index)
        rows += conn.execute(sql, values).fetchall()
    if len(branches) > 1:
        rows.sort(key=lambda row: (row[1], row[2]), reverse=True)
    return [row[0] for row in rows[: max(0, min(limit, MAX_PAGE))]]


def _scopes(where: list[str], params: list[object], scopes: Sequence[str] | None) -> None:
    """Only rows in these scopes (the reader's rights); ``None`` means no restriction."""
    if scopes is not None:
        where.append(f"scope IN ({','.join('?' * len(scopes))})" if scopes else "0")
        params.extend(scopes)


def list_needs(
    conn: sqlite3.Connection,
    *,
    now_ms: int,
    status: str | None = None,
    category: str | None = None,
    urgency: str | None = None,
    pod: str | None = None,
    limit: int = 100,
    after: str | None = None,
    scopes: Sequence[str] | None = None,
    pods: Sequence[str] = (),
    home: str | None = None,
) -> list[NeedView]:
    """Needs, newest first (by ``ts``, then ``id``), filtered; ``after`` is the last id seen.

    ``status`` may be any ``NeedStatus``, ``expired`` included (an open need whose window ended
    before ``now_ms``). An unknown ``after`` id gives an empty page. ``pods`` keeps the needs
    of those pods; ``home`` keeps that pod's needs and other pods' ``public`` ones.
    """
    where: list[str] = []
    params: list[object] = []
    if status == "open":
        where.append("status = 'open' AND (window_end IS NULL OR window_end >= ?)")
        params.append(now_ms)
    elif status == "expired":
        where.append("status = 'open' AND window_end < ?")
        params.append(now_ms)
    elif status is not None:
        where.append("status = ?")
        params.append(status)
    for column, value in (("pod", pod), ("category", category), ("urgency", urgency)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    texts = _newest(
        conn,
        "pj_needs",
        where,
        params,
        pods=pods,
        home=home,
        scopes=scopes,
        after=after,
        limit=limit,
    )
    return [_with_overflow(conn, _need_at(text, now_ms), now_ms) for text in texts]


def get_need(conn: sqlite3.Connection, need_id: str, *, now_ms: int) -> NeedView | None:
    """One need as of ``now_ms``, or ``None`` if it is not known (yet)."""
    row = conn.execute("SELECT view FROM pj_needs WHERE id = ?", (need_id,)).fetchone()
    return None if row is None else _with_overflow(conn, _need_at(row[0], now_ms), now_ms)


def _with_overflow(conn: sqlite3.Connection, view: NeedView, now_ms: int) -> NeedView:
    """The need with its latest referral by its own pod, if it was ever referred."""
    row = conn.execute(
        "SELECT view FROM pj_referrals WHERE need = ? AND pod = ? AND valid = 1"
        " ORDER BY ts DESC, id DESC LIMIT 1",
        (view.id, view.pod),
    ).fetchone()
    if row is None:
        return view
    referral = _referral_decoder.decode(row[0])
    overflow = NeedOverflow(
        referral=referral.id,
        state=shown_state(referral, now_ms),
        to_pod=None if referral.assignment is None else referral.assignment.to_pod,
    )
    return msgspec.structs.replace(view, overflow=overflow)


def _need_at(text: str, now_ms: int) -> NeedView:
    view = _need_decoder.decode(text)
    status = need_status_at(view, now_ms)
    return view if status == view.status else msgspec.structs.replace(view, status=status)


def list_offers(
    conn: sqlite3.Connection,
    *,
    now_ms: int,
    category: str | None = None,
    pod: str | None = None,
    include_withdrawn: bool = False,
    limit: int = 100,
    after: str | None = None,
    scopes: Sequence[str] | None = None,
    pods: Sequence[str] = (),
    home: str | None = None,
) -> list[OfferView]:
    """Offers, newest first; expired ones are listed (as ``expired``), withdrawn ones on request.

    ``pods`` and ``home`` filter as in ``list_needs``.
    """
    where: list[str] = [] if include_withdrawn else ["status = 'open'"]
    params: list[object] = []
    for column, value in (("pod", pod), ("category", category)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    texts = _newest(
        conn,
        "pj_offers",
        where,
        params,
        pods=pods,
        home=home,
        scopes=scopes,
        after=after,
        limit=limit,
    )
    offers = []
    for text in texts:
        view = _offer_decoder.decode(text)
        status = offer_status_at(view, now_ms)
        offers.append(
            view if status == view.status else msgspec.structs.replace(view, status=status)
        )
    return offers


def list_gatherings(
    conn: sqlite3.Connection,
    *,
    now_ms: int,
    upcoming: bool = False,
    status: str | None = None,
    pod: str | None = None,
    limit: int = 100,
    after: str | None = None,
    scopes: Sequence[str] | None = None,
) -> list[GatheringView]:
    """Gatherings, newest first; ``upcoming`` keeps the scheduled ones whose window has not
    ended at ``now_ms``; ``status`` is ``scheduled`` or ``cancelled``."""
    where: list[str] = []
    params: list[object] = []
    if upcoming:
        where.append("status = 'scheduled' AND window_end >= ?")
        params.append(now_ms)
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if pod is not None:
        where.append("pod = ?")
        params.append(pod)
    _scopes(where, params, scopes)
    sql = _page(where, params, "pj_gatherings", after, limit)
    views = [_gathering_decoder.decode(row[0]) for row in conn.execute(sql, params)]
    # The SQL filter and the pure rule must agree; the pure one is the definition.
    return [v for v in views if is_upcoming(v, now_ms)] if upcoming else views


def get_gathering(conn: sqlite3.Connection, gathering_id: str) -> GatheringView | None:
    """One gathering, or ``None`` if it is not known (yet)."""
    row = conn.execute("SELECT view FROM pj_gatherings WHERE id = ?", (gathering_id,)).fetchone()
    return None if row is None else _gathering_decoder.decode(row[0])


def facts_about(conn: sqlite3.Connection, subject: str) -> list[Fact]:
    """Every fact about one subject (a need, an offer, a gathering …), for read-time questions
    such as an event's effect or a calendar entry's revision."""
    return _facts_about(conn, subject)


def timebank(
    conn: sqlite3.Connection, *, pod: str, limit_minutes: int | None = None
) -> TimebankView:
    """The pod's balances (confirmed entries only) and its entries awaiting confirmation."""
    balances = {
        person: (given, received)
        for person, given, received in conn.execute(
            "SELECT person, given, received FROM pj_balances WHERE pod = ?", (pod,)
        )
    }
    pending = conn.execute(
        f"SELECT {_ENTRY_COLUMNS} FROM pj_hours WHERE pod = ? AND status = 'pending'", (pod,)
    )
    return timebank_view(pod, balances, map(_entry, pending), limit_minutes)


def hours_entries(conn: sqlite3.Connection, *, pod: str) -> list[HoursEntry]:
    """Every hours entry of ``pod``, pending and confirmed, oldest first (for exports)."""
    rows = conn.execute(
        f"SELECT {_ENTRY_COLUMNS} FROM pj_hours WHERE pod = ? ORDER BY ts, id", (pod,)
    )
    return [_entry(row) for row in rows]


def get_referral(conn: sqlite3.Connection, referral_id: str) -> ReferralView | None:
    """One referral as derived (the clock-dependent ``lapsed`` is the reader's: see
    ``overflow.shown_state``), or ``None`` if it is not known here."""
    row = conn.execute("SELECT view FROM pj_referrals WHERE id = ?", (referral_id,)).fetchone()
    return None if row is None else _referral_decoder.decode(row[0])


def list_referrals(
    conn: sqlite3.Connection,
    *,
    limit: int = 100,
    after: str | None = None,
    need: str | None = None,
) -> list[ReferralView]:
    """Referrals known here, newest first; ``need`` keeps those made from one need."""
    where: list[str] = []
    params: list[object] = []
    if need is not None:
        where.append("need = ?")
        params.append(need)
    sql = _page(where, params, "pj_referrals", after, limit)
    return [_referral_decoder.decode(row[0]) for row in conn.execute(sql, params)]


def needs_for_referral(conn: sqlite3.Connection, pod: str, referral_id: str) -> list[str]:
    """The ids of the needs of ``pod`` that stand for a neighbour's referral."""
    rows = conn.execute(
        "SELECT id FROM pj_facts WHERE ref = ? AND kind = 'need.posted' AND pod = ?",
        (referral_id, pod),
    )
    return [row[0] for row in rows]


def clearing_totals(conn: sqlite3.Connection) -> list[tuple[str, str, int]]:
    """Every pod's recorded clearing with each peer it cleared with: ``(pod, peer_pod, minutes)``,
    positive when ``pod`` gave more than it received."""
    return [
        (pod, peer, total)
        for pod, peer, total in conn.execute(
            "SELECT pod, peer_pod, SUM(minutes) FROM pj_clearing"
            " GROUP BY pod, peer_pod ORDER BY pod, peer_pod"
        )
    ]


def projection_hash(conn: sqlite3.Connection) -> str:
    """base64url SHA-256 of all materialized state in a canonical order; nodes holding the same
    event set get the same hash, whatever the order they applied it in and whatever their clock.
    """
    digest = hashlib.sha256()
    for sql in (*_HASHED, *erasures.HASHED):
        digest.update(b"#\n")  # table separator: a row is never this
        for row in conn.execute(sql):
            digest.update(_encoder.encode(tuple(row)))
            digest.update(b"\n")
    return b64e(digest.digest())


def list_proposals(
    conn: sqlite3.Connection,
    *,
    pod: str,
    now_ms: int,
    state: str | None = None,
    scopes: Sequence[str] | None = None,
    limit: int = 100,
) -> list[ProposalView]:
    """A pod's proposals: open ones soonest to close first, then closed ones latest first.

    ``state`` is ``open`` or ``closed`` at ``now_ms`` (read-time, never stored)."""
    where, params = ["pod = ?"], list[object]([pod])
    _scopes(where, params, scopes)
    clause = " AND ".join(where)
    limit = max(0, min(limit, MAX_PAGE))
    parts: list[tuple[str, list[object]]] = []
    if state in (None, "open"):
        parts.append(
            (
                f"SELECT view FROM pj_proposals WHERE {clause} AND closes_at >= ?"
                " ORDER BY closes_at, id LIMIT ?",
                [*params, now_ms, limit],
            )
        )
    if state in (None, "closed"):
        parts.append(
            (
                f"SELECT view FROM pj_proposals WHERE {clause} AND closes_at < ?"
                " ORDER BY closes_at DESC, id DESC LIMIT ?",
                [*params, now_ms, limit],
            )
        )
    out: list[ProposalView] = []
    for sql, args in parts:
        out += [_proposal_decoder.decode(row[0]) for row in conn.execute(sql, args)]
    return out[:limit]


def get_proposal(conn: sqlite3.Connection, proposal_id: str) -> ProposalView | None:
    """One proposal, or ``None``."""
    row = conn.execute("SELECT view FROM pj_proposals WHERE id = ?", (proposal_id,)).fetchone()
    return None if row is None else _proposal_decoder.decode(row[0])


def helped_needs(conn: sqlite3.Connection, *, pod: str, since_ms: int) -> list[NeedView]:
    """The needs of ``pod`` that have a helper and had a claim accepted or a fulfilment recorded
    at or after ``since_ms`` — what a helper's recent load is counted from (see
    ``matching.recent_load``)."""
    rows = conn.execute(
        "SELECT view FROM pj_needs AS n WHERE pod = ? AND status IN ('claimed', 'fulfilled')"
        " AND EXISTS (SELECT 1 FROM pj_facts AS f WHERE f.subject = n.id AND f.ts >= ?"
        " AND f.kind IN ('claim.accepted', 'fulfilment.recorded'))",
        (pod, since_ms),
    )
    return [_need_decoder.decode(row[0]) for row in rows]
