"""``kith peer add|list|remove`` and ``kith sync``: the pods this node federates with."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec

from node.cli.options import Subcommands, add_command, local_url
from protocol.reasons import KithError


def cmd_peer_add(args: argparse.Namespace) -> int:
    """``kith peer add``: allow a peer pod's node, or change its URL."""
    from node.datadir import DataDir
    from node.peers import PeerEntry, editing

    data = DataDir(args.dir)
    config = data.config()
    entry = PeerEntry.checked(
        pod=args.pod,
        url=args.url,
        insecure=args.insecure,
        added_ms=int(time.time() * 1000),
        own_pod=config.pod,
        credit_limit_minutes=args.credit_limit,
    )
    with editing(data.peers_path) as peers:
        old = peers.get(entry.pod)
        if old is not None:  # an update keeps when the peer was first added
            entry = msgspec.structs.replace(entry, added_ms=old.added_ms)
        peers.add(entry)
    insecure = " (plain ws:// allowed: --insecure)" if entry.insecure else ""
    if old is None:
        print(f"Added peer {entry.pod} at {entry.url}{insecure}")
    elif old == entry:
        print(f"Peer {entry.pod} at {entry.url} was already listed{insecure}")
    elif old.url != entry.url:
        print(f"Updated peer {entry.pod}: {old.url} -> {entry.url}{insecure}")
    else:
        print(f"Updated peer {entry.pod} at {entry.url}{insecure}")
    if entry.credit_limit_minutes is not None:
        print(
            f"Trust line: up to {entry.credit_limit_minutes} minutes of their pod's debt; past"
            " it, assignments from them are flagged to coordinators (never refused)."
        )
    print(f"Saved in {data.peers_path}; a running node picks it up within seconds.")
    return 0


def cmd_peer_remove(args: argparse.Namespace) -> int:
    """``kith peer remove``: stop federating with a pod."""
    from node.datadir import DataDir
    from node.peers import PeerError, editing

    data = DataDir(args.dir)
    data.config()
    with editing(data.peers_path) as peers:
        if not peers.remove(args.pod):
            raise PeerError(
                "peer:unknown", f"{args.pod} is not a peer here (`kith peer list` shows them)"
            )
    print(f"Removed peer {args.pod}; a running node drops it within seconds.")
    return 0


#: What ``kith peer list`` shows for a peer when the node cannot tell.
NODE_NOT_RUNNING = "node not running"
UNKNOWN = "unknown"


def _live_peers(config: Any) -> tuple[str, dict[str, dict[str, Any]]]:
    """Ask the running node (at its configured address) for each peer's live state.

    Returns the node's status line and the ``/.well-known/kith`` ``federation.peers``
    entries by pod ({} when the node does not report them).
    """
    from node.client import KithClient

    url = local_url(config.host, config.port)
    try:
        info = KithClient(url, timeout=3.0).info()
    except KithError:
        return NODE_NOT_RUNNING, {}
    if not isinstance(info, dict) or info.get("pod") != config.pod:
        return f"another node answers at {url}", {}
    federation = info.get("federation")
    live = federation.get("peers") if isinstance(federation, dict) else None
    by_pod: dict[str, dict[str, Any]] = {}
    for item in live if isinstance(live, list) else []:
        if isinstance(item, dict) and isinstance(item.get("pod"), str):
            by_pod[item["pod"]] = item
    return f"running at {url}", by_pod


def _lag_text(lag: Any) -> str:
    """A peer's lag for the table: a number, or ``{"in": 3, "out": 0}`` as ``in 3, out 0``."""
    if isinstance(lag, dict):
        return ", ".join(f"{k} {v}" for k, v in lag.items() if v is not None)
    return "" if lag is None else str(lag)


def cmd_peer_list(args: argparse.Namespace) -> int:
    """``kith peer list``: the peers, with their live state if the node runs."""
    from node.datadir import DataDir
    from node.peers import PeerList

    data = DataDir(args.dir)
    config = data.config()
    peers = list(PeerList.load(data.peers_path))
    node_state, live = _live_peers(config)
    running = node_state.startswith("running")
    rows = []
    for entry in peers:
        item = live.get(entry.pod)
        if not running:
            state = NODE_NOT_RUNNING
        elif item is None:
            state = UNKNOWN
        else:
            state = str(item.get("state", UNKNOWN))
        rows.append(
            {
                **msgspec.to_builtins(entry),
                "state": state,
                "lag": item.get("lag") if item is not None else None,
                "live": item,
            }
        )
    if args.json:
        doc = {"node": node_state, "peers": rows}
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(doc)).decode() + "\n")
        return 0
    # "node running at URL"; "node not running" and "another node answers at URL" as they are.
    header = f"node {node_state}" if node_state.startswith("running") else node_state
    if not rows:
        print(f"No peers ({header}). Add one with:")
        print("  kith peer add wss://HOST:PORT/v1/federation --pod POD-ID")
        return 0
    print(header)
    table = [("POD", "URL", "INSECURE", "RECEIVED", "SENT", "REJECTED", "STATE", "LAG")] + [
        (
            r["pod"],
            r["url"],
            "yes" if r["insecure"] else "no",
            *_counts(r["live"]),
            r["state"],
            _lag_text(r["lag"]),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row, r in zip(table, [None, *rows], strict=True):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        why = (r["live"] or {}).get("last_error") if r is not None else None
        if r is not None and r["state"] == "backoff" and why:
            print(f"  why: {why}")
    return 0


def _counts(live: dict[str, Any] | None) -> tuple[str, str, str]:
    """Events received from, sent to and rejected from a peer (``-`` when the node cannot
    tell); rejections with their reasons, most frequent first."""
    if live is None:
        return "-", "-", "-"
    given = live.get("rejected")
    rejected = (
        {k: n for k, n in given.items() if isinstance(n, int)} if isinstance(given, dict) else {}
    )
    total = sum(rejected.values())
    reasons = sorted(rejected.items(), key=lambda item: (-item[1], item[0]))
    said = f"{total} ({', '.join(f'{k} {n}' for k, n in reasons)})" if total else "0"
    return str(live.get("received", "-")), str(live.get("sent", "-")), said


def cmd_sync(args: argparse.Namespace) -> int:
    """``kith sync``: catch up with a peer now, through the running node or offline."""
    from tqdm import tqdm

    from node.client import KithClient, NodeUnreachable
    from node.datadir import DataDir

    data = DataDir(args.dir)
    config = data.config()
    bars: dict[str, Any] = {}

    def progress(direction: str, events: int, _cursor: int = 0) -> None:
        bar = bars.get(direction)
        if bar is None:
            label = "received" if direction == "in" else "sent"
            bar = bars[direction] = tqdm(
                desc=label, unit=" events", file=sys.stderr, position=len(bars), leave=True
            )
        bar.update(events - bar.n)

    request = {"url": args.url, "pod": args.pod, "insecure": args.insecure}
    client = KithClient(local_url(config.host, config.port), data.node_key().signing_key())
    summary: dict[str, Any] | None = None
    try:
        try:
            client.info()  # is the node running? (a drop mid-sync must not mean "offline")
            running = True
        except NodeUnreachable:
            running = False
        if running:
            body = msgspec.json.encode(request)
            for item in client.lines("POST", "/v1/federation/sync", body):
                if "done" in item:
                    summary = item
                else:
                    progress(item["direction"], item["events"])
        else:
            summary = asyncio.run(_offline_sync(data, request, progress))
    finally:
        for bar in bars.values():
            bar.close()
    if summary is None or not summary.get("done"):
        raise KithError(summary.get("error", "sync failed") if summary else "sync ended early")
    rejected = summary.get("rejected") or {}
    print(
        f"Synced with pod {summary['pod']}: received {summary['received']} events, sent"
        f" {summary['sent']}; {summary['bytes_in']} bytes in, {summary['bytes_out']} bytes"
        f" out; {summary['seconds']:.2f} s"
        + (f"; rejected {dict(sorted(rejected.items()))}" if rejected else "")
    )
    return 0


async def _offline_sync(
    data: Any, request: dict[str, Any], progress: Callable[[str, int, int], None]
) -> dict[str, Any]:
    """``kith sync`` with the node stopped: run the node's own sync in this process."""
    import dataclasses

    from node.app import Node

    node = Node(data)
    await node.start()
    try:
        await node.federation.start(dial=False)
        entry = node.federation.resolve_peer(
            request["url"], request["pod"], insecure=request["insecure"]
        )
        try:
            summary = await node.federation.sync_once(entry, progress)
        except (OSError, ConnectionError, TimeoutError) as exc:
            raise KithError(f"cannot reach {entry.url}: {exc}") from None
        return {"done": True, **dataclasses.asdict(summary)}
    finally:
        await node.federation.stop()
        await node.stop()


def register(sub: Subcommands) -> None:
    """Add ``peer add``, ``peer list``, ``peer remove`` and ``sync`` to ``kith``."""
    peer = sub.add_parser(
        "peer",
        help="manage the federation allowlist (peers.json)",
        description="manage the pods whose nodes this node federates with (peers.json in the"
        " data directory; a running node re-reads it within seconds)",
    )
    peer_sub = peer.add_subparsers(dest="peer_command", required=True, metavar="ACTION")

    p = add_command(peer_sub, "add", "allow a peer pod's node (or change its URL)", cmd_peer_add)
    p.add_argument(
        "url",
        metavar="URL",
        help="the peer node's federation URL: wss://HOST[:PORT]/v1/federation"
        " (ws:// only to loopback, or with --insecure)",
    )
    p.add_argument(
        "--pod",
        required=True,
        help="the peer's pod id (43 characters: its `pod` in /.well-known/kith)",
    )
    p.add_argument(
        "--credit-limit",
        type=int,
        metavar="MINUTES",
        help="trust line: minutes of this pod's debt you accept before assignments from it"
        " are flagged (default: peer_credit_limit_minutes in config.json, 1200)",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow plain ws:// to a host that is not loopback (a lab or LAN you trust:"
        " events travel unencrypted)",
    )
    p = add_command(
        peer_sub,
        "list",
        "show the peers, and each one's live state if the node is running",
        cmd_peer_list,
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p = add_command(peer_sub, "remove", "stop federating with a pod", cmd_peer_remove)
    p.add_argument("pod", metavar="POD", help="the peer's pod id")

    p = add_command(
        sub,
        "sync",
        "catch up with a peer node now, both ways, then stop (progress and a summary);"
        " uses the running node if there is one",
        cmd_sync,
    )
    p.add_argument("url", metavar="URL", help="the peer's federation URL (wss://…/v1/federation)")
    p.add_argument(
        "--pod", help="the peer's pod id (needed only when the URL is not on the allowlist)"
    )
    p.add_argument(
        "--insecure", action="store_true", help="allow plain ws:// to a host that is not loopback"
    )
