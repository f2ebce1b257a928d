"""``kith calendar url`` and ``kith calendar feed new|list|revoke``: the pod's shared calendar.

The public feed needs nothing; a member's private feed is a capability URL made by the node
for a member's token — paste it into a phone's calendar app, and revoke it when the phone is
lost. The URL is shown once: the node keeps only its hash.
"""

from __future__ import annotations

import argparse
import datetime
from typing import Any

from node.cli.options import Subcommands, add_node_options, node_client, node_url


def _client(args: argparse.Namespace) -> Any:
    return node_client(args)[0]


def cmd_url(args: argparse.Namespace) -> int:
    """``kith calendar url``: the public feed's address."""
    print(f"{node_url(args).rstrip('/')}/v1/calendar.ics")
    return 0


def cmd_feed_new(args: argparse.Namespace) -> int:
    """``kith calendar feed new``: a private feed URL for this member's calendar app."""
    feed = _client(args).call("POST", "/v1/calendar/feeds")
    print(feed["url"])
    print(f"  feed {feed['id']}: subscribe to this URL in your calendar app; it is shown once.")
    print(
        f"  Anyone with the URL sees the pod's calendar: `kith calendar feed revoke {feed['id']}`"
    )
    return 0


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M")


def cmd_feed_list(args: argparse.Namespace) -> int:
    """``kith calendar feed list``: this member's feeds (their URLs are never shown again)."""
    feeds = _client(args).call("GET", "/v1/calendar/feeds")
    if not feeds:
        print("no calendar feeds")
    for feed in feeds:
        state = "live" if feed["revoked_ms"] is None else f"revoked {_when(feed['revoked_ms'])}"
        print(f"{feed['id']}  created {_when(feed['created_ms'])}  {state}")
    return 0


def cmd_feed_revoke(args: argparse.Namespace) -> int:
    """``kith calendar feed revoke ID``: the feed's URL stops working at once."""
    feed = _client(args).call("DELETE", f"/v1/calendar/feeds/{args.feed}")
    print(f"feed {feed['id']} revoked")
    return 0


def register(sub: Subcommands) -> None:
    """Add ``calendar url`` and ``calendar feed new|list|revoke`` to ``kith``."""
    calendar = sub.add_parser(
        "calendar",
        help="the pod's shared calendar (iCalendar feeds)",
        description="the pod's shared calendar: a public feed and members' private feeds",
    )
    actions = calendar.add_subparsers(dest="calendar_command", required=True, metavar="ACTION")
    url = actions.add_parser("url", help="print the public feed's URL")
    add_node_options(url, key_help=None)
    url.set_defaults(fn=cmd_url)
    feed = actions.add_parser("feed", help="your private feeds", description="private feeds")
    feed_actions = feed.add_subparsers(dest="feed_command", required=True, metavar="ACTION")

    def action(name: str, help_text: str, fn: Any) -> argparse.ArgumentParser:
        p = feed_actions.add_parser(name, help=help_text, description=help_text)
        add_node_options(p)
        p.set_defaults(fn=fn)
        return p

    action("new", "make a private feed URL for your calendar app", cmd_feed_new)
    action("list", "list your private feeds", cmd_feed_list)
    p = action("revoke", "revoke a private feed (its URL stops working)", cmd_feed_revoke)
    p.add_argument("feed", help="the feed's id (kith calendar feed list)")
