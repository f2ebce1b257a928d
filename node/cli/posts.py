"""``kith post WHAT``: sign a care event (need, offer, claim, hours …) and post it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from node.cli.options import Subcommands, add_node_options, node_client
from node.cli.values import CATEGORIES, CATEGORY_HELP, URGENCIES, event_id
from protocol.reasons import KithError


def print_result(kind: str, result: dict[str, Any]) -> int:
    """Say what a posted event did, and return the exit code.

    Refused: raise ``KithError`` with the node's reason. Accepted: print its effect in words
    and return 0 — or, when it is stored but changed nothing (a claim on an unknown need, a
    second confirmation …), say why on stderr and return 1.
    """
    if not result.get("ok"):
        raise KithError(f"{kind} refused: {result.get('reason')}: {result.get('message', '')}")
    if result.get("reason") == "duplicate":
        print(f"{kind} was already recorded: {result['id']}")
        return 0
    effect = result.get("effect") or {}
    if effect and not effect.get("ok"):
        print(
            f"kith: {kind} is stored, but it changed nothing: {effect.get('message')}"
            f" ({effect.get('reason')}); id {result['id']}",
            file=sys.stderr,
        )
        return 1
    # The id stays the last word, so scripts that read it keep working.
    said = f" ({effect['message']})" if effect.get("message") else ""
    print(f"{kind} recorded{said}: {result['id']}")
    return 0


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
        windows = _windows(args)
        if len(windows) > 1:
            raise KithError("a need has one time window: give --from and --until once")
        if windows:
            body["window"] = windows[0]
        return "need.posted", body
    if what == "offer":
        body = {
            "title": args.title,
            "category": args.category,
            "capacity": args.capacity,
            **optional,
        }
        windows = _windows(args)
        if windows:
            body["windows"] = windows
        return "offer.posted", body
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
    if what == "profile":
        fields = {"name": args.name, "pronouns": args.pronouns, "about": args.about}
        body = {k: v for k, v in fields.items() if v is not None}
        if args.language:
            body["languages"] = args.language
        if not body:
            raise KithError(
                "a profile needs something in it: give --name (and --pronouns, --language, --about)"
            )
        return "profile.set", body
    return "need.withdrawn", {"need": args.need}


def _windows(args: argparse.Namespace) -> list[dict[str, int]]:
    """The time windows given as ``--from``/``--until`` pairs and ``--window FROM/UNTIL``."""
    from node.cli.when import parse_window, window_of

    starts = getattr(args, "start", None) or []
    ends = getattr(args, "until", None) or []
    if len(starts) != len(ends):
        raise KithError("give --from and --until in pairs (one --until for every --from)")
    windows = [window_of(start, end) for start, end in zip(starts, ends, strict=True)]
    return windows + [parse_window(text) for text in getattr(args, "window", None) or []]


def cmd_post(args: argparse.Namespace) -> int:
    """``kith post WHAT``: sign an event with the member's key and post it."""
    from protocol.kinds import validate_body
    from protocol.reasons import RejectedEvent

    client, key_file = node_client(args)
    kind, body = _post_body(args)
    if kind == "hours.logged":
        from node.cli.people import People

        people = People(client)
        body["giver"] = people.key_of(body["giver"], "--giver")
        body["receiver"] = people.key_of(body["receiver"], "--receiver")
    if kind == "need.posted":
        personal = _personal(args)
        if personal is not None:
            body["personal"] = _seal_personal(client, key_file, personal)
    elif kind == "claim.accepted":
        resealed = _reseal_for_helper(client, key_file, args.need, args.claim)
        if resealed is not None:
            body["personal"] = resealed
    try:
        validate_body(kind, body)
    except RejectedEvent as exc:
        raise KithError(f"{exc.reason}: {exc.message}") from None
    code = print_result(kind, client.post(kind, body, scope=args.scope))
    if "personal" in body and code == 0:
        print("  personal details sealed: only coordinators (and the accepted helper) can read")
    return code


def _personal(args: argparse.Namespace) -> dict[str, str] | None:
    fields = {
        "address": getattr(args, "address", None),
        "phone": getattr(args, "phone", None),
        "notes": getattr(args, "private_notes", None),
    }
    given = {k: v for k, v in fields.items() if v}
    return given or None


def _seal_personal(client: Any, key: Any, personal: dict[str, str]) -> dict[str, Any]:
    """Seal a need's personal fields to the pod's coordinators and to the poster."""
    from node.cli.sealed import pod_keys, seal_for

    keys = pod_keys(client, client.info()["pod"])
    own = keys["members"].get(key.public)
    recipients = [*keys["coordinators"], *([own] if own else [])]
    return seal_for(personal, recipients, "need.posted", "personal")


def _reseal_for_helper(client: Any, key: Any, need_id: str, claim_id: str) -> dict[str, Any] | None:
    """The need's personal details, opened with the accepter's key and sealed to the helper
    (and the coordinators); ``None`` when the need has none. For a need that a neighbour pod's
    referral became, the details come from the referral's assignment."""
    from node.cli.sealed import event_body, open_field, pod_keys, seal_for

    need = event_body(client, need_id) or {}
    sealed, kind, field = need.get("personal"), "need.posted", "personal"
    if sealed is None and need.get("referral"):
        item = client.call("GET", f"/v1/overflow/{need['referral']}")
        assignment = item["referral"].get("assignment") or {}
        if assignment.get("sealed_to"):
            sealed = (event_body(client, assignment["id"]) or {}).get("details")
            kind, field = "overflow.assigned", "details"
    if sealed is None:
        return None
    details = open_field(key, sealed, kind, field)
    if details is None:
        raise KithError(
            "the need's personal details are not sealed to your key: the need's author or a"
            " coordinator accepts, so that the helper can read them"
        )
    claim = client.call("GET", f"/v1/needs/{need_id}")
    helper = next((c["person"] for c in claim["claims"] if c["id"] == claim_id), None)
    if helper is None:
        raise KithError(f"no claim {claim_id} on this need (kith details {need_id} lists them)")
    keys = pod_keys(client, client.info()["pod"])
    helper_box = keys["members"].get(helper)
    if helper_box is None:
        raise KithError("the helper is not an active member: their details cannot be sealed")
    return seal_for(details, [helper_box, *keys["coordinators"]], "claim.accepted", "personal")


def cmd_details(args: argparse.Namespace) -> int:
    """``kith details NEED``: a need and the personal details sealed to your key, if any."""
    from node.cli.sealed import event_body, open_field

    client, key = node_client(args)
    need = client.call("GET", f"/v1/needs/{args.need}")
    print(f"{need['title']}  [{need['status']}] {need.get('category')}/{need.get('urgency')}")
    if need.get("details"):
        print(f"  {need['details']}")
    for claim in need["claims"]:
        print(f"  claim {claim['id']} by {claim['person'][:8]}: {claim['status']}")
    if need.get("overflow"):
        flow = need["overflow"]
        to = f" to pod {flow['to_pod'][:8]}" if flow.get("to_pod") else ""
        print(f"  passed to neighbour pods: {flow['state']}{to} (referral {flow['referral']})")
    opened = None
    body = event_body(client, args.need) or {}
    if body.get("personal") is not None:
        opened = open_field(key, body["personal"], "need.posted", "personal")
    if opened is None and need.get("accepted_claim"):
        accepts = client.get("/v1/events", kinds="claim.accepted", limit=10_000)["events"]
        for event in accepts:
            text = event["envelope"].get("body")
            accept = json.loads(text) if text else {}
            if accept.get("need") == args.need and accept.get("personal") is not None:
                opened = open_field(key, accept["personal"], "claim.accepted", "personal")
                if opened is not None:
                    break
    if opened is None and need.get("referral"):
        item = client.call("GET", f"/v1/overflow/{need['referral']}")
        assignment = item["referral"].get("assignment") or {}
        if assignment.get("sealed_to"):
            details = (event_body(client, assignment["id"]) or {}).get("details")
            opened = open_field(key, details, "overflow.assigned", "details")
    if opened is None:
        print("  personal details: none that your key can open")
    else:
        for name, value in opened.items():
            print(f"  {name}: {value}")
    return 0


def _language(value: str) -> str:
    """A ``--language`` value: a language tag like ``en``, ``es`` or ``pt-BR``."""
    import re

    if not re.fullmatch(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*", value):
        raise argparse.ArgumentTypeError(f"not a language tag: {value} (e.g. en, es, pt-BR)")
    return value


def _window_options(p: argparse.ArgumentParser, *, many: bool) -> None:
    when = "ISO 8601, e.g. 2026-03-01T18:00 (local time) or 2026-03-01T17:00Z"
    p.add_argument(
        "--from", dest="start", action="append", metavar="WHEN", help=f"window start ({when})"
    )
    p.add_argument("--until", action="append", metavar="WHEN", help="window end (after --from)")
    if many:
        p.add_argument(
            "--window",
            action="append",
            metavar="FROM/UNTIL",
            help="an availability window, repeatable (or repeat --from/--until pairs)",
        )


def register(sub: Subcommands) -> None:
    """Add ``post need``, ``post offer`` … ``post withdraw`` to ``kith``."""
    post = sub.add_parser(
        "post", help="sign and post an event", description="sign and post an event"
    )
    post_sub = post.add_subparsers(dest="what", required=True, metavar="WHAT")

    def post_cmd(name: str, help_text: str) -> argparse.ArgumentParser:
        p = post_sub.add_parser(name, help=help_text, description=help_text)
        add_node_options(p)
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
    p.add_argument(
        "--category", required=True, choices=CATEGORIES, metavar="CATEGORY", help=CATEGORY_HELP
    )
    p.add_argument(
        "--urgency",
        default="normal",
        choices=URGENCIES,
        help=f"one of: {', '.join(URGENCIES)} (default normal)",
    )
    p.add_argument("--details")
    p.add_argument("--area", help="a coarse area (never an address)")
    p.add_argument("--minutes", type=int, help="estimated minutes")
    p.add_argument("--address", help="sealed: only coordinators and the accepted helper read it")
    p.add_argument("--phone", help="sealed, like --address")
    p.add_argument("--private-notes", help="sealed, like --address")
    _window_options(p, many=False)
    p = post_cmd("offer", "offer help")
    p.add_argument("--title", required=True)
    p.add_argument(
        "--category", required=True, choices=CATEGORIES, metavar="CATEGORY", help=CATEGORY_HELP
    )
    p.add_argument("--capacity", type=int, default=1)
    p.add_argument("--details")
    p.add_argument("--area")
    _window_options(p, many=True)
    p = post_cmd("claim", "offer to meet a need")
    p.add_argument("--need", required=True, type=event_id)
    p.add_argument("--note")
    p = post_cmd("accept", "accept a claim on your need (need author or coordinator)")
    p.add_argument("--claim", required=True, type=event_id)
    p.add_argument("--need", required=True, type=event_id)
    p = post_cmd("fulfil", "record that a need was met")
    p.add_argument("--need", required=True, type=event_id)
    p.add_argument("--claim", type=event_id)
    p.add_argument("--minutes", type=int)
    p.add_argument("--note")
    p = post_cmd(
        "profile",
        "set how the pod knows you: your name (others can then name you instead of your key)",
    )
    p.add_argument("--name", help="your name as the pod sees it, e.g. Amara")
    p.add_argument("--pronouns", help="e.g. she/her")
    p.add_argument(
        "--language",
        action="append",
        type=_language,
        metavar="TAG",
        help="a language you speak, most fluent first (repeatable), e.g. --language es",
    )
    p.add_argument(
        "--about", help="a line about you; the whole profile is replaced, so give every field"
    )
    p = post_cmd("hours", "log time given (pending until the other side confirms)")
    person = "a key file, a public key, or a member's display name"
    p.add_argument("--giver", required=True, metavar="PERSON", help=f"who gave the time: {person}")
    p.add_argument("--receiver", required=True, metavar="PERSON", help=f"who received it: {person}")
    p.add_argument("--minutes", type=int, required=True)
    p.add_argument("--need", type=event_id)
    p.add_argument("--note")
    p = post_cmd("confirm", "confirm hours someone logged with you")
    p.add_argument("--entry", required=True, type=event_id)
    p = post_cmd("withdraw", "withdraw your need")
    p.add_argument("--need", required=True, type=event_id)
    details = sub.add_parser(
        "details",
        help="show a need and the personal details sealed to you",
        description="show a need and the personal details sealed to your key, if any",
    )
    details.add_argument("need", type=event_id, help="the need's id")
    add_node_options(details)
    details.set_defaults(fn=cmd_details)
