"""HTTP routes for moderation (docs/moderation.md): the coordinators' view and the roster.

Every moderating act is an event a coordinator signs with their own key and posts with
``POST /v1/events`` (the CLI does: ``kith member block`` …), so these routes only read:

- ``GET /v1/moderation`` — open and resolved reports, the actions taken (by whom, when, why)
  and neighbours' block advice; coordinators (or the node or root key) only.
- ``GET /v1/members`` — the pod's people by role and status, with their device keys; members
  only (the roster events are public, but a status list is for the pod).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.di import NamedDependency

from node.access import Reader
from node.http import Problem, node_of, problem
from node.moderation import ADMIN_ROLES, MemberItem, ModerationView, members_of, moderation_view

__all__ = ["MODERATION_ROUTES"]


@get("/v1/moderation", summary="Reports, coordinator actions and block advice (coordinators)")
async def get_moderation(
    request: Request[Any, Any, Any], reader: NamedDependency[Reader]
) -> ModerationView | Response[Problem]:
    """The moderation view; reports about the reader themselves are left out (``may_read``)."""
    if not reader.is_member:
        return problem(
            401, "unauthorized", "the moderation view is for the pod's coordinators: send a token"
        )
    if reader.role not in ADMIN_ROLES:
        return problem(
            403,
            "unauthorized",
            "the moderation view is for the pod's coordinators only (use a coordinator's key)",
        )
    node = node_of(request)
    return await moderation_view(
        store=node.store,
        roster=node.ingest.roster,
        pod=node.pod,
        reader=reader,
        about=node.report_about,
    )


@get("/v1/members", summary="The pod's people by role and status, with their device keys")
async def get_members(
    request: Request[Any, Any, Any], reader: NamedDependency[Reader]
) -> list[MemberItem] | Response[Problem]:
    """Coordinators first; each person's status (active, blocked, removed) and devices."""
    if not reader.is_member:
        return problem(
            401, "unauthorized", "the member list is for the pod's members: send a token"
        )
    node = node_of(request)
    return members_of(node.ingest.roster.pods.get(node.pod))


MODERATION_ROUTES = (get_moderation, get_members)
