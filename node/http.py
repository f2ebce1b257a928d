"""What every HTTP route module shares: the node behind a request and the error shape.

Errors are ``Problem``s — a stable machine ``reason`` and a human ``message`` — answered with
the status that fits (DESIGN §2).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response

from node.app import Node

__all__ = ["Problem", "node_of", "problem"]


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
