"""What every HTTP route module shares: the node behind a request, the error shape and the
read rules for needs and offers.

Errors are ``Problem``s — a stable machine ``reason`` and a human ``message`` — answered with
the status that fits (DESIGN §2). Every error answer has that one shape: a route returns
``problem(...)`` or raises ``HTTPProblem``, and ``EXCEPTION_HANDLERS`` turn whatever else is
raised — Litestar's own 400 (bad JSON, a bad parameter), 404 (no such route), 405 (wrong
method), 413 (body too large) and any internal error (500, which says nothing of its cause) —
into a ``Problem`` too.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from node import projections
from node.access import EventFacts, Reader, may_read
from node.app import Node
from protocol import reasons

__all__ = [
    "EXCEPTION_HANDLERS",
    "HTTPProblem",
    "Problem",
    "may_see_need",
    "may_see_offer",
    "need_for_reader",
    "node_of",
    "problem",
]

log = logging.getLogger("kith.http")

#: Where a person or a script reads what each route takes and answers.
SCHEMA_HINT = "GET /schema lists this node's routes and what each takes"


class Problem(msgspec.Struct, frozen=True):
    """An error: stable machine ``reason`` and a human ``message``."""

    reason: str
    message: str


def problem(
    status: int, reason: str, message: str, *, headers: dict[str, str] | None = None
) -> Response[Problem]:
    """A ``Problem`` answered with HTTP ``status``."""
    return Response(Problem(reason, message), status_code=status, headers=headers)


class HTTPProblem(HTTPException):
    """Raised where returning a ``Problem`` is not possible (a dependency, a guard).

    >>> HTTPProblem(401, "invalid:token:format", "use 'Authorization: Kith <token>'").reason
    'invalid:token:format'
    """

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(status_code=status, detail=message)
        self.reason = reason
        self.message = message


def _reason_of(status: int) -> str:
    """The reason of an error Litestar raised, by its status (our routes name their own)."""
    return {
        400: "invalid:request",
        401: reasons.UNAUTHORIZED,
        403: reasons.UNAUTHORIZED,
        404: "not-found",
        405: "method-not-allowed",
        413: reasons.TOO_LARGE,
        429: reasons.RATE_LIMITED,
        503: "unavailable",
    }.get(status, "internal" if status >= 500 else "invalid:request")


def _message_of(request: Request[Any, Any, Any], exc: HTTPException) -> str:
    status = exc.status_code
    if status == 404:
        return f"nothing here: {SCHEMA_HINT}"
    if status == 405:
        allowed = (exc.headers or {}).get("allow")
        also = f"; this route answers {allowed}" if allowed else ""
        return f"{request.method} is not allowed here{also} ({SCHEMA_HINT})"
    if status == 413:
        limit = node_of(request).config.max_request_bytes
        return (
            f"the request body is larger than this node takes ({limit} bytes): send fewer"
            " events per request"
        )
    if status >= 500:
        return "the node failed to answer this request; try again, or tell its operator"
    # Litestar's own client errors ("JSON is malformed: …") name the problem, not the input.
    return f"{exc.detail}: {SCHEMA_HINT}"


def _http_failed(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    """Any ``HTTPException`` — ours (``HTTPProblem``) or Litestar's — as a ``Problem``."""
    if isinstance(exc, HTTPProblem):
        reason, message = exc.reason, exc.message
    else:
        reason, message = _reason_of(exc.status_code), _message_of(request, exc)
    headers = dict(exc.headers or {})
    if exc.status_code == 401:
        headers.setdefault("www-authenticate", "Kith")
    return problem(exc.status_code, reason, message, headers=headers or None)


def _internal(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """A bug: logged by route template with its stack, never its message (which may quote
    what a person posted); answered without a word of its cause."""
    route = request.scope.get("path_template", "?")
    stack = "".join(traceback.format_tb(exc.__traceback__))
    log.error(
        "internal error answering %s %s: %s\n%s", request.method, route, type(exc).__name__, stack
    )
    return problem(500, "internal", _message_of(request, HTTPException(status_code=500)))


def _validation_failed(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """A bad query, path or body parameter: say which parameter and why, never its value.

    Litestar's own answer repeats the whole URL and the value (a search for an address, a
    made-up id), which then sits in proxies' and clients' error logs.
    """
    extra = exc.extra if isinstance(exc.extra, list) else []
    fields = [
        f"`{item['key']}` ({getattr(item.get('source'), 'value', None) or 'request'}) is "
        + (
            "not one of the allowed values"
            if "enum" in str(item.get("message", "")).lower()
            else "not a valid value here"
        )
        for item in extra
        if isinstance(item, dict) and item.get("key")
    ]
    said = "; ".join(fields) or "a parameter is not valid"
    return problem(400, "invalid:parameter", f"{said}: {SCHEMA_HINT}")


#: The app's exception handlers: every error answer is a ``Problem``.
EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ValidationException: _validation_failed,
    HTTPException: _http_failed,
    Exception: _internal,
}


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
