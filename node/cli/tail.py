"""``kith tail``: a node's live events, printed readably (the loop is ``node.tail``)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from node.cli.options import DEFAULT_DIR, DEFAULT_URL, Subcommands, node_url
from node.cli.values import CATEGORIES, CATEGORY_HELP, URGENCIES, event_id
from protocol.reasons import KithError


def cmd_tail(args: argparse.Namespace) -> int:
    """``kith tail``: print a node's live events readably."""
    from node.client import KithClient, NodeUnreachable
    from node.datadir import read_key_file
    from node.tail import NodeDown, tail

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
    url = node_url(args)
    key = read_key_file(Path(args.key)).signing_key() if args.key else None
    try:
        node_key = KithClient(url).info()["node_key"] if key is not None else None
        asyncio.run(tail(url, filt, key=key, after=args.after, node_key=node_key))
    except (NodeDown, NodeUnreachable) as exc:
        why = f" ({exc.why})" if isinstance(exc, NodeDown) else ""
        raise KithError(
            f"no Kith node answers at {url}{why}: start it with `kith serve --dir {args.dir}`"
            " (or point at another node with --url)"
        ) from None
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
    p.add_argument(
        "--url",
        default=None,
        help=f"the node (default: the one --dir's config names, else {DEFAULT_URL})",
    )
    p.add_argument(
        "--dir", default=DEFAULT_DIR, help=f"the pod whose node to follow (default {DEFAULT_DIR})"
    )
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
