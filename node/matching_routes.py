"""HTTP route for matching (docs/matching.md): ``GET /v1/needs/{id}/matches``.

A thin handler: it reads the need (under the same rule as ``GET /v1/needs/{id}``), the open
offers of the need's pod the reader may see and the helpers' recent load, and hands them to the
pure ``projections.matching.rank``. The load is counted at read time from ``now_ms``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath

from node import projections
from node.access import Reader, readable_scopes
from node.http import Problem, may_see_need, may_see_offer, need_for_reader, node_of, problem
from node.projections.matching import LOAD_DAYS, Match, rank, recent_load
from node.projections.sqlite import MAX_PAGE

__all__ = ["MATCHING_ROUTES", "MatchList"]

_DAY_MS = 24 * 3600 * 1000


class MatchList(msgspec.Struct, frozen=True, kw_only=True):
    """The open offers that could meet one need, best first, each with why it matched.

    ``load_days``: how far back a helper's recent load (``Match.load``) is counted.
    """

    need: projections.NeedView
    load_days: int
    matches: list[Match]


@get("/v1/needs/{need_id:str}/matches", summary="Open offers that could meet a need")
async def get_matches(
    request: Request[Any, Any, Any], reader: NamedDependency[Reader], need_id: FromPath[str]
) -> MatchList | Response[Problem]:
    """Open offers of the need's pod ranked by category, time, area and the helper's recent
    load (``score`` desc, then older offer first); the need's own author's offers and offers
    whose windows have all ended are left out."""
    node = node_of(request)
    now = node.ingest.now_ms()
    scopes = readable_scopes(reader)

    def read(conn: Any) -> tuple[projections.NeedView | None, list[Match]]:
        need = projections.get_need(conn, need_id, now_ms=now)
        if need is None or not may_see_need(reader, need):
            return None, []
        # The offers the lists show (``home``: a neighbour's peers-scope offers stay out).
        listed = projections.list_offers(
            conn, now_ms=now, pod=need.pod, home=node.pod, limit=MAX_PAGE, scopes=scopes
        )
        offers = [offer for offer in listed if may_see_offer(reader, offer)]
        load = None
        if reader.is_member:  # who helped whom comes from pod-scope claims: members only
            since = now - LOAD_DAYS * _DAY_MS
            load = recent_load(projections.helped_needs(conn, pod=need.pod, since_ms=since))
        return need, list(rank(need, offers, load, now))

    need, matches = await node.store.read(read)
    if need is None:
        return problem(404, "not-found", "no such need (or it is not yours to read)")
    return MatchList(need=need_for_reader(need, reader), load_days=LOAD_DAYS, matches=matches)


#: The handlers ``node.api.build_app`` mounts.
MATCHING_ROUTES = [get_matches]
