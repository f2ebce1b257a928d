"""``kith overflow refer|list|show|offer|assign|return``: pass what a pod cannot meet to its
neighbours, without exposing the person (docs/overflow.md).

Every command talks to the running node with a coordinator's key file (``list`` and ``show``
with any member's). ``assign`` opens the need's sealed personal fields with that key and seals
them, with the title and details, to the receiving pod's coordinators only; ``show`` opens the
details of a referral assigned to your pod.
"""

from __future__ import annotations

import argparse
import datetime
from typing import Any

from node.cli.options import Subcommands, add_node_options, node_client
from node.cli.values import event_id
from protocol.reasons import KithError

_client = node_client


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _short(pod: str | None) -> str:
    return "-" if pod is None else pod[:8]


def _line(item: dict[str, Any]) -> str:
    ref = item["referral"]
    where = ref.get("area") or "anywhere"
    to = ref["assignment"]["to_pod"] if ref.get("assignment") else None
    peer = f"to {_short(to)}" if item["direction"] == "outgoing" else f"from {_short(ref['pod'])}"
    parts = [
        f"{ref['id']}  {item['state']:<9} {ref.get('category') or '?'}/{ref.get('urgency') or '?'}",
        f"in {where}",
        peer if to or item["direction"] == "incoming" else "not assigned",
        f"offers {len(ref['offers'])}",
        f"expires {_when(ref.get('expires_at'))}",
    ]
    if item.get("flag"):
        parts.append(f"FLAG: {item['flag']}")
    return "  ".join(parts)


def cmd_refer(args: argparse.Namespace) -> int:
    """``kith overflow refer NEED``: the node builds the redacted summary and signs it."""
    client, _ = _client(args)
    answer = client.call(
        "POST",
        "/v1/overflow/refer",
        {"need": args.need, "hops_left": args.hops, "expires_in_hours": args.expires_in},
    )
    ref = answer["referral"]["referral"]
    print(f"referred to neighbour pods: {answer['id']}")
    print(
        f"  they see only: {ref['category']}/{ref['urgency']}, area {ref.get('area') or '-'},"
        f" {ref['hops_left']} hop(s) left, expires {_when(ref['expires_at'])}"
    )
    print("  next: wait for an offer (kith overflow list), then kith overflow assign")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """``kith overflow list``: outgoing and incoming referrals."""
    client, _ = _client(args)
    answer = client.get("/v1/overflow", state=args.state)
    for title, items in (("outgoing", answer["outgoing"]), ("incoming", answer["incoming"])):
        print(f"{title} ({len(items)})")
        for item in items:
            print("  " + _line(item))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """``kith overflow show REFERRAL``: one referral; its details if sealed to your key."""
    from node.cli.sealed import event_body, open_field

    client, key = _client(args)
    item = client.call("GET", f"/v1/overflow/{args.referral}")
    ref = item["referral"]
    print(_line(item))
    for offer in ref["offers"]:
        note = f": {offer['note']}" if offer.get("note") else ""
        print(f"  offer from {_short(offer['pod'])} at {_when(offer['ts'])}{note}")
    if ref.get("closing"):
        closing = ref["closing"]
        extra = f", {closing['minutes']} min" if closing.get("minutes") else ""
        why = f": {closing['reason']}" if closing.get("reason") else ""
        print(f"  {closing['outcome']} at {_when(closing['ts'])}{extra}{why}")
    for side in ref["clearing"]:
        print(f"  clearing by {_short(side['pod'])}: {side['minutes']:+d} min")
    for ignored in ref["ignored"]:
        print(f"  no effect: {ignored['kind']} by {_short(ignored['pod'])}: {ignored['reason']}")
    if item.get("local_need"):
        print(f"  need here: {item['local_need']}")
    assigned = ref.get("assignment")
    if assigned and assigned.get("sealed_to"):
        body = event_body(client, assigned["id"]) or {}
        details = open_field(key, body.get("details"), "overflow.assigned", "details")
        if details is None:
            print("  details: sealed (not to your key)")
        else:
            for name, value in details.items():
                print(f"  {name}: {value}")
    return 0


def _move(args: argparse.Namespace, verb: str, data: dict[str, Any]) -> dict[str, Any]:
    client, _ = _client(args)
    answer: dict[str, Any] = client.call("POST", f"/v1/overflow/{args.referral}/{verb}", data)
    return answer


def cmd_offer(args: argparse.Namespace) -> int:
    """``kith overflow offer REFERRAL``: your pod can take it."""
    answer = _move(args, "offer", {"note": args.note} if args.note else {})
    print(f"offer recorded: {answer['id']} (the referring pod decides who takes it)")
    return 0


def cmd_assign(args: argparse.Namespace) -> int:
    """``kith overflow assign REFERRAL --to POD``: give it to one pod, details sealed to it."""
    from node.cli.sealed import event_body, open_field, pod_keys, seal_for

    client, key = _client(args)
    item = client.call("GET", f"/v1/overflow/{args.referral}")
    ref = item["referral"]
    to_pod = args.to
    if to_pod is None:
        pods = sorted({offer["pod"] for offer in ref["offers"]})
        if len(pods) != 1:
            raise KithError(
                "say which pod takes it with --to POD"
                + (f" (offers from: {', '.join(pods)})" if pods else " (no offers yet)")
            )
        to_pod = pods[0]
    data: dict[str, Any] = {"to_pod": to_pod}
    # Only the origin has the need (and assigns): anywhere else, let the node say why not.
    if not args.no_details and ref.get("need") and item["direction"] == "outgoing":
        need_body = event_body(client, ref["need"]) or {}
        details: dict[str, Any] = {
            k: need_body[k] for k in ("title", "details") if need_body.get(k) is not None
        }
        personal = open_field(key, need_body.get("personal"), "need.posted", "personal")
        if need_body.get("personal") is not None and personal is None:
            raise KithError(
                "the need's personal details are not sealed to your key; assign with a"
                " coordinator's key, or pass --no-details"
            )
        details.update(personal or {})
        coordinators = pod_keys(client, to_pod)["coordinators"]
        data["details"] = seal_for(details, coordinators, "overflow.assigned", "details")
    answer = _move(args, "assign", data)
    sealed = "with details sealed to its coordinators" if "details" in data else "without details"
    print(f"assigned to {to_pod} {sealed}: {answer['id']}")
    return 0


def cmd_return(args: argparse.Namespace) -> int:
    """``kith overflow return REFERRAL``: hand it back to the referring pod."""
    answer = _move(args, "return", {"reason": args.reason} if args.reason else {})
    print(f"returned to the referring pod: {answer['id']}")
    return 0


def register(sub: Subcommands) -> None:
    """Add ``kith overflow …``."""
    overflow = sub.add_parser(
        "overflow",
        help="pass needs your pod cannot meet to neighbour pods",
        description="pass needs your pod cannot meet to neighbour pods (docs/overflow.md)",
    )
    actions = overflow.add_subparsers(dest="overflow_command", required=True, metavar="ACTION")

    def action(name: str, help_text: str, fn: Any, target: str | None) -> argparse.ArgumentParser:
        p = actions.add_parser(name, help=help_text, description=help_text)
        if target is not None:
            p.add_argument(target, type=event_id, help=f"the {target}'s id")
        add_node_options(p, key_help="your key file (a coordinator's, to move)")
        p.set_defaults(fn=fn)
        return p

    p = action("refer", "refer one of your pod's open needs to neighbour pods", cmd_refer, "need")
    p.add_argument("--hops", type=int, default=2, help="times it may be passed on (default 2)")
    p.add_argument(
        "--expires-in", type=int, default=72, metavar="HOURS", help="lapse after (default 72)"
    )
    p = action("list", "referrals out of and into your pod", cmd_list, None)
    p.add_argument(
        "--state",
        choices=["referred", "offered", "assigned", "fulfilled", "returned", "lapsed"],
    )
    action("show", "one referral, and its details if they are sealed to you", cmd_show, "referral")
    p = action("offer", "say your pod can take a neighbour's referral", cmd_offer, "referral")
    p.add_argument("--note", help="a short note for the referring pod")
    p = action("assign", "give your referral to one pod that offered", cmd_assign, "referral")
    p.add_argument("--to", metavar="POD", help="the pod (default: the only one that offered)")
    p.add_argument("--no-details", action="store_true", help="send no details at all")
    p = action("return", "hand a referral assigned to your pod back", cmd_return, "referral")
    p.add_argument("--reason", help="why (the referring pod sees it)")
