"""``kith post WHAT``: sign a care event (need, offer, claim, hours …) and post it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from node.cli.options import Subcommands
from protocol.reasons import KithError


def print_result(kind: str, result: dict[str, Any]) -> None:
    """Print the id of a recorded event; raise ``KithError`` with the reason it was refused."""
    if result.get("ok"):
        print(f"{kind} recorded: {result['id']}")
    else:
        raise KithError(f"{kind} refused: {result.get('reason')}: {result.get('message', '')}")


def _post_body(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    what = args.what
    optional = {
        k: v
        for k, v in {
            "details": getattr(args, "details", None),
            "area": getattr(args, "area", None),
            "note": getattr(args, "note", None),
        }.items()
        if v is not None
    }
    if what == "need":
        body = {"title": args.title, "category": args.category, "urgency": args.urgency, **optional}
        if args.minutes:
            body["minutes_estimate"] = args.minutes
        return "need.posted", body
    if what == "offer":
        return "offer.posted", {
            "title": args.title,
            "category": args.category,
            "capacity": args.capacity,
            **optional,
        }
    if what == "claim":
        return "claim.made", {"need": args.need, **optional}
    if what == "accept":
        return "claim.accepted", {"claim": args.claim, "need": args.need}
    if what == "fulfil":
        body = {"need": args.need, **optional}
        if args.claim:
            body["claim"] = args.claim
        if args.minutes:
            body["minutes"] = args.minutes
        return "fulfilment.recorded", body
    if what == "hours":
        body = {"giver": args.giver, "receiver": args.receiver, "minutes": args.minutes, **optional}
        if args.need:
            body["need"] = args.need
        return "hours.logged", body
    if what == "confirm":
        return "hours.confirmed", {"entry": args.entry}
    return "need.withdrawn", {"need": args.need}


def cmd_post(args: argparse.Namespace) -> int:
    """``kith post WHAT``: sign an event with the member's key and post it."""
    from node.client import KithClient
    from node.datadir import read_key_file
    from protocol.kinds import validate_body
    from protocol.reasons import RejectedEvent

    key = read_key_file(Path(args.key)).signing_key()
    kind, body = _post_body(args)
    try:
        validate_body(kind, body)
    except RejectedEvent as exc:
        raise KithError(f"{exc.reason}: {exc.message}") from None
    client = KithClient(args.url, key)
    print_result(kind, client.post(kind, body, scope=args.scope))
    return 0


def register(sub: Subcommands) -> None:
    """Add ``post need``, ``post offer`` … ``post withdraw`` to ``kith``."""
    post = sub.add_parser(
        "post", help="sign and post an event", description="sign and post an event"
    )
    post_sub = post.add_subparsers(dest="what", required=True, metavar="WHAT")

    def post_cmd(name: str, help_text: str) -> argparse.ArgumentParser:
        p = post_sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--key", required=True, help="your key file")
        p.add_argument(
            "--url",
            default="http://127.0.0.1:8470",
            help="the node (default http://127.0.0.1:8470)",
        )
        p.add_argument(
            "--scope",
            choices=["pod", "peers", "public"],
            default="pod",
            help="who may read it (default pod: members only)",
        )
        p.set_defaults(fn=cmd_post)
        return p

    p = post_cmd("need", "ask for help")
    p.add_argument("--title", required=True)
    p.add_argument("--category", required=True)
    p.add_argument("--urgency", default="normal", choices=["low", "normal", "high", "urgent"])
    p.add_argument("--details")
    p.add_argument("--area", help="a coarse area (never an address)")
    p.add_argument("--minutes", type=int, help="estimated minutes")
    p = post_cmd("offer", "offer help")
    p.add_argument("--title", required=True)
    p.add_argument("--category", required=True)
    p.add_argument("--capacity", type=int, default=1)
    p.add_argument("--details")
    p.add_argument("--area")
    p = post_cmd("claim", "offer to meet a need")
    p.add_argument("--need", required=True)
    p.add_argument("--note")
    p = post_cmd("accept", "accept a claim on your need (need author or coordinator)")
    p.add_argument("--claim", required=True)
    p.add_argument("--need", required=True)
    p = post_cmd("fulfil", "record that a need was met")
    p.add_argument("--need", required=True)
    p.add_argument("--claim")
    p.add_argument("--minutes", type=int)
    p.add_argument("--note")
    p = post_cmd("hours", "log time given (pending until the other side confirms)")
    p.add_argument("--giver", required=True)
    p.add_argument("--receiver", required=True)
    p.add_argument("--minutes", type=int, required=True)
    p.add_argument("--need")
    p.add_argument("--note")
    p = post_cmd("confirm", "confirm hours someone logged with you")
    p.add_argument("--entry", required=True)
    p = post_cmd("withdraw", "withdraw your need")
    p.add_argument("--need", required=True)
