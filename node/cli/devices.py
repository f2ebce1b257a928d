"""``kith member list|devices|add-device|revoke-device|recover``: people, their device keys, and a
recovery when someone lost every device (docs/recovery.md).

One key per device, never shared: a person holds a primary key (the one they joined with) and
any linked device keys, and everything they did — balance, claims, history — belongs to the
person, not to a key. So a lost phone costs a revocation (``revoke-device``: its events up to
its current head stay valid, nothing later counts), and losing every device costs a recovery
(``recover``): a coordinator, after checking in person, links a new key to the same person and
revokes the lost ones.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from node.cli.moderation import Pod
from node.cli.posts import print_result
from protocol.reasons import KithError

__all__ = ["register_member_actions"]


def _status(m: dict[str, Any]) -> str:
    return str(m["status"]) + (" (joined key revoked)" if m["primary_revoked"] else "")


def cmd_list(args: argparse.Namespace) -> int:
    """``kith member list``: people by role and status, with their device keys."""
    pod = Pod(args)
    if not pod.members:
        print("No members yet: `kith member add` adds one.")
    for role in ("coordinator", "member"):
        people = [m for m in pod.members if m["role"] == role]
        if people:
            print(f"{role}s ({len(people)}):")
        for m in people:
            print(f"  {m['key']}  {_status(m)}")
            for d in m["devices"]:
                print(f"    device {d['key']}" + ("  revoked" if d["revoked"] else ""))
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    """``kith member devices [KEY]``: the device keys of one person (or of everyone)."""
    pod = Pod(args)
    people = [pod.person(args.member)] if args.member else pod.members
    for m in people:
        print(f"{m['key']} ({m['role']}, {_status(m)}): {len(m['devices'])} linked device(s)")
        for d in m["devices"]:
            through = ", ".join(f"{s} seq {n}" for s, n in (d["valid_through"] or {}).items())
            state = f"revoked, valid through {through}" if d["revoked"] else "active"
            print(f"  {d['key']}  {state}")
    return 0


def _revoke(pod: Pod, key: str, reason: str | None) -> int:
    through = pod.heads(key)
    body: dict[str, Any] = {"key": key, "valid_through": through}
    if reason:
        body["reason"] = reason
    code = print_result("member.key_revoked", pod.post("member.key_revoked", body))
    if code == 0:
        said = ", ".join(f"{scope} seq {seq}" for scope, seq in through.items())
        print(f"Revoked {key}: its events up to {said} stay valid; nothing it signs later counts.")
    return code


def cmd_revoke_device(args: argparse.Namespace) -> int:
    """``kith member revoke-device KEY``: a lost or retired device key stops counting now."""
    pod = Pod(args)
    key = pod.check_key(args.device)
    person = pod.person(key)
    own = pod.role(pod.key_file.public) is not None and pod.person(pod.key_file.public) is person
    if not own:
        pod.require_coordinator("revoke someone else's device")
    if key == person["key"] and person["primary_revoked"]:
        raise KithError(f"{key} is already revoked")
    if any(d["key"] == key and d["revoked"] for d in person["devices"]):
        raise KithError(f"{key} is already revoked")
    return _revoke(pod, key, args.reason)


def cmd_add_device(args: argparse.Namespace) -> int:
    """``kith member add-device``: link a new device key of your own, signed by a key you hold."""
    from node.datadir import read_key_file

    pod = Pod(args)
    me = pod.key_file.public
    if pod.role(me) is None:
        raise KithError(f"{me} is not on this pod's roster: a coordinator adds you first")
    person = pod.person(me)
    new = read_key_file(Path(args.new_key_file))
    if pod.role(new.public) is not None:
        raise KithError(f"{new.public} is already on the roster: make a new key (`kith key new`)")
    body = {"member": person["key"], "key": new.public}
    code = print_result("member.key_added", pod.post("member.key_added", body))
    if code == 0:
        print(f"{new.public} now acts for {person['key']} (one key per device; never copy one).")
    return code


def cmd_recover(args: argparse.Namespace) -> int:
    """``kith member recover``: link a new key to a person who lost every device."""
    from node.datadir import read_key_file

    pod = Pod(args)
    pod.require_coordinator("recover a member")
    if not args.reason or not args.reason.strip():
        raise KithError("--reason is required: say how you checked that it is them, in person")
    person = pod.person(args.member, "--member")
    new = read_key_file(Path(args.new_key_file))
    if pod.role(new.public) is not None:
        raise KithError(f"{new.public} is already on the roster: make a new key (`kith key new`)")
    body = {"member": person["key"], "key": new.public, "reason": args.reason}
    code = print_result("member.key_added", pod.post("member.key_added", body))
    if code != 0:
        return code
    if new.box_public != person["box_key"]:
        # Sealed fields are opened with the box key of the key file: the lost one is gone.
        update = {"key": person["key"], "role": person["role"], "box_key": new.box_public}
        code = print_result("member.added", pod.post("member.added", update))
    lost = [] if args.keep_old else _live_keys(person)
    for key in lost:
        code = _revoke(pod, key, f"lost; recovered by a coordinator: {args.reason}"[:500]) or code
    print(
        f"{new.public} now acts for {person['key']}: their balance, claims and history stay"
        f" theirs. {len(lost)} lost key(s) revoked."
    )
    return code


def _live_keys(person: dict[str, Any]) -> list[str]:
    keys = [] if person["primary_revoked"] else [person["key"]]
    return keys + [d["key"] for d in person["devices"] if not d["revoked"]]


def register_member_actions(member_sub: Any) -> None:
    """Add ``list``, ``devices``, ``add-device``, ``revoke-device`` and ``recover``."""
    from node.cli.options import add_node_options

    p = member_sub.add_parser(
        "list", help="people by role and status", description="people by role and status"
    )
    add_node_options(p, key_help="your key file (a member's)")
    p.set_defaults(fn=cmd_list)

    p = member_sub.add_parser(
        "devices", help="a person's device keys", description="a person's device keys"
    )
    p.add_argument(
        "member",
        metavar="PERSON",
        nargs="?",
        help="the person: a key, a key file or a display name (default: everyone)",
    )
    add_node_options(p, key_help="your key file (a member's)")
    p.set_defaults(fn=cmd_devices)

    p = member_sub.add_parser(
        "add-device",
        help="link a new device key of your own",
        description="link a new device key (made with `kith key new` on that device) to you,"
        " signed with a key you already hold",
    )
    p.add_argument("--new-key-file", required=True, help="the new device's key file")
    add_node_options(p, key_help="a key file you already hold (yours)")
    p.set_defaults(fn=cmd_add_device)

    p = member_sub.add_parser(
        "revoke-device",
        help="a lost device key stops counting from now",
        description="a lost device key stops counting from now (your own device, or a"
        " coordinator for anyone's)",
    )
    p.add_argument("device", metavar="KEY", help="the device key")
    p.add_argument("--reason", help="why (public: e.g. 'lost phone')")
    add_node_options(p)
    p.set_defaults(fn=cmd_revoke_device)

    p = member_sub.add_parser(
        "recover",
        help="link a new key to a person who lost every device (coordinators)",
        description="after checking in person, link a new key to the same person and revoke"
        " the lost ones (docs/recovery.md)",
    )
    p.add_argument(
        "--member",
        required=True,
        metavar="PERSON",
        help="the person: their key, a key file or their display name",
    )
    p.add_argument("--new-key-file", required=True, help="their new key file (`kith key new`)")
    p.add_argument("--reason", required=True, help="how you checked it is them (public)")
    p.add_argument("--keep-old", action="store_true", help="do not revoke their other keys")
    add_node_options(p, key_help="your coordinator key file")
    p.set_defaults(fn=cmd_recover)
