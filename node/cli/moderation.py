"""``kith member block|unblock|remove``: a coordinator's actions on a person, signed with the
coordinator's own key, so the log says who did it (docs/moderation.md).

Each action takes effect **from now**: its position (``effective``) is read from the current
heads of the person's logs, in every scope, through ``GET /v1/logs/{pod}/{key}/{scope}``. A
position given by hand (``--effective pod=12``) may lie in the past — to undo what someone
already posted — but never in the future: a removal from a seq that does not exist yet would
wait silently for it, and is refused here with the reason.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from node.cli.options import add_node_options, node_client
from node.cli.people import People
from node.cli.posts import print_result
from node.cli.values import event_id
from protocol.reasons import KithError

__all__ = ["Pod", "register_member_actions"]

SCOPES = ("pod", "peers", "public")
#: The ``--help`` of an argument that names a person.
PERSON_HELP = "the person: their key (or a device's), a key file, or their display name"
_ADMIN = ("root", "node", "coordinator")


class Pod:
    """What a coordinator's command reads from the node: the roster, roles, log heads."""

    def __init__(self, args: argparse.Namespace) -> None:
        from protocol.kinds import KEY_PATTERN

        self._key_pattern = re.compile(KEY_PATTERN)
        self.client, self.key_file = node_client(args)
        info = self.client.info()
        self.id: str = info["pod"]
        self.node_key: str = info["node_key"]
        #: Where this pod's member changes are signed (D43).
        self.roster_scope: str = info.get("roster_scope", "public")
        self.members: list[dict[str, Any]] = self.client.get("/v1/members")
        #: Reads a person typed as a key, a key file or a display name.
        self.people = People(self.client, self.members)

    def check_key(self, value: str, what: str = "KEY") -> str:
        """``value`` if it has the shape of a key, else a clear error."""
        if not self._key_pattern.match(value):
            raise KithError(
                f"{what}: not a key: {value} (a key is 43 base64url characters;"
                " `kith member list` shows them)"
            )
        return value

    def person(self, value: str, what: str = "member") -> dict[str, Any]:
        """The member ``value`` names (a key, a device's key, a key file or a display name);
        a clear error for anyone else."""
        key = self.people.key_of(value, what)
        for m in self.members:
            if m["key"] == key or any(d["key"] == key for d in m["devices"]):
                return m
        raise KithError(
            f"{key} is not a member of this pod (nor one of their devices):"
            " `kith member list` shows who is"
        )

    def role(self, key: str) -> str | None:
        """The role ``key`` acts with here (``node``/``root`` for the pod's own keys)."""
        if key == self.node_key:
            return "node"
        if key == self.id:
            return "root"
        for m in self.members:
            if m["key"] == key or any(d["key"] == key for d in m["devices"]):
                return str(m["role"])
        return None

    def require_coordinator(self, what: str) -> None:
        """Refuse, before signing anything, when the key file is not a coordinator's."""
        role = self.role(self.key_file.public)
        if role not in _ADMIN:
            raise KithError(
                f"only the pod's coordinators may {what}; your key is"
                f" {'a ' + role if role else 'not on the roster'} (use a coordinator's key file)"
            )

    def heads(self, key: str) -> dict[str, int]:
        """The last seq of each of ``key``'s logs in this pod (0 for an empty log)."""
        return {
            scope: int(self.client.get(f"/v1/logs/{self.id}/{key}/{scope}")["seq"])
            for scope in SCOPES
        }

    def post(self, kind: str, body: dict[str, Any], *, scope: str | None = None) -> dict[str, Any]:
        """Sign ``kind`` with the coordinator's key and post it; the node's result.

        Roster changes go where the pod keeps its roster unless ``scope`` says otherwise.
        """
        result: dict[str, Any] = self.client.post(kind, body, scope=scope or self.roster_scope)
        return result


def _positions(pod: Pod, key: str, given: list[str] | None) -> dict[str, int]:
    """``effective`` from now (each log's next seq), with any ``--effective scope=SEQ`` given
    by hand — never after the next seq."""
    heads = pod.heads(key)
    effective = {scope: seq + 1 for scope, seq in heads.items()}
    for item in given or []:
        scope, _, seq = item.partition("=")
        if scope not in SCOPES or not seq.isdigit() or int(seq) < 1:
            raise KithError(
                f"--effective takes SCOPE=SEQ (scope pod, peers or public), not {item!r}"
            )
        if int(seq) > heads[scope] + 1:
            raise KithError(
                f"invalid:future-position: {scope} seq {seq} is after this log's next seq"
                f" ({heads[scope] + 1}); a removal or block takes effect from now or earlier"
            )
        effective[scope] = int(seq)
    return effective


def _said(effective: dict[str, int]) -> str:
    return ", ".join(f"{scope} seq {seq}" for scope, seq in effective.items())


def _resolve(pod: Pod, report: str | None, action: dict[str, Any], note: str | None) -> None:
    """Close ``report`` with a ``report.resolved`` naming the action just taken."""
    if not report or not action.get("ok"):
        return
    body: dict[str, Any] = {"report": pod.check_key(report, "--report"), "action": action["id"]}
    if note:
        body["note"] = note
    print_result("report.resolved", pod.post("report.resolved", body, scope="pod"))


def _coordinator_pod(args: argparse.Namespace, what: str) -> Pod:
    """The pod, for a coordinator who is about to ``what`` (a block or a removal) — refused
    before anything is signed for anyone else, or for a ``--note`` without its ``--report``."""
    if args.note and not args.report:
        raise KithError("--note goes with the report it resolves: give --report ID too")
    pod = Pod(args)
    pod.require_coordinator(what)
    return pod


def _sign_action(
    pod: Pod, args: argparse.Namespace, kind: str, body: dict[str, Any], done: str
) -> tuple[int, dict[str, Any]]:
    """Sign ``kind`` (a block or a removal) and post it, say ``done`` once the node took it, and
    resolve ``--report`` with it (its note: ``--note``, else the action's reason word)."""
    result = pod.post(kind, body)
    code = print_result(kind, result)
    if code == 0:
        print(done)
    _resolve(pod, args.report, result, args.note or body.get("reason"))
    return code, result


def cmd_block(args: argparse.Namespace) -> int:
    """``kith member block KEY``: block a person (from now), maybe adopting or advising."""
    pod = _coordinator_pod(args, "block")
    key = pod.people.key_of(args.member, "member")
    person = next((m for m in pod.members if m["key"] == key), None)
    if person is None and args.adopt is None:
        person = pod.person(key)  # a device key means its person; anyone else: an error
        key = person["key"]
    body: dict[str, Any] = {"key": key, "effective": _positions(pod, key, args.effective)}
    reason = args.reason
    if args.adopt:
        advice = _advisory(pod, args.adopt, key)
        body["advisory"] = args.adopt
        reason = reason or advice["reason"]
    if reason:
        body["reason"] = reason
    done = (
        f"Blocked {key} from {_said(body['effective'])}: their later events are kept but"
        " neither shown nor delivered. The block and its reason word are public (roster"
        " events are); a note stays with the report, in the pod."
    )
    code, result = _sign_action(pod, args, "member.blocked", body, done)
    if args.advise and result.get("ok"):
        advice_body = {"key": key, "reason": args.advise, "blocked": result["id"]}
        code = print_result("block.advised", pod.post("block.advised", advice_body, scope="peers"))
        if code == 0:
            print(
                "Direct peers' coordinators will see the advice in their moderation view;"
                " it is applied only if one of them adopts it."
            )
    return code


def _advisory(pod: Pod, advisory: str, key: str) -> dict[str, Any]:
    """The incoming block advice ``advisory`` as this pod's moderation view shows it."""
    pod.check_key(advisory, "--adopt")
    view = pod.client.get("/v1/moderation")
    found = next((a for a in view["advisories"] if a["id"] == advisory), None)
    if found is None or found["direction"] != "incoming":
        raise KithError(
            f"no block advice {advisory} from a direct peer here (`kith moderation show` lists it)"
        )
    if found["key"] != key:
        raise KithError(f"block advice {advisory} is about {found['key']}, not {key}")
    if found["status"] == "adopted":
        raise KithError(f"block advice {advisory} is already adopted ({found['adopted_by']})")
    return dict(found)


def cmd_unblock(args: argparse.Namespace) -> int:
    """``kith member unblock KEY``: lift a block from now."""
    pod = Pod(args)
    pod.require_coordinator("unblock")
    person = pod.person(args.member)
    key = person["key"]
    if person["status"] != "blocked":
        raise KithError(f"{key} is not blocked here (status: {person['status']})")
    body: dict[str, Any] = {"key": key, "effective": _positions(pod, key, None)}
    if args.reason:
        body["reason"] = args.reason
    code = print_result("member.unblocked", pod.post("member.unblocked", body))
    if code != 0:
        return code
    now: dict[str, Any] = next((m for m in pod.client.get("/v1/members") if m["key"] == key), {})
    if now.get("status") == "blocked":
        # Said as it is: the unblock is signed and kept, but another block still stands (one
        # by time, on a device of theirs, or at a later position than this unblock's).
        print(
            f"kith: member.unblocked is stored, but this node still lists {key} as blocked:"
            " another block still stands; see `kith moderation show`",
            file=sys.stderr,
        )
        return 1
    print(f"Unblocked {key} from {_said(body['effective'])}: their new events count again.")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    """``kith member remove KEY``: remove a person from now (or a stated earlier position)."""
    pod = _coordinator_pod(args, "remove members")
    person = pod.person(args.member)
    key = person["key"]
    if person["status"] == "removed":
        raise KithError(f"{key} is already removed from this pod")
    body: dict[str, Any] = {"key": key, "effective": _positions(pod, key, args.effective)}
    if args.reason:
        body["reason"] = args.reason
    done = (
        f"Removed {key} from {_said(body['effective'])}: what they did before stays (their"
        " balance, claims and history); nothing they sign later counts."
    )
    return _sign_action(pod, args, "member.removed", body, done)[0]


def register_member_actions(member_sub: Any) -> None:
    """Add ``block``, ``unblock`` and ``remove`` to ``kith member``."""
    from protocol.kinds import ACTION_REASONS, ADVISORY_REASONS

    words = "one word, public: " + ", ".join(ACTION_REASONS)
    note = "a note in words for the report it resolves (pod only; needs --report)"

    p = member_sub.add_parser(
        "block",
        help="block a person from now (coordinators)",
        description="block a person from now: their later events are kept, not shown (signed"
        " with your coordinator key; the block and its reason are public)",
    )
    p.add_argument("member", metavar="PERSON", help=PERSON_HELP)
    p.add_argument("--reason", choices=ACTION_REASONS, metavar="WORD", help=words)
    p.add_argument("--note", help=note)
    p.add_argument(
        "--report", type=event_id, help="the report this acts on (it is resolved with it)"
    )
    p.add_argument("--effective", action="append", metavar="SCOPE=SEQ", help="an earlier start")
    p.add_argument(
        "--advise",
        choices=ADVISORY_REASONS,
        help="also advise direct peers of the block, with this reason word",
    )
    p.add_argument(
        "--adopt", metavar="ADVISORY_ID", type=event_id, help="adopt a neighbour's block advice"
    )
    add_node_options(p, key_help="your coordinator key file")
    p.set_defaults(fn=cmd_block)

    p = member_sub.add_parser(
        "unblock", help="lift a block from now", description="lift a block from now (coordinators)"
    )
    p.add_argument("member", metavar="PERSON", help=PERSON_HELP)
    p.add_argument("--reason", choices=ACTION_REASONS, metavar="WORD", help=words)
    add_node_options(p, key_help="your coordinator key file")
    p.set_defaults(fn=cmd_unblock)

    p = member_sub.add_parser(
        "remove",
        help="remove a person from now (coordinators)",
        description="remove a person from now; what they did before stays theirs",
    )
    p.add_argument("member", metavar="PERSON", help=PERSON_HELP)
    p.add_argument("--reason", choices=ACTION_REASONS, metavar="WORD", help=words)
    p.add_argument("--note", help=note)
    p.add_argument(
        "--report", type=event_id, help="the report this acts on (it is resolved with it)"
    )
    p.add_argument("--effective", action="append", metavar="SCOPE=SEQ", help="an earlier start")
    add_node_options(p, key_help="your coordinator key file")
    p.set_defaults(fn=cmd_remove)
