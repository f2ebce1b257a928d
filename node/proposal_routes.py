"""HTTP routes for collective decisions (docs/proposals.md): list proposals and show one.

Proposals and votes are events like any other — posted with ``POST /v1/events`` as
``proposal.opened`` and ``vote.cast`` — so these routes only read. Pod-scope proposals need a
member's token. Who voted for what is never served: each reader learns the tally and their own
vote only.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from node import projections
from node.access import Reader, readable_scopes
from node.http import Problem, node_of, problem
from node.projections.proposals import ProposalStatus, ProposalView, proposal_status_at

__all__ = ["PROPOSAL_ROUTES"]


class ProposalOut(msgspec.Struct, frozen=True, kw_only=True):
    """A proposal as one reader sees it.

    ``status`` is ``open`` until ``closes_at`` has passed. ``tally[i]`` counts the people whose
    counted vote is ``options[i]``; ``leading`` lists the options with the most votes (several on
    a tie, none before any vote). ``you_voted`` and ``your_choice`` are the reader's own (``null``
    for a reader who is not a member).
    """

    id: str
    pod: str
    author: str
    ts: int
    title: str
    details: str | None
    options: tuple[str, ...]
    closes_at: int
    status: ProposalStatus
    tally: tuple[int, ...]
    voters: int
    leading: tuple[int, ...]
    you_voted: bool | None
    your_choice: int | None
    redacted: bool


def shown(view: ProposalView, reader: Reader, now_ms: int) -> ProposalOut:
    """``view`` for ``reader`` at ``now_ms``: the tally, and only the reader's own vote."""
    top = max(view.tally, default=0)
    choice = None if reader.person is None else view.votes.get(reader.person)
    return ProposalOut(
        id=view.id,
        pod=view.pod,
        author=view.author,
        ts=view.ts,
        title=view.title,
        details=view.details,
        options=view.options,
        closes_at=view.closes_at,
        status=proposal_status_at(view, now_ms),
        tally=view.tally,
        voters=len(view.votes),
        leading=tuple(i for i, n in enumerate(view.tally) if top and n == top),
        you_voted=None if not reader.is_member else choice is not None,
        your_choice=choice,
        redacted=view.redacted,
    )


@get("/v1/proposals", summary="Proposals and their tallies (read model)")
async def get_proposals(
    request: Request[Any, Any, Any],
    reader: NamedDependency[Reader],
    status: Annotated[ProposalStatus | None, QueryParameter(name="state")] = None,
) -> list[ProposalOut]:
    """This pod's proposals: open ones soonest to close first, then closed ones, latest first."""
    node = node_of(request)
    now = node.ingest.now_ms()
    scopes = readable_scopes(reader)
    views = await node.store.read(
        lambda conn: projections.list_proposals(
            conn, pod=node.pod, now_ms=now, state=status, scopes=scopes
        )
    )
    return [shown(view, reader, now) for view in views]


@get("/v1/proposals/{proposal_id:str}", summary="One proposal")
async def get_proposal(
    request: Request[Any, Any, Any],
    reader: NamedDependency[Reader],
    proposal_id: FromPath[str],
) -> ProposalOut | Response[Problem]:
    """One proposal with its tally and the reader's own vote."""
    node = node_of(request)
    now = node.ingest.now_ms()
    view = await node.store.read(lambda conn: projections.get_proposal(conn, proposal_id))
    if view is None or view.scope not in readable_scopes(reader):
        return problem(
            404,
            "not-found",
            "no such proposal here (pod proposals need a member's token: send one)",
        )
    return shown(view, reader, now)


PROPOSAL_ROUTES = (get_proposals, get_proposal)
