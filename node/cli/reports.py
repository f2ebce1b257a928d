"""``kith report`` (a member tells the coordinators) and ``kith moderation show|resolve`` (the
coordinators read and close reports): docs/moderation.md."""

from __future__ import annotations

import argparse
from typing import Any

from node.cli.options import Subcommands, add_node_options, node_client
from node.cli.posts import print_result
from node.cli.values import event_id
from protocol.reasons import KithError


def cmd_report(args: argparse.Namespace) -> int:
    """``kith report``: file a report about a person or an event (pod scope)."""
    if not args.about and not args.event:
        raise KithError("say what the report is about: --about KEY (a person) or --event ID")
    client, key_file = node_client(args)
    body: dict[str, Any] = {"text": args.text}
    if args.about:
        from node.cli.people import People

        body["about"] = People(client).key_of(args.about, "--about")
    if args.event:
        body["event"] = args.event
    if args.sealed:
        body["sealed"] = _seal_for_coordinators(client, key_file, args.sealed, body.get("about"))
    code = print_result("report.filed", client.post("report.filed", body, scope="pod"))
    if code == 0:
        print(
            "Only the pod's coordinators and you can read it — never the person it is about,"
            " even if they are a coordinator."
        )
    return code


def _seal_for_coordinators(client: Any, key_file: Any, text: str, about: str | None) -> Any:
    """Seal ``text`` to the coordinators (not the one reported) and to the filer."""
    from node.cli.sealed import pod_keys, seal_for

    keys = pod_keys(client, client.info()["pod"])
    left_out = keys["members"].get(about) if about else None
    own = keys["members"].get(key_file.public)
    recipients = [k for k in keys["coordinators"] if k != left_out] + ([own] if own else [])
    return seal_for({"text": text}, recipients, "report.filed", "sealed")


def cmd_moderation_show(args: argparse.Namespace) -> int:
    """``kith moderation show``: open reports, actions taken and neighbours' block advice."""
    client, _ = node_client(args)
    view = client.get("/v1/moderation")
    print(f"{view['open_reports']} open report(s)")
    for r in view["reports"]:
        whom = f"about {r['about']}" if r["about"] else f"about event {r['event']}"
        text = r["text"] if r["text"] is not None else "[removed]"
        line = f"[{r['status']}] {r['id']} by {r['by']} {whom}: {text}"
        if r["status"] == "resolved":
            line += f" — resolved by {r['resolved_by']}" + (f": {r['note']}" if r["note"] else "")
        print(line)
    if view["actions"]:
        print("Actions (newest first):")
    for a in view["actions"]:
        why = f" — {a['reason']}" if a["reason"] else ""
        print(f"  {a['action']} {a['key']} by {a['by']} ({a['by_role']}) at {a['ts']}{why}")
    if view["advisories"]:
        print("Block advice from direct peers (never applied unless you adopt it):")
    for v in view["advisories"]:
        here = "a member here" if v["member_here"] else "not a member here"
        print(
            f"  [{v['status']}] {v['id']} {v['direction']} from pod {v['pod']}: block {v['key']}"
            f" ({v['reason']}; {here})"
        )
    return 0


def cmd_moderation_resolve(args: argparse.Namespace) -> int:
    """``kith moderation resolve REPORT``: close a report (coordinators)."""
    client, _ = node_client(args)
    body: dict[str, Any] = {"report": args.report}
    if args.note:
        body["note"] = args.note
    if args.action:
        body["action"] = args.action
    reports = {r["id"]: r for r in client.get("/v1/moderation")["reports"]}
    if args.report not in reports:
        raise KithError(
            f"no report {args.report} in your moderation view (`kith moderation show` lists them;"
            " a report about you is never shown to you)"
        )
    if reports[args.report]["status"] == "resolved":
        raise KithError(f"report {args.report} is already resolved")
    return print_result("report.resolved", client.post("report.resolved", body, scope="pod"))


def register(sub: Subcommands) -> None:
    """Add ``report`` and ``moderation show|resolve`` to ``kith``."""
    p = sub.add_parser(
        "report",
        help="report a person or an event to the pod's coordinators",
        description="report a person or an event to the pod's coordinators (readable by them"
        " and you only — never by the person it is about)",
    )
    p.add_argument(
        "--about",
        metavar="PERSON",
        help="the person the report is about: a key file, a public key or a display name",
    )
    p.add_argument("--event", type=event_id, help="the id of the event the report is about")
    p.add_argument("--text", required=True, help="what happened (at most 2000 characters)")
    p.add_argument("--sealed", help="details sealed to the coordinators (not the one reported)")
    add_node_options(p)
    p.set_defaults(fn=cmd_report)

    mod = sub.add_parser(
        "moderation",
        help="read and resolve reports (coordinators)",
        description="read and resolve reports (coordinators)",
    )
    mod_sub = mod.add_subparsers(dest="moderation_command", required=True, metavar="ACTION")
    p = mod_sub.add_parser(
        "show",
        help="open reports, actions taken, neighbours' block advice",
        description="open reports, actions taken, neighbours' block advice",
    )
    add_node_options(p, key_help="a coordinator's key file")
    p.set_defaults(fn=cmd_moderation_show)
    p = mod_sub.add_parser(
        "resolve", help="close a report", description="close a report (signed with your key)"
    )
    p.add_argument("report", type=event_id, help="the report's id")
    p.add_argument("--note", help="what was done (coordinators read it)")
    p.add_argument("--action", type=event_id, help="the id of the block or removal taken on it")
    add_node_options(p, key_help="a coordinator's key file")
    p.set_defaults(fn=cmd_moderation_resolve)
