"""The one reading policy: ``may_read(reader, event)`` (DESIGN §4).

Every read — HTTP, stream, export, federation — asks this function. SQL queries may
pre-filter with ``readable_scopes`` for speed, but each returned row is still checked here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Literal, Protocol, TypeVar

import msgspec

from protocol.kinds import COORDINATOR_READ_KINDS

ReaderRole = Literal["root", "node", "coordinator", "member"]
_ADMIN = frozenset({"root", "node", "coordinator"})


class Reader(msgspec.Struct, frozen=True, kw_only=True):
    """Who is reading: anonymous (``person`` None), a member of ``pod``, or a peer node."""

    person: str | None = None
    role: ReaderRole | None = None
    pod: str | None = None
    peer_pod: str | None = None  # set when the reader is a federation peer serving that pod

    @property
    def is_member(self) -> bool:
        """A member (any role) of the node's pod."""
        return self.person is not None and self.role is not None


ANONYMOUS = Reader()


class ReportParties(msgspec.Struct, frozen=True):
    """Who a report concerns, as people: the person who filed it (``filer``: its author's
    person, so a report filed from a phone is its owner's) and those it is about."""

    filer: str
    about: frozenset[str]


class EventFacts(msgspec.Struct, frozen=True):
    """The few head facts the policy looks at.

    ``report`` matters for the coordinator-read kinds (reports) only: whom the report is about
    (who never read it) and who filed it — ``None`` when not looked up or not recorded, and then
    only its author's key reads it (the policy fails closed). The read paths fill it from
    ``node.projections.reports`` through the node's ``report_about`` (``needs_about`` says
    which rows need it).
    """

    pod: str
    author: str
    scope: str
    kind: str
    report: ReportParties | None = None


def may_read(reader: Reader, event: EventFacts) -> bool:
    """May ``reader`` see ``event``?

    - ``public``: anyone.
    - ``pod``: members of that pod only (a node stores pod events of its own pod only).
    - ``peers``: members of this node's pod (our own peers events, and those our direct
      peers sent us); a federation peer reads only *our* pod's ``peers`` events — it must
      never receive a third pod's.
    - Kinds may narrow: a report (``report.filed``, ``report.resolved``) only for this pod's
      coordinators and its own author — and never for a person it is about, whatever their
      role (``event.report``). A report whose parties are unknown is its author's alone.
    """
    if event.kind in COORDINATOR_READ_KINDS:
        if not reader.is_member or event.pod != reader.pod:
            return False
        parties = event.report
        if parties is not None and reader.person in parties.about:
            return False
        filer = event.author if parties is None else parties.filer
        if reader.person in (event.author, filer):
            return True
        return reader.role in _ADMIN and parties is not None
    if event.scope == "public":
        return True
    if reader.peer_pod is not None:
        return event.scope == "peers" and event.pod == reader.pod
    if not reader.is_member:
        return False
    if event.scope == "pod":
        return event.pod == reader.pod
    return True


def readable_scopes(reader: Reader) -> tuple[str, ...]:
    """The scopes a reader may see at all (a SQL pre-filter; ``may_read`` still decides)."""
    if reader.is_member:
        return ("pod", "peers", "public")
    if reader.peer_pod is not None:
        return ("peers", "public")
    return ("public",)


class _Row(Protocol):
    """Anything with the head facts ``may_read`` looks at (stored rows of any shape)."""

    @property
    def cursor(self) -> int: ...
    @property
    def pod(self) -> str: ...
    @property
    def author(self) -> str: ...
    @property
    def scope(self) -> str: ...
    @property
    def kind(self) -> str: ...


_R = TypeVar("_R", bound=_Row)


def visible(
    reader: Reader, rows: Iterable[_R], reports: Mapping[int, ReportParties] | None = None
) -> list[_R]:
    """The rows ``reader`` may read, in order; ``may_read`` asked once per distinct facts.

    ``reports``: the parties of each report among the rows, by cursor (``needs_about`` says
    which rows need them); a report missing from it is shown to its author only.
    """
    decided: dict[tuple[str, str, str, str], bool] = {}
    out = []
    for row in rows:
        if row.kind in COORDINATOR_READ_KINDS:
            parties = None if reports is None else reports.get(row.cursor)
            facts = EventFacts(row.pod, row.author, row.scope, row.kind, parties)
            if may_read(reader, facts):
                out.append(row)
            continue
        key = (row.pod, row.author, row.scope, row.kind)
        ok = decided.get(key)
        if ok is None:
            ok = decided[key] = may_read(reader, EventFacts(*key))
        if ok:
            out.append(row)
    return out


def needs_about(reader: Reader, rows: Iterable[_Row]) -> list[int]:
    """The cursors of the reports among ``rows`` whose subjects ``reader``'s read depends on
    (none for a reader who may not read reports at all: no lookup is made for them)."""
    if not reader.is_member:
        return []
    return [row.cursor for row in rows if row.kind in COORDINATOR_READ_KINDS]


def report_parties(
    raw: Mapping[int, tuple[str, frozenset[str]]], person_of: Callable[[str], str | None]
) -> dict[int, ReportParties]:
    """Reports' raw parties (the author key, the keys it is about; maybe device keys) as the
    people they belong to, by cursor."""
    return {
        cursor: ReportParties(
            filer=person_of(author) or author,
            about=frozenset(person_of(key) or key for key in keys) | keys,
        )
        for cursor, (author, keys) in raw.items()
    }
