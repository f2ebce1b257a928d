"""The one reading policy: ``may_read(reader, event)`` (DESIGN §4).

Every read — HTTP, stream, export, federation — asks this function. SQL queries may
pre-filter with ``readable_scopes`` for speed, but each returned row is still checked here.
"""

from __future__ import annotations

from collections.abc import Iterable
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


class EventFacts(msgspec.Struct, frozen=True):
    """The few head facts the policy looks at."""

    pod: str
    author: str
    scope: str
    kind: str


def may_read(reader: Reader, event: EventFacts) -> bool:
    """May ``reader`` see ``event``?

    - ``public``: anyone.
    - ``pod``: members of that pod only (a node stores pod events of its own pod only).
    - ``peers``: members of this node's pod (our own peers events, and those our direct
      peers sent us); a federation peer reads only *our* pod's ``peers`` events — it must
      never receive a third pod's.
    - Kinds may narrow: ``report.filed`` only for coordinators and its own author.
    """
    if event.kind in COORDINATOR_READ_KINDS:
        if not reader.is_member or event.pod != reader.pod:
            return False
        return reader.role in _ADMIN or reader.person == event.author
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
    def pod(self) -> str: ...
    @property
    def author(self) -> str: ...
    @property
    def scope(self) -> str: ...
    @property
    def kind(self) -> str: ...


_R = TypeVar("_R", bound=_Row)


def visible(reader: Reader, rows: Iterable[_R]) -> list[_R]:
    """The rows ``reader`` may read, in order; ``may_read`` asked once per distinct facts."""
    decided: dict[tuple[str, str, str, str], bool] = {}
    out = []
    for row in rows:
        key = (row.pod, row.author, row.scope, row.kind)
        ok = decided.get(key)
        if ok is None:
            ok = decided[key] = may_read(reader, EventFacts(*key))
        if ok:
            out.append(row)
    return out
