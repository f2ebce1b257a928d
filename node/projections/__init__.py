"""Read models — needs, offers, the time bank, referrals, proposals — kept in the write txn.

Projections are pure functions of the event **set** (DESIGN §5): the same events applied in
any order, on any node, give the same rows and the same ``projection_hash``. Each accepted
event becomes an insert-only *fact*; each need, offer and time-bank entry is recomputed from
its facts by a pure ``derive_*`` function (``needs``, ``offers``, ``timebank``), ties broken by
``(ts, id)``. Clock-dependent statuses (``expired``) are computed when read, never stored.

>>> import sqlite3
>>> from protocol.kinds import NeedPosted
>>> conn = sqlite3.connect(":memory:")
>>> _ = conn.executescript(SCHEMA)
>>> apply(conn, ProjectionInput(
...     id="N1", pod="P", author="K", person="K", role="member", scope="pod", seq=1, ts=1000,
...     kind="need.posted", body=NeedPosted(title="Soup", category="food", urgency="high"),
... ))
>>> [(n.title, n.status) for n in list_needs(conn, now_ms=2000)]
[('Soup', 'open')]
>>> redact(conn, "N1")
>>> get_need(conn, "N1", now_ms=2000).title
'[removed]'
"""

import sqlite3

from node.projections import invites as _invites
from node.projections import reports as _reports
from node.projections import sqlite as _sqlite
from node.projections.effects import Effect
from node.projections.facts import ProjectionInput
from node.projections.sqlite import (
    clearing_totals,
    get_gathering,
    get_need,
    get_proposal,
    get_referral,
    helped_needs,
    list_gatherings,
    list_needs,
    list_offers,
    list_proposals,
    list_referrals,
    needs_for_referral,
    projected_as,
    projection_hash,
    redact,
    reset,
    set_blocked,
    timebank,
    unapply,
)
from node.projections.views import (
    REMOVED,
    ClaimView,
    FulfilmentView,
    HoursEntryView,
    MemberBalance,
    NeedView,
    OfferView,
    TimebankView,
    Window,
)

__all__ = [
    "REMOVED",
    "SCHEMA",
    "ClaimView",
    "FulfilmentView",
    "HoursEntryView",
    "MemberBalance",
    "NeedView",
    "OfferView",
    "ProjectionInput",
    "TimebankView",
    "Window",
    "apply",
    "clearing_totals",
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

#: Every projection table: the read models', the reports' side table, and the node's own
#: join requests (node/projections/invites.py: node-local, not a projection of events).
SCHEMA = _sqlite.SCHEMA + _reports.SCHEMA + _invites.SCHEMA


def apply(conn: sqlite3.Connection, ev: ProjectionInput) -> Effect | None:
    """Project one accepted event into every read model (``sqlite.apply`` says its effect),
    and record whom a report is about (``reports.apply``)."""
    effect = _sqlite.apply(conn, ev)
    _reports.apply(conn, ev)
    return effect
