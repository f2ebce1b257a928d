"""``kith proposal open|vote|list|show``: the pod decides together (docs/proposals.md).

``open`` posts a ``proposal.opened`` (a question, 2..10 options, when it closes); ``vote``
posts a ``vote.cast`` — by option number or by its words; voting again changes your vote
until the proposal closes. ``list`` and ``show`` read the tally and your own vote.
"""

from __future__ import annotations

import argparse
import datetime
import re
from typing import Any

from node.cli.options import Subcommands, add_node_options, node_client
from node.cli.values import event_id
from protocol.reasons import KithError

_SPAN = re.compile(r"^(\d+)([mhdw])$")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}


def closes_at(text: str, now_ms: int) -> int:
    """``3d``, ``12h``, ``90m``, ``2w`` from now, or a date-time as every ``kith`` command reads
    one (``node/cli/when.py``: ISO 8601, local time unless it has an offset), in ms.

    >>> closes_at("2d", 0), closes_at("2026-12-10T18:00Z", 0)
    (172800000, 1796925600000)
    """
    from node.cli.when import parse_time

    span = _SPAN.match(text.strip())
    if span:
        return now_ms + int(span[1]) * _UNIT_MS[span[2]]
    try:
        return parse_time(text)
    except KithError:
        raise KithError(
            f"--closes {text!r}: give a span like 3d, 12h, 90m, 2w, or a time like 2026-12-10T18:00"
        ) from None


def _when(ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _client(args: argparse.Namespace) -> Any:
    return node_client(args)[0]


def cmd_open(args: argparse.Namespace) -> int:
    """``kith proposal open``: ask the pod a question."""
    import time

    from node.cli.posts import print_result
    from protocol.kinds import validate_body
    from protocol.reasons import RejectedEvent

    if len(args.option) < 2:
        raise KithError("give at least two --option (the choices people vote between)")
    now = int(time.time() * 1000)
    when = closes_at(args.closes, now)
    if when <= now:
        raise KithError(f"--closes {args.closes!r} is in the past: give a later time")
    body: dict[str, Any] = {"title": args.title, "options": args.option, "closes_at": when}
    if args.details:
        body["details"] = args.details
    try:
        validate_body("proposal.opened", body)
    except RejectedEvent as exc:
        raise KithError(f"{exc.reason}: {exc.message}") from None
    code = print_result("proposal.opened", _client(args).post("proposal.opened", body))
    if code == 0:
        print(f"  votes count until {_when(when)}")
    return code


def _choice(proposal: dict[str, Any], text: str) -> int:
    options: list[str] = list(proposal["options"])
    if text.isdigit() and 1 <= int(text) <= len(options):
        return int(text) - 1
    folded = [o.casefold() for o in options]
    if text.casefold() in folded:
        return folded.index(text.casefold())
    listed = "; ".join(f"{i + 1}. {o}" for i, o in enumerate(options))
    raise KithError(f"{text!r} is not one of the options — give its number or words: {listed}")


def cmd_vote(args: argparse.Namespace) -> int:
    """``kith proposal vote PROPOSAL CHOICE``."""
    from node.cli.posts import print_result

    client = _client(args)
    proposal = client.call("GET", f"/v1/proposals/{args.proposal}")
    option = _choice(proposal, args.choice)
    body = {"proposal": args.proposal, "option": option}
    code = print_result("vote.cast", client.post("vote.cast", body))
    if code == 0 and proposal["status"] == "open":
        print(f"  you can change it until {_when(proposal['closes_at'])}")
    return code


def _print(proposal: dict[str, Any]) -> None:
    print(
        f"{proposal['id']}  [{proposal['status']}] {proposal['title']}"
        f"  (closes {_when(proposal['closes_at'])}, {proposal['voters']} voted)"
    )
    for i, option in enumerate(proposal["options"]):
        mark = "*" if i in proposal["leading"] else " "
        yours = "  <- your vote" if proposal.get("your_choice") == i else ""
        print(f"  {mark} {i + 1}. {option}: {proposal['tally'][i]}{yours}")


def cmd_list(args: argparse.Namespace) -> int:
    """``kith proposal list``."""
    params = {} if args.state is None else {"state": args.state}
    proposals = _client(args).get("/v1/proposals", **params)
    if not proposals:
        print("no proposals" + ("" if args.state is None else f" {args.state}"))
    for proposal in proposals:
        _print(proposal)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """``kith proposal show PROPOSAL``."""
    proposal = _client(args).call("GET", f"/v1/proposals/{args.proposal}")
    _print(proposal)
    if proposal.get("details"):
        print(f"  {proposal['details']}")
    return 0


def register(sub: Subcommands) -> None:
    """Add ``proposal open|vote|list|show`` to ``kith``."""
    proposal = sub.add_parser(
        "proposal",
        help="decide together: open a question, vote, see the tally",
        description="decide together: open a question, vote, see the tally",
    )
    actions = proposal.add_subparsers(dest="proposal_command", required=True, metavar="ACTION")

    def action(name: str, help_text: str, fn: Any) -> argparse.ArgumentParser:
        p = actions.add_parser(name, help=help_text, description=help_text)
        add_node_options(p)
        p.set_defaults(fn=fn)
        return p

    p = action("open", "ask the pod a question", cmd_open)
    p.add_argument("--title", required=True, help="the question")
    p.add_argument(
        "--option", action="append", default=[], help="a choice (repeat: 2 to 10 of them)"
    )
    p.add_argument(
        "--closes", required=True, help="when voting ends: 3d, 12h, 2w, or 2026-12-10T18:00"
    )
    p.add_argument("--details")
    p = action("vote", "vote on a proposal (again to change your vote)", cmd_vote)
    p.add_argument("proposal", type=event_id, help="the proposal's id")
    p.add_argument("choice", help="the option's number (1, 2 …) or its words")
    p = action("list", "proposals and their tallies", cmd_list)
    p.add_argument("--state", choices=["open", "closed"])
    p = action("show", "one proposal", cmd_show)
    p.add_argument("proposal", type=event_id, help="the proposal's id")
