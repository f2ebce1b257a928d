"""HTTP routes for gatherings (docs/gatherings.md): list and show. Thin handlers over the
gathering read model; gatherings are scheduled, cancelled and answered by posting signed
events (``gathering.scheduled``, ``gathering.cancelled``, ``gathering.rsvp``) like any other.

Reads follow ``may_read`` by scope: anyone sees public gatherings, a member's token shows the
pod's own. A sealed place is served as the ciphertext it is; the member's client opens it.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter

from node import projections
from node.access import Reader, readable_scopes
from node.http import Problem, node_of, problem
from node.projections.gatherings import GatheringStatus, GatheringView

__all__ = ["GATHERING_ROUTES"]


@get("/v1/gatherings", summary="Gatherings (read model)")
async def list_gatherings(
    request: Request[Any, Any, Any],
    reader: NamedDependency[Reader],
    upcoming: FromQuery[bool] = False,
    gathering_state: Annotated[GatheringStatus | None, QueryParameter(name="state")] = None,
    after: FromQuery[str | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
) -> list[GatheringView]:
    """Gatherings newest first, with their answers counted per person. ``upcoming=true`` keeps
    the scheduled ones whose window has not ended; ``state`` is ``scheduled`` or ``cancelled``.
    """
    node = node_of(request)
    now = node.ingest.now_ms()
    scopes = readable_scopes(reader)
    return await node.store.read(
        lambda conn: projections.list_gatherings(
            conn,
            now_ms=now,
            upcoming=upcoming,
            status=gathering_state,
            pod=node.pod,
            limit=limit,
            after=after,
            scopes=scopes,
        )
    )


@get("/v1/gatherings/{gathering_id:str}", summary="One gathering")
async def get_gathering(
    request: Request[Any, Any, Any], reader: NamedDependency[Reader], gathering_id: FromPath[str]
) -> GatheringView | Response[Problem]:
    """One gathering (404 when unknown or not readable, to reveal nothing)."""
    node = node_of(request)
    view = await node.store.read(lambda conn: projections.get_gathering(conn, gathering_id))
    if view is None or view.pod != node.pod or view.scope not in readable_scopes(reader):
        return problem(404, "not-found", "no such gathering")
    return view


#: The handlers ``node.api.build_app`` mounts.
GATHERING_ROUTES = [list_gatherings, get_gathering]
