"""``kith needs``, ``kith offers``, ``kith timebank`` and ``kith token``: a member reads their pod.

Each reads the node's HTTP read models (``/v1/needs``, ``/v1/offers``, ``/v1/timebank``) with a
token made from the member's ``--key`` (``Authorization: Kith …``, node/client.py), and prints a
short table — people by their display name, ids in full so they can be pasted into ``kith post
claim --need …`` — or, with ``--json``, the node's answer as it is, for scripts.
``kith token`` prints such a token, for ``curl`` and other tools.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from typing import Any

import msgspec

from node.cli.options import Subcommands, add_node_options, node_client
from node.cli.values import CATEGORIES, CATEGORY_HELP, URGENCIES
from protocol.reasons import KithError

__all__ = ["register"]

#: Need states a person may filter by (the read model's).
NEED_STATES = ("open", "claimed", "fulfilled", "withdrawn", "expired")
#: The longest title a table shows before cutting it with "…".
TITLE_WIDTH = 40


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _json(answer: Any) -> int:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(answer)).decode() + "\n")
    return 0


def _title(text: str) -> str:
    return text if len(text) <= TITLE_WIDTH else text[: TITLE_WIDTH - 1] + "…"


def _names(client: Any) -> Any:
    """Display names for a member's client; keys cut short for anyone else (the member list
    and profiles are for members)."""
    from node.cli.people import People

    class _Anonymous:
        def name_of(self, key: str) -> str:
            return key[:8]

    if client.key is None:
        return _Anonymous()
    people = People(client)
    try:
        people.names()
    except KithError:  # a key that is not a member's reads public posts, without names
        return _Anonymous()
    return people


def _hours(minutes: int, *, signed: bool = False) -> str:
    """Minutes as ``h:mm`` (``+1:30``, ``-0:45`` when ``signed``).

    >>> _hours(90), _hours(-45, signed=True), _hours(0, signed=True)
    ('1:30', '-0:45', '0:00')
    """
    sign = "-" if minutes < 0 else "+" if signed and minutes > 0 else ""
    return f"{sign}{abs(minutes) // 60}:{abs(minutes) % 60:02d}"


def cmd_needs(args: argparse.Namespace) -> int:
    """``kith needs``: the pod's needs (and public ones of other pods)."""
    client, _ = node_client(args)
    needs = client.get(
        "/v1/needs",
        status=args.status,
        category=args.category,
        urgency=args.urgency,
        limit=args.limit,
    )
    if args.json:
        return _json(needs)
    if not needs:
        print("No needs here. Ask for help with: kith post need --title … --category …")
        return 0
    people = _names(client)
    rows = [
        (
            need["id"],
            need["status"],
            f"{need.get('category') or '-'}/{need.get('urgency') or '-'}",
            people.name_of(need["author"]),
            _title(need["title"]),
        )
        for need in needs
    ]
    _table(("ID", "STATUS", "WHAT", "BY", "TITLE"), rows)
    return 0


def cmd_offers(args: argparse.Namespace) -> int:
    """``kith offers``: the pod's offers of help (and public ones of other pods)."""
    client, _ = node_client(args)
    offers = client.get(
        "/v1/offers",
        category=args.category,
        include_withdrawn="true" if args.withdrawn else None,
        limit=args.limit,
    )
    if args.json:
        return _json(offers)
    if not offers:
        print("No offers here. Offer help with: kith post offer --title … --category …")
        return 0
    people = _names(client)
    rows = [
        (
            offer["id"],
            offer["status"],
            offer.get("category") or "-",
            str(offer.get("capacity") or "-"),
            people.name_of(offer["author"]),
            _title(offer["title"]),
        )
        for offer in offers
    ]
    _table(("ID", "STATUS", "CATEGORY", "CAPACITY", "BY", "TITLE"), rows)
    return 0


def cmd_timebank(args: argparse.Namespace) -> int:
    """``kith timebank``: everyone's balance, and the entries waiting on you or the other side."""
    from node.cli.people import People

    client, key_file = node_client(args)
    bank = client.get("/v1/timebank")
    if args.json:
        return _json(bank)
    people = People(client)
    me = next(
        (
            m["key"]
            for m in people.members()
            if key_file.public in (m["key"], *(d["key"] for d in m["devices"]))
        ),
        key_file.public,
    )
    if bank["members"]:
        rows = [
            (
                people.name_of(m["person"]),
                _hours(m["balance_minutes"], signed=True),
                _hours(m["given_minutes"]),
                _hours(m["received_minutes"]),
                "over the limit" if m["over_limit"] else "",
            )
            for m in bank["members"]
        ]
        _table(("PERSON", "BALANCE", "GIVEN", "RECEIVED", ""), rows)
    else:
        print("No confirmed hours yet.")
    mine = [e for e in bank["pending"] if me in (e["giver"], e["receiver"])]
    if not mine:
        print("None of your entries waits for a confirmation.")
        return 0
    print("Your entries waiting for a confirmation:")
    for entry in mine:
        said = (
            f"  {entry['id']}  {people.name_of(entry['giver'])} gave"
            f" {people.name_of(entry['receiver'])} {_hours(entry['minutes'])}"
        )
        other = entry["receiver"] if entry["giver"] == me else entry["giver"]
        if entry["logged_by"] == me:
            print(f"{said}: waiting for {people.name_of(other)} to confirm")
        else:
            print(f"{said}: confirm with `kith post confirm --entry {entry['id']}`")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """``kith token``: a short-lived ``Authorization: Kith`` token on stdout, an example on
    stderr."""
    from node.client import TOKEN_TTL_MS

    client, _ = node_client(args)
    print(client.token())
    again = shlex.join(["kith", "token", "--key", args.key, "--url", client.url])
    where = shlex.quote(client.url + "/v1/timebank")
    print(
        f"kith: this token works for {TOKEN_TTL_MS // 60_000} minutes, on this node only;"
        f' e.g. curl -H "Authorization: Kith $({again})" {where}',
        file=sys.stderr,
    )
    return 0


def register(sub: Subcommands) -> None:
    """Add ``needs``, ``offers``, ``timebank`` and ``token`` to ``kith``."""
    reader_key = "your key file (without it: public needs and offers only)"

    def command(name: str, help_text: str, fn: Any, key_help: str, key_required: bool) -> Any:
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_node_options(p, key_help=key_help, key_required=key_required)
        if fn is not cmd_token:
            p.add_argument("--json", action="store_true", help="the node's answer as JSON")
        p.set_defaults(fn=fn)
        return p

    p = command(
        "needs", "the pod's needs (and public ones of other pods)", cmd_needs, reader_key, False
    )
    p.add_argument("--status", choices=NEED_STATES, help=f"only {', '.join(NEED_STATES)}")
    p.add_argument("--category", choices=CATEGORIES, metavar="CATEGORY", help=CATEGORY_HELP)
    p.add_argument("--urgency", choices=URGENCIES, help=f"only {', '.join(URGENCIES)}")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    p = command(
        "offers",
        "the pod's offers of help (and public ones of other pods)",
        cmd_offers,
        reader_key,
        False,
    )
    p.add_argument("--category", choices=CATEGORIES, metavar="CATEGORY", help=CATEGORY_HELP)
    p.add_argument("--withdrawn", action="store_true", help="withdrawn offers too")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    command(
        "timebank",
        "the pod's time bank: balances, and your entries waiting for a confirmation",
        cmd_timebank,
        "your key file (a member's)",
        True,
    )
    command(
        "token",
        "print a short-lived token for curl (Authorization: Kith TOKEN)",
        cmd_token,
        "your key file (a member's)",
        True,
    )
