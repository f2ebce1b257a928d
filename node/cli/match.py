"""``kith match NEED``: the open offers that could meet a need, best first, and why
(docs/matching.md).

Talks to the running node over HTTP. Without ``--key`` it reads as anyone (public needs only,
and no helper's load); with a member's key file it reads as that member.
"""

from __future__ import annotations

import argparse
from typing import Any

from node.cli.options import Subcommands, add_node_options, node_client
from node.cli.values import event_id


def _client(args: argparse.Namespace) -> Any:
    return node_client(args)[0]


def _need_line(need: dict[str, Any]) -> str:
    where = f" in {need['area']}" if need.get("area") else ""
    kind = f"{need.get('category') or '?'}/{need.get('urgency') or '?'}"
    return f"need {need['id']}  {need['status']}  {kind}  {need['title']!r}{where}"


def _match_lines(rank: int, match: dict[str, Any]) -> list[str]:
    offer = match["offer"]
    lines = [
        f"{rank}. {offer['title']!r}  score {match['score']}  offer {offer['id']}"
        f"  by {offer['author'][:8]}"
    ]
    lines += [f"     - {reason['message']} ({reason['code']})" for reason in match["reasons"]]
    return lines


def cmd_match(args: argparse.Namespace) -> int:
    """``kith match NEED``: print each match with its reasons in words."""
    answer = _client(args).call("GET", f"/v1/needs/{args.need}/matches")
    print(_need_line(answer["need"]))
    matches = answer["matches"]
    if not matches:
        print("no open offer matches this need yet")
        return 0
    plural = "" if len(matches) == 1 else "es"
    loads = any(m["load"] is not None for m in matches)
    note = f", helpers' load over the last {answer['load_days']} days" if loads else ""
    print(f"{len(matches)} match{plural}, best first{note}:")
    for rank, match in enumerate(matches[: args.limit], start=1):
        print("\n".join(_match_lines(rank, match)))
    if len(matches) > args.limit:
        print(f"... and {len(matches) - args.limit} more (--limit N shows more)")
    return 0


def register(sub: Subcommands) -> None:
    """Add ``kith match``."""
    help_text = "the open offers that could meet a need, best first, and why"
    p = sub.add_parser("match", help=help_text, description=help_text)
    p.add_argument("need", type=event_id, help="the need's id")
    add_node_options(
        p,
        key_help="your key file (a member's, to see pod needs and helpers' load)",
        key_required=False,
    )
    p.add_argument("--limit", type=int, default=10, help="show at most N matches (default 10)")
    p.set_defaults(fn=cmd_match)
