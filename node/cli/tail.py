"""``kith tail``: a node's live events, printed readably (the loop is ``node.tail``)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from node.cli.options import DEFAULT_URL, Subcommands
from node.cli.values import CATEGORIES, CATEGORY_HELP, URGENCIES, event_id


def cmd_tail(args: argparse.Namespace) -> int:
    """``kith tail``: print a node's live events readably."""
    from node.client import KithClient
    from node.datadir import read_key_file
    from node.tail import tail

    filt: dict[str, Any] = {}
    for name, value in (
        ("kinds", args.kind),
        ("category", args.category),
        ("urgency", args.urgency),
    ):
        if value:
            filt[name] = value
    if args.need:
        filt["need"] = args.need
    key = read_key_file(Path(args.key)).signing_key() if args.key else None
    node_key = KithClient(args.url).info()["node_key"] if key is not None else None
    try:
        asyncio.run(tail(args.url, filt, key=key, after=args.after, node_key=node_key))
    except KeyboardInterrupt:
        return 0
    return 0


def register(sub: Subcommands) -> None:
    """Add ``tail`` to ``kith``."""

    p = sub.add_parser(
        "tail",
        help="print live events readably (resumes after a dropped connection)",
        description="print live events readably (resumes after a dropped connection)",
    )
    p.add_argument("--url", default=DEFAULT_URL, help=f"the node (default {DEFAULT_URL})")
    p.add_argument("--kind", action="append", help="kind or prefix like 'need.*' (repeatable)")
    p.add_argument(
        "--category",
        action="append",
        choices=CATEGORIES,
        metavar="CATEGORY",
        help=f"need/offer category (repeatable): {CATEGORY_HELP}",
    )
    p.add_argument(
        "--urgency",
        action="append",
        choices=URGENCIES,
        help=f"need urgency (repeatable): one of {', '.join(URGENCIES)}",
    )
    p.add_argument("--need", type=event_id, help="everything about one need")
    p.add_argument("--key", help="your key file: also see your pod's events")
    p.add_argument("--after", type=int, help="start after this cursor (default: the last 10)")
    p.set_defaults(fn=cmd_tail)
