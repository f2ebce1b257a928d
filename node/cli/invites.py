"""``kith invite create|list|revoke``: invite someone without a terminal of their own
(docs/invites.md).

``create`` makes a random code here, signs ``invite.created`` with the coordinator's key (the
node gets only the code's hash) and prints the link — ``<node>/#join/<code>``, the code in the
fragment so no server log ever holds it — with a QR code in the terminal (and ``--qr`` writes it
as an SVG file). The newcomer opens the link on their phone; their browser makes their key.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from node.cli.options import Subcommands, add_node_options, node_client, node_url
from node.cli.posts import print_result
from protocol.reasons import KithError

_UNITS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}
#: Shortest and longest life of an invite: ten minutes to thirty days.
MIN_EXPIRES_MS, MAX_EXPIRES_MS = 10 * 60_000, 30 * 86_400_000


def parse_expires(text: str) -> int:
    """``"72h"`` → milliseconds; a number with ``m``, ``h`` or ``d``, ten minutes to 30 days."""
    found = re.fullmatch(r"\s*([0-9]{1,6})\s*([mhd])\s*", text.lower())
    if found is None:
        raise KithError(f"--expires takes a number and a unit: 30m, 72h or 7d (not {text!r})")
    ms = int(found.group(1)) * _UNITS[found.group(2)]
    if not MIN_EXPIRES_MS <= ms <= MAX_EXPIRES_MS:
        raise KithError("--expires must be between 10m and 30d")
    return ms


def invite_link(base: str, code: str) -> str:
    """The link a newcomer opens: the board at ``base`` with the code in the fragment."""
    return f"{base.rstrip('/')}/#join/{code}"


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def cmd_invite_create(args: argparse.Namespace) -> int:
    """``kith invite create``: sign an invite, print its link and QR code."""
    import segno

    from node.projections.invites import code_hash, new_code

    expires_ms = parse_expires(args.expires)
    client, _ = node_client(args)
    client.get("/v1/invites")  # a member's invite would count for nothing: refused here (403)
    code = new_code()
    body = {
        "code_hash": code_hash(code),
        "expires_at": int(time.time() * 1000) + expires_ms,
        "approve": args.approve,
    }
    result = client.post("invite.created", body, scope="pod")
    status = print_result("invite.created", result)
    if status != 0:
        return status
    link = invite_link(args.link or node_url(args), code)
    qr = segno.make(link, error="m")
    print()
    print("Send this link, or show the QR code; it works once:")
    print(f"  {link}")
    if not args.no_qr:
        qr.terminal(out=sys.stdout, compact=True, border=2)
    if args.qr:
        qr.save(args.qr, kind="svg", scale=8, border=4, dark="#000", light="#fff")
        print(f"QR code written to {args.qr}")
    who = "it joins them at once" if args.approve == "auto" else "a coordinator approves them"
    hours = expires_ms / 3_600_000
    print(f"Whoever opens it first makes their key in their browser; {who}.")
    print(f"It expires in {hours:g} hours. `kith invite revoke {result['id']}` withdraws it.")
    if not args.link and _loopback(node_url(args)):
        print(
            "Note: this link names the node by a loopback address, which a phone cannot reach;"
            " pass --link http://<this machine's address>:<port> for the address people use.",
            file=sys.stderr,
        )
    return 0


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ms / 1000))


def cmd_invite_list(args: argparse.Namespace) -> int:
    """``kith invite list``: every invite with its status, and who waits for approval."""
    client, _ = node_client(args)
    view: dict[str, Any] = client.get("/v1/invites")
    invites = view["invites"]
    if not invites:
        print("No invites yet: `kith invite create` makes one.")
    for item in invites:
        line = (
            f"[{item['status']}] {item['id']} by {item['by']} at {_when(item['at'])},"
            f" {'joins at once' if item['approve'] == 'auto' else 'a coordinator approves'},"
            f" expires {_when(item['expires_at'])}"
        )
        if item["member"]:
            line += f" — used by {item['member']}"
        print(line)
    for req in view["requests"]:
        name = req["name"] or "(no name given)"
        print(
            f"Waiting: {name} on invite {req['invite']} since {_when(req['at'])}: key"
            f" {req['key']} box key {req['box_key']}."
            f" Approve (on the node): kith member add --key {req['key']} --box-key"
            f" {req['box_key']} --invite {req['invite']};"
            f" decline: kith invite revoke {req['invite']}"
        )
    return 0


def cmd_invite_revoke(args: argparse.Namespace) -> int:
    """``kith invite revoke ID``: withdraw an invite, or decline the request waiting on it."""
    from protocol.kinds import KEY_PATTERN

    if not re.match(KEY_PATTERN, args.invite):
        raise KithError(
            "revoke takes an invite's id (43 characters): `kith invite list` shows them"
        )
    client, _ = node_client(args)
    known = {i["id"]: i for i in client.get("/v1/invites")["invites"]}
    if args.invite not in known:
        raise KithError(f"no invite {args.invite} in this pod (`kith invite list` shows them)")
    if known[args.invite]["status"] in ("used", "revoked"):
        raise KithError(f"invite {args.invite} is {known[args.invite]['status']} already")
    body = {"invite": args.invite}
    return print_result("invite.revoked", client.post("invite.revoked", body, scope="pod"))


def register(sub: Subcommands) -> None:
    """Add ``invite create|list|revoke`` to ``kith``."""
    inv = sub.add_parser(
        "invite",
        help="invite someone with a link or QR code (coordinators)",
        description="invite someone with a link or QR code: they open it on their phone, and"
        " their browser makes their key (coordinators; docs/invites.md)",
    )
    inv_sub = inv.add_subparsers(dest="invite_command", required=True, metavar="ACTION")
    p = inv_sub.add_parser(
        "create",
        help="make a one-time invite link and QR code",
        description="make a one-time invite: prints a link and a QR code. The code is made"
        " here and never sent to the node, only its hash; the link works once, until it"
        " expires.",
    )
    p.add_argument(
        "--expires",
        default="72h",
        metavar="DURATION",
        help="how long the link works: 30m, 72h, 7d … (10m to 30d; default 72h)",
    )
    p.add_argument(
        "--approve",
        choices=("auto", "coordinator"),
        default="coordinator",
        help="auto: whoever opens it joins at once; coordinator (default): they wait until a"
        " coordinator approves them",
    )
    p.add_argument("--qr", metavar="FILE.svg", help="also write the QR code to this SVG file")
    p.add_argument("--no-qr", action="store_true", help="print the link only, no QR code")
    p.add_argument(
        "--link",
        metavar="URL",
        help="the node's address as people reach it (default: --url), e.g."
        " http://192.168.1.20:8470",
    )
    add_node_options(p, key_help="a coordinator's key file")
    p.set_defaults(fn=cmd_invite_create)

    p = inv_sub.add_parser(
        "list",
        help="invites and their status; who waits for approval",
        description="every invite (open, pending, used, expired, revoked) and the newcomers"
        " waiting for a coordinator, with how to approve or decline them",
    )
    add_node_options(p, key_help="a coordinator's key file")
    p.set_defaults(fn=cmd_invite_list)

    p = inv_sub.add_parser(
        "revoke",
        help="withdraw an invite (or decline who waits on it)",
        description="withdraw an invite so that its link no longer works; if someone is"
        " waiting on it, this declines them",
    )
    p.add_argument("invite", help="the invite's id (`kith invite list`)")
    add_node_options(p, key_help="a coordinator's key file")
    p.set_defaults(fn=cmd_invite_revoke)
