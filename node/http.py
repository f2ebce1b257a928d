"""What every HTTP route module shares: the node behind a request, the error shape and the
read rules for needs and offers.

Errors are ``Problem``s — a stable machine ``reason`` and a human ``message`` — answered with
the status that fits (DESIGN §2).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response

from node import projections
from node.access import EventFacts, Reader, may_read
from node.app import Node

__all__ = ["Problem", "may_see_need", "may_see_offer", "need_for_reader", "node_of", "problem"]


class Problem(msgspec.Struct, frozen=True):
    """An error: stable machine ``reason`` and a human ``message``."""

    reason: str
    message: str


def problem(status: int, reason: str, message: str) -> Response[Problem]:
    """A ``Problem`` answered with HTTP ``status``."""
    return Response(Problem(reason, message), status_code=status)


def node_of(request: Request[Any, Any, Any]) -> Node:
    """The node serving this request."""
    node: Node = request.app.state.node
    return node


def may_see_need(reader: Reader, view: projections.NeedView) -> bool:
    """The read rule for one need: ``may_read`` of the event that posted it."""
    return may_read(reader, EventFacts(view.pod, view.author, view.scope, "need.posted"))


def may_see_offer(reader: Reader, view: projections.OfferView) -> bool:
    """The read rule for one offer: ``may_read`` of the event that posted it."""
    return may_read(reader, EventFacts(view.pod, view.author, view.scope, "offer.posted"))


def need_for_reader(view: projections.NeedView, reader: Reader) -> projections.NeedView:
    """Who claimed and who helps come from pod-scope events: only members see them."""
    if reader.is_member:
        return view
    return msgspec.structs.replace(
        view, claims=(), accepted_claim=None, helper=None, fulfilment=None
    )
