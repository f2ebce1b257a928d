"""``kith erase EVENT``: erase the body of your own event (or, as a coordinator, anyone's).

Signs an ``event.redacted`` with your key in the target's scope and posts it. Every node that
holds the target drops its body — here at once, with nothing readable left in the database
file or its WAL — and never accepts that body again (docs/protocol.md §14). Records (claims,
hours, votes, the roster) are never erased: the node says so.
"""

from __future__ import annotations

import argparse
from typing import Any

from node.cli.options import Subcommands, add_node_options, node_client
from protocol.reasons import KithError


def cmd_erase(args: argparse.Namespace) -> int:
    """``kith erase EVENT``."""
    import msgspec

    from node.cli.posts import print_result

    client, _ = node_client(args)
    try:
        stored: dict[str, Any] = client.call("GET", f"/v1/events/{args.event}")
    except KithError as exc:
        if ": HTTP 404:" in str(exc):
            raise KithError(
                f"no event {args.event} on this node (or it is not yours to read):"
                " check the id with `kith tail` or GET /v1/events"
            ) from None
        raise
    head = msgspec.json.decode(stored["envelope"]["head"])
    body = {"target": args.event}
    return print_result("event.redacted", client.post("event.redacted", body, scope=head["scope"]))


def register(sub: Subcommands) -> None:
    """Add ``erase`` to ``kith``."""
    p = sub.add_parser(
        "erase",
        help="erase the body of an event (yours, or any as a coordinator)",
        description="erase the body of an event (yours, or any as a coordinator): every node"
        " drops it and never accepts it again; records (claims, hours, votes) stay",
    )
    p.add_argument("event", help="the id of the event to erase")
    add_node_options(p)
    p.set_defaults(fn=cmd_erase)
