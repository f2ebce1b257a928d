"""``kith gathering schedule|cancel|rsvp|list``: circles, support groups, skill shares and
food distributions, signed with the member's key and posted like any other event.

A private place (``--place-private``: someone's home, a shelter) is sealed on this computer to
the pod's members' box keys (``GET /v1/pods/{pod}/keys``); the node only ever holds ciphertext.
"""

from __future__ import annotations

import argparse
import datetime
from typing import Any

from node.cli.options import Subcommands, add_node_options, node_client
from node.cli.values import event_id
from protocol.reasons import KithError

_KINDS = ["healing_circle", "peer_support", "skill_share", "food_distribution", "meeting", "other"]


_client = node_client


def _post(client: Any, kind: str, body: dict[str, Any], scope: str) -> int:
    from node.cli.posts import print_result
    from protocol.kinds import validate_body
    from protocol.reasons import RejectedEvent

    try:
        validate_body(kind, body)
    except RejectedEvent as exc:
        raise KithError(f"{exc.reason}: {exc.message}") from None
    return print_result(kind, client.post(kind, body, scope=scope))


def _seal_place(client: Any, place: str) -> dict[str, Any]:
    """Seal a private place to every active member of the pod (at most 32 recipients)."""
    from node.cli.sealed import pod_keys, seal_for
    from protocol.sealed import MAX_RECIPIENTS

    members = sorted(set(pod_keys(client, client.info()["pod"])["members"].values()))
    if len(members) > MAX_RECIPIENTS:
        raise KithError(
            f"a place can be sealed to at most {MAX_RECIPIENTS} members and this pod has"
            f" {len(members)}: give a public --place, or share the address another way"
        )
    return seal_for({"place": place}, members, "gathering.scheduled", "place_sealed")


def cmd_schedule(args: argparse.Namespace) -> int:
    """``kith gathering schedule``: sign ``gathering.scheduled``."""
    from node.cli.when import window_of

    client, _ = _client(args)
    body: dict[str, Any] = {
        "title": args.title,
        "kind": args.kind,
        "window": window_of(args.start, args.until),
    }
    if args.place:
        body["place"] = args.place
    if args.place_private:
        body["place_sealed"] = _seal_place(client, args.place_private)
    if args.capacity is not None:
        body["capacity"] = args.capacity
    if args.details:
        body["details"] = args.details
    code = _post(client, "gathering.scheduled", body, args.scope)
    if "place_sealed" in body and code == 0:
        print("  place sealed: only the pod's members can read it")
    return code


def _gathering(client: Any, gathering_id: str) -> dict[str, Any]:
    found: dict[str, Any] = client.call("GET", f"/v1/gatherings/{gathering_id}")
    return found


def cmd_cancel(args: argparse.Namespace) -> int:
    """``kith gathering cancel ID``: sign ``gathering.cancelled`` in the gathering's own scope,
    so that everyone who could see it (a public calendar too) sees it called off."""
    client, _ = _client(args)
    gathering = _gathering(client, args.gathering)
    body: dict[str, Any] = {"gathering": args.gathering}
    if args.reason:
        body["reason"] = args.reason
    return _post(client, "gathering.cancelled", body, gathering["scope"])


def cmd_rsvp(args: argparse.Namespace) -> int:
    """``kith gathering rsvp ID --answer yes|no|maybe``: pod scope — who comes stays in the pod."""
    client, _ = _client(args)
    _gathering(client, args.gathering)  # a clear "not-found" before signing anything
    body = {"gathering": args.gathering, "answer": args.answer}
    return _post(client, "gathering.rsvp", body, "pod")


def _when(ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M")


def cmd_list(args: argparse.Namespace) -> int:
    """``kith gathering list``: gatherings with their answers; private places opened if the
    key can."""
    from node.cli.sealed import open_field

    client, key = _client(args)
    params: dict[str, Any] = {"limit": args.limit}
    if args.upcoming:
        params["upcoming"] = "true"
    if args.state:
        params["state"] = args.state
    gatherings = client.get("/v1/gatherings", **params)  # with a key: the pod's own too
    if not gatherings:
        print("no gatherings")
    for g in gatherings:
        window = g.get("window")
        when = f"{_when(window['start'])} – {_when(window['end'])}" if window else "(no time)"
        answers = g["rsvps"]
        cap = f"/{g['capacity']}" if g.get("capacity") else ""
        full = " full" if g.get("full") else ""
        print(f"{g['id']}  [{g['status']}] {when}  {g['title']} ({g.get('kind')})")
        print(
            f"  yes {answers['yes']}{cap}{full}, maybe {answers['maybe']}, no {answers['no']}"
            f"  · {g['scope']}"
        )
        place = g.get("place")
        if g.get("place_sealed") is not None:
            opened = (
                None
                if key is None
                else open_field(key, g["place_sealed"], "gathering.scheduled", "place_sealed")
            )
            place = "(private: members only)" if opened is None else opened.get("place")
        if place:
            print(f"  at {place}")
    return 0


def register(sub: Subcommands) -> None:
    """Add ``gathering schedule|cancel|rsvp|list`` to ``kith``."""
    gathering = sub.add_parser(
        "gathering",
        help="schedule, cancel and answer gatherings (circles, groups, skill shares)",
        description="circles, peer-support groups, skill shares, food distributions",
    )
    actions = gathering.add_subparsers(dest="gathering_command", required=True, metavar="ACTION")

    def action(name: str, help_text: str, fn: Any, *, key_required: bool = True) -> Any:
        p = actions.add_parser(name, help=help_text, description=help_text)
        add_node_options(p, key_required=key_required)
        p.set_defaults(fn=fn)
        return p

    when = "ISO 8601, e.g. 2026-03-01T18:00 (local time) or 2026-03-01T17:00Z"
    p = action("schedule", "schedule a gathering", cmd_schedule)
    p.add_argument("--title", required=True)
    p.add_argument("--kind", required=True, choices=_KINDS)
    p.add_argument("--from", dest="start", required=True, metavar="WHEN", help=f"start ({when})")
    p.add_argument("--until", required=True, metavar="WHEN", help="end (after --from)")
    place = p.add_mutually_exclusive_group()
    place.add_argument("--place", help="where, in public words (a hall, a park, online)")
    place.add_argument(
        "--place-private", metavar="PLACE", help="where, sealed so only the pod's members read it"
    )
    p.add_argument("--capacity", type=int, help="how many can come (shown, never enforced)")
    p.add_argument("--details")
    p.add_argument(
        "--scope",
        choices=["pod", "public"],
        default="pod",
        help="who may see it (default pod: members only; public: the public calendar too)",
    )
    p = action("cancel", "call a gathering off (its organiser or a coordinator)", cmd_cancel)
    p.add_argument("gathering", type=event_id, help="the gathering's id")
    p.add_argument("--reason")
    p = action("rsvp", "say whether you come", cmd_rsvp)
    p.add_argument("gathering", type=event_id, help="the gathering's id")
    p.add_argument("--answer", required=True, choices=["yes", "no", "maybe"])
    p = action("list", "list gatherings", cmd_list, key_required=False)
    p.add_argument("--upcoming", action="store_true", help="only those still to come")
    p.add_argument("--state", choices=["scheduled", "cancelled"])
    p.add_argument("--limit", type=int, default=100)
