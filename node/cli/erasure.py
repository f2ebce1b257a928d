"""``kith erase EVENT``, ``kith erasures`` and ``kith retention`` (docs/erasure.md).

``kith erase`` signs an ``event.redacted`` with your key in the target's scope and posts it.
Every node that holds the target drops its body — here at once, with nothing readable left in
the database file or its WAL — and never accepts that body again (docs/protocol.md §14).
Records (claims, hours, votes, the roster) are never erased: the node says so. It then prints
how many of the node's neighbours have confirmed so far; ``kith erasures`` lists every erasure
with its receipts. ``kith retention`` sets how long the details of closed needs are kept.
"""

from __future__ import annotations

import argparse
from typing import Any

from node.cli.options import Subcommands, add_command, add_node_options, node_client
from node.cli.values import event_id
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
    result = client.post("event.redacted", body, scope=head["scope"])
    code = print_result("event.redacted", result)
    if code == 0 and result.get("reason") != "duplicate":
        listing = client.get("/v1/erasures", target=args.event)
        for item in listing["erasures"]:
            if item["id"] == result["id"]:
                print(f"  {_state(item)}")
    return code


def _state(item: dict[str, Any]) -> str:
    """One erasure's receipts in words: the summary, and the peers still to confirm."""
    said = str(item["summary"])
    if item["pending"]:
        said += "; not confirmed yet by " + ", ".join(item["pending"])
    return said


def cmd_erasures(args: argparse.Namespace) -> int:
    """``kith erasures``: this pod's erasures and how many neighbours confirmed each."""
    import time

    client, _ = node_client(args)
    listing = client.get("/v1/erasures", target=args.target, limit=args.limit)
    if not listing["erasures"]:
        print("No erasures in this pod (that you may see).")
        return 0
    for item in listing["erasures"]:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(item["at"] / 1000))
        kind = item["target_kind"] or "event not here yet"
        print(f"{when}  {item['target']}  {kind}  by {item['erased_by'][:8]}")
        print(f"    {_state(item)}")
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    """``kith retention``: show or set how many days closed needs' details are kept."""
    from node.datadir import DataDir

    data = DataDir(args.dir)
    config = data.config()
    if args.off:
        config.retention_days = None
    elif args.days is not None:
        if not 1 <= args.days <= 36_500:
            raise KithError("--days must be a whole number of days from 1 to 36500")
        config.retention_days = args.days
    else:
        days = config.retention_days
        print(
            "Closed needs' details are kept (no retention set)."
            if days is None
            else f"The details of needs closed more than {days} days ago are erased."
        )
        return 0
    data.write_config(config)
    if config.retention_days is None:
        print("Retention off: closed needs' details are kept.")
    else:
        print(
            f"The node erases the details of needs fulfilled, withdrawn or expired more than"
            f" {config.retention_days} days ago (at start and every hour; a running node picks"
            " this up at its next look)."
        )
    return 0


def register(sub: Subcommands) -> None:
    """Add ``erase`` to ``kith``."""
    p = sub.add_parser(
        "erase",
        help="erase the body of an event (yours, or any as a coordinator)",
        description="erase the body of an event (yours, or any as a coordinator): every node"
        " drops it and never accepts it again; records (claims, hours, votes) stay",
    )
    p.add_argument("event", type=event_id, help="the id of the event to erase")
    add_node_options(p)
    p.set_defaults(fn=cmd_erase)

    p = sub.add_parser(
        "erasures",
        help="list this pod's erasures and how many neighbours confirmed each",
        description="list this pod's erasures (all for a coordinator, your own for a member):"
        " target, who erased, when, and 'erased on N of M neighbours' with the peers that have"
        " not confirmed yet",
    )
    p.add_argument("--target", type=event_id, help="only the erasures of this event id")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    add_node_options(p)
    p.set_defaults(fn=cmd_erasures)

    p = add_command(
        sub,
        "retention",
        "show or set how many days the details of closed needs are kept",
        cmd_retention,
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--days",
        type=int,
        help="erase the details of needs fulfilled, withdrawn or expired more than this many"
        " days ago (the node signs the redactions)",
    )
    group.add_argument("--off", action="store_true", help="keep closed needs' details")
