"""The ``kith`` command. Every command that touches a data directory takes ``--dir``.

Errors are one readable line on stderr and a non-zero exit — never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from protocol.reasons import KithError

DEFAULT_DIR = "./kith-data"


def _err(message: str) -> None:
    print(f"kith: error: {message}", file=sys.stderr)


# -- init / key / member ----------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    from node.app import Node
    from node.datadir import Config, DataDir, new_key_file, write_key_file
    from node.demo import _Signer

    data = DataDir(args.dir)
    if data.exists():
        raise KithError(f"{data.path} already holds a node (config.json exists)")
    data.path.mkdir(parents=True, exist_ok=True, mode=0o700)
    root, node_key = new_key_file(), new_key_file()
    write_key_file(data.root_key_path, root)
    write_key_file(data.node_key_path, node_key)
    config = Config(
        pod=root.public, node_key=node_key.public, name=args.name, host=args.host, port=args.port
    )
    data.write_config(config)

    async def genesis() -> None:
        node = Node(data)
        await node.start()
        try:
            signer = _Signer(node)
            root_key = root.signing_key()
            await signer.post(root_key, "pod.created", {"name": args.name}, scope="public")
            await signer.post(root_key, "node.key", {"key": node_key.public}, scope="public")
        finally:
            await node.stop()

    asyncio.run(genesis())
    print(f"Created pod {args.name!r} in {data.path}")
    print(f"  pod id:   {root.public}")
    print(f"  node key: {node_key.public}")
    print(f"The pod's root key is {data.root_key_path}. It is only needed to rotate keys:")
    print("move it offline (a USB stick in a drawer) and delete it from this machine.")
    print(f"Start the node with: kith serve --dir {data.path}")
    return 0


def cmd_key_new(args: argparse.Namespace) -> int:
    from node.datadir import new_key_file, write_key_file

    key = new_key_file()
    path = Path(args.out)
    try:
        write_key_file(path, key)
    except FileExistsError:
        raise KithError(f"{path} exists; refusing to overwrite a key") from None
    print(f"Wrote {path} (mode 0600). Public key: {key.public}  box key: {key.box_public}")
    return 0


def cmd_member_add(args: argparse.Namespace) -> int:
    from node.client import KithClient, NodeUnreachable
    from node.datadir import DataDir, read_key_file

    data = DataDir(args.dir)
    config = data.config()
    if args.key_file:
        member = read_key_file(Path(args.key_file))
        public, box = member.public, member.box_public
    else:
        if not args.key or not args.box_key:
            raise KithError("give --key-file FILE, or both --key and --box-key")
        public, box = args.key, args.box_key
    body = {"key": public, "role": args.role, "box_key": box}
    url = args.url or f"http://{config.host}:{config.port}"
    client = KithClient(url, data.node_key().signing_key())
    try:
        result = client.post("member.added", body, scope="public")
    except NodeUnreachable:
        result = asyncio.run(_offline_post(data, "member.added", body))
    _print_result("member.added", result)
    return 0 if result.get("ok") else 1


async def _offline_post(data: Any, kind: str, body: Any) -> dict[str, Any]:
    from node.app import Node
    from node.demo import _Signer

    node = Node(data)
    await node.start()
    try:
        env = _Signer(node).sign(node.key, kind, body, scope="public")
        from protocol.validate import CLIENT

        result = (await node.ingest.submit([env], CLIENT))[0]
        return msgspec.to_builtins(result)  # type: ignore[no-any-return]
    finally:
        await node.stop()


def _print_result(kind: str, result: dict[str, Any]) -> None:
    if result.get("ok"):
        print(f"{kind} recorded: {result['id']}")
    else:
        raise KithError(f"{kind} refused: {result.get('reason')}: {result.get('message', '')}")


# -- post ------------------------------------------------------------------------------


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
        return "need.posted", body
    if what == "offer":
        return "offer.posted", {
            "title": args.title,
            "category": args.category,
            "capacity": args.capacity,
            **optional,
        }
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
    return "need.withdrawn", {"need": args.need}


def cmd_post(args: argparse.Namespace) -> int:
    from node.client import KithClient
    from node.datadir import read_key_file
    from protocol.kinds import validate_body
    from protocol.reasons import RejectedEvent

    key = read_key_file(Path(args.key)).signing_key()
    kind, body = _post_body(args)
    try:
        validate_body(kind, body)
    except RejectedEvent as exc:
        raise KithError(f"{exc.reason}: {exc.message}") from None
    client = KithClient(args.url, key)
    _print_result(kind, client.post(kind, body, scope=args.scope))
    return 0


# -- serve / demo ------------------------------------------------------------------------


def _serve(node: Any, host: str, port: int, banner: Callable[[], None] | None = None) -> None:
    import uvicorn

    from node.api import build_app

    app = build_app(node)
    from node.streams import direct_websocket_protocol

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        ws=direct_websocket_protocol(),
        ws_max_size=4 * 1024 * 1024,
    )
    server = uvicorn.Server(config)

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started:
            if banner is not None:
                banner()
            print(f"Kith node for pod {node.pod} listening on http://{host}:{port}", flush=True)
        await task

    asyncio.run(run())


def cmd_serve(args: argparse.Namespace) -> int:
    from node.app import Node
    from node.datadir import DataDir

    data = DataDir(args.dir)
    config = data.config()
    host = args.host or config.host
    port = args.port or config.port
    _serve(Node(data), host, port)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from node.app import Node
    from node.datadir import DataDir
    from node.demo import populate

    workdir = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="kith-demo-"))
    ns = argparse.Namespace(
        dir=str(workdir), name="Elm Street Mutual Aid", host=args.host, port=args.port
    )
    cmd_init(ns)
    data = DataDir(workdir)

    async def fill() -> None:
        node = Node(data)
        await node.start()
        try:
            people = await populate(node)
            for name, key in people.items():
                (workdir / f"{name.lower()}.key").write_bytes(msgspec.json.encode(key))
                os.chmod(workdir / f"{name.lower()}.key", 0o600)
        finally:
            await node.stop()

    asyncio.run(fill())

    def banner() -> None:
        url = f"http://{args.host}:{args.port}"
        print(f"Demo pod with members, needs, offers, claims and hours in {workdir}")
        print(f"  {url}/v1/needs     {url}/v1/offers     {url}/schema")
        print(f"  member keys: {workdir}/*.key (e.g. kith post need --key {workdir}/bao.key ...)")

    _serve(Node(data), args.host, args.port, banner)
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    from node.client import KithClient
    from node.datadir import read_key_file
    from node.tail import tail

    filt: dict[str, Any] = {}
    for name, value in (
        ("kinds", args.kind),
        ("category", args.category),
        ("urgency", args.urgency),
    ):
        if value:
            filt[name] = value
    if args.need:
        filt["need"] = args.need
    key = read_key_file(Path(args.key)).signing_key() if args.key else None
    node_key = KithClient(args.url).info()["node_key"] if key is not None else None
    try:
        asyncio.run(tail(args.url, filt, key=key, after=args.after, node_key=node_key))
    except KeyboardInterrupt:
        return 0
    return 0


# -- export / import / verify / backup --------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    from node.access import EventFacts, Reader, may_read
    from node.datadir import DataDir
    from node.store.sqlite import SQLiteStore

    data = DataDir(args.dir)
    config = data.config()
    operator = Reader(person=config.node_key, role="node", pod=config.pod)
    out = open(args.out, "wb") if args.out and args.out != "-" else sys.stdout.buffer  # noqa: SIM115

    async def run() -> int:
        store = SQLiteStore(data.db_path)
        await store.open()
        count = 0
        try:
            async for batch in store.scan():
                for e in batch:
                    if may_read(operator, EventFacts(e.pod, e.author, e.scope, e.kind)):
                        out.write(e.envelope + b"\n")
                        count += 1
        finally:
            await store.close()
        return count

    count = asyncio.run(run())
    if out is not sys.stdout.buffer:
        out.close()
    print(f"exported {count} events", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from node.app import Node
    from node.datadir import DataDir
    from protocol.validate import IMPORT

    data = DataDir(args.dir)
    path = Path(args.file)
    if not path.exists():
        raise KithError(f"{path} does not exist")
    total = path.stat().st_size

    async def run() -> dict[str, int]:
        node = Node(data)
        await node.start()
        tally: dict[str, int] = {}
        try:
            with (
                path.open("rb") as fh,
                tqdm(
                    total=total, unit="B", unit_scale=True, disable=args.quiet, desc="import"
                ) as bar,
            ):
                batch: list[bytes] = []
                for line in fh:
                    bar.update(len(line))
                    if line.strip():
                        batch.append(line.strip())
                    if len(batch) >= 1000:
                        _tally(tally, await node.ingest.submit(batch, IMPORT))
                        batch = []
                if batch:
                    _tally(tally, await node.ingest.submit(batch, IMPORT))
        finally:
            await node.stop()
        return tally

    tally = asyncio.run(run())
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(tally.items()))
    print(f"imported {path}: {summary or 'nothing'}")
    return 0 if not any(k.startswith("invalid") for k in tally) else 1


def _tally(tally: dict[str, int], results: Sequence[Any]) -> None:
    for r in results:
        key = "stored" if r.ok and r.reason is None else (r.reason or "stored")
        tally[key] = tally.get(key, 0) + 1


def cmd_verify(args: argparse.Namespace) -> int:
    from node.app import Node
    from node.datadir import DataDir
    from node.verify import verify_store

    data = DataDir(args.dir)

    async def run() -> int:
        node = Node(data)
        await node.start()
        try:
            report = await verify_store(node, rebuild=args.rebuild)
        finally:
            await node.stop()
        for line in report.lines():
            print(line)
        return 0 if report.ok else 1

    return asyncio.run(run())


def cmd_backup(args: argparse.Namespace) -> int:
    from node.datadir import DataDir
    from node.store.sqlite import SQLiteStore

    data = DataDir(args.dir)
    data.config()
    target = Path(args.out)
    if target.exists():
        raise KithError(f"{target} exists; choose a new file name")

    async def run() -> None:
        store = SQLiteStore(data.db_path)
        await store.open()
        try:
            await store.backup(str(target))
        finally:
            await store.close()

    started = time.monotonic()
    asyncio.run(run())
    took = time.monotonic() - started
    print(f"backup written to {target} ({target.stat().st_size} bytes, {took:.1f}s)")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from node.app import Node
    from node.datadir import DataDir

    data = DataDir(args.dir)
    data.config()

    async def run() -> tuple[int, int]:
        # Through Node.start, like `import` and `verify`: it takes the data directory's
        # lock (D17), so a running node is refused rather than migrated under its feet.
        node = Node(data)
        await node.start()
        try:
            return node.store.opened_version, node.store.schema_version
        finally:
            await node.stop()

    before, after = asyncio.run(run())
    if before == after:
        print(f"{data.db_path}: schema version {after}, already current")
    elif before == 0:
        print(f"{data.db_path}: created at schema version {after}")
    else:
        print(f"{data.db_path}: migrated from schema version {before} to {after}")
    return 0


# -- peer ------------------------------------------------------------------------------


def cmd_peer_add(args: argparse.Namespace) -> int:
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
    else:
        print(f"Updated peer {entry.pod}: {old.url} -> {entry.url}{insecure}")
    print(f"Saved in {data.peers_path}; a running node picks it up within seconds.")
    return 0


def cmd_peer_remove(args: argparse.Namespace) -> int:
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

    url = _local_url(config)
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
    if not rows:
        print(f"No peers (node {node_state}). Add one with:")
        print("  kith peer add wss://HOST:PORT/v1/federation --pod POD-ID")
        return 0
    print(f"node {node_state}")
    table = [("POD", "URL", "INSECURE", "STATE", "LAG")] + [
        (
            r["pod"],
            r["url"],
            "yes" if r["insecure"] else "no",
            r["state"],
            _lag_text(r["lag"]),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


# -- sync --------------------------------------------------------------------------------


def _local_url(config: Any) -> str:
    """Where this data directory's node answers (a node on every interface: loopback)."""
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.port}"


def cmd_sync(args: argparse.Namespace) -> int:
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
    client = KithClient(_local_url(config), data.node_key().signing_key())
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


# -- parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kith",
        description="Kith: a mutual-aid pod's own node — signed events, read models, federation.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, help_text: str, fn: Callable[[argparse.Namespace], int], *, datadir: bool = True
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        if datadir:
            p.add_argument(
                "--dir", default=DEFAULT_DIR, help=f"data directory (default {DEFAULT_DIR})"
            )
        p.set_defaults(fn=fn)
        return p

    p = add("init", "create a pod: root key, node key, config and database", cmd_init)
    p.add_argument("--name", required=True, help="the pod's name, e.g. 'Elm Street Mutual Aid'")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8470, help="port to serve on (default 8470)")

    p = add("serve", "run the node (HTTP API on --host:--port)", cmd_serve)
    p.add_argument("--host", help="override the configured address")
    p.add_argument("--port", type=int, help="override the configured port")

    p = add("demo", "start a temporary pod full of demo data on localhost", cmd_demo, datadir=False)
    p.add_argument("--dir", default=None, help="where to put it (default: a new temp folder)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8470)

    key = sub.add_parser("key", help="manage key files", description="manage key files")
    key_sub = key.add_subparsers(dest="key_command", required=True, metavar="ACTION")
    p = key_sub.add_parser(
        "new",
        help="make a new key file (one per device, never shared)",
        description="make a new key file (one per device, never shared)",
    )
    p.add_argument("--out", required=True, help="file to write (mode 0600)")
    p.set_defaults(fn=cmd_key_new)

    member = sub.add_parser(
        "member", help="manage the pod's roster", description="manage the pod's roster"
    )
    member_sub = member.add_subparsers(dest="member_command", required=True, metavar="ACTION")
    p = member_sub.add_parser(
        "add",
        help="add a member (signed by the node key)",
        description="add a member (signed by the node key)",
    )
    p.add_argument("--dir", default=DEFAULT_DIR, help=f"data directory (default {DEFAULT_DIR})")
    p.add_argument("--key-file", help="the member's key file (public parts are used)")
    p.add_argument("--key", help="the member's public key (base64url)")
    p.add_argument("--box-key", help="the member's X25519 box key (base64url)")
    p.add_argument("--role", choices=["member", "coordinator"], default="member")
    p.add_argument("--url", help="the running node (default: from config)")
    p.set_defaults(fn=cmd_member_add)

    post = sub.add_parser(
        "post", help="sign and post an event", description="sign and post an event"
    )
    post_sub = post.add_subparsers(dest="what", required=True, metavar="WHAT")

    def post_cmd(name: str, help_text: str) -> argparse.ArgumentParser:
        p = post_sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--key", required=True, help="your key file")
        p.add_argument(
            "--url",
            default="http://127.0.0.1:8470",
            help="the node (default http://127.0.0.1:8470)",
        )
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
    p.add_argument("--category", required=True)
    p.add_argument("--urgency", default="normal", choices=["low", "normal", "high", "urgent"])
    p.add_argument("--details")
    p.add_argument("--area", help="a coarse area (never an address)")
    p.add_argument("--minutes", type=int, help="estimated minutes")
    p = post_cmd("offer", "offer help")
    p.add_argument("--title", required=True)
    p.add_argument("--category", required=True)
    p.add_argument("--capacity", type=int, default=1)
    p.add_argument("--details")
    p.add_argument("--area")
    p = post_cmd("claim", "offer to meet a need")
    p.add_argument("--need", required=True)
    p.add_argument("--note")
    p = post_cmd("accept", "accept a claim on your need (need author or coordinator)")
    p.add_argument("--claim", required=True)
    p.add_argument("--need", required=True)
    p = post_cmd("fulfil", "record that a need was met")
    p.add_argument("--need", required=True)
    p.add_argument("--claim")
    p.add_argument("--minutes", type=int)
    p.add_argument("--note")
    p = post_cmd("hours", "log time given (pending until the other side confirms)")
    p.add_argument("--giver", required=True)
    p.add_argument("--receiver", required=True)
    p.add_argument("--minutes", type=int, required=True)
    p.add_argument("--need")
    p.add_argument("--note")
    p = post_cmd("confirm", "confirm hours someone logged with you")
    p.add_argument("--entry", required=True)
    p = post_cmd("withdraw", "withdraw your need")
    p.add_argument("--need", required=True)

    p = sub.add_parser(
        "tail",
        help="print live events readably (resumes after a dropped connection)",
        description="print live events readably (resumes after a dropped connection)",
    )
    p.add_argument("--url", default="http://127.0.0.1:8470", help="the node")
    p.add_argument("--kind", action="append", help="kind or prefix like 'need.*' (repeatable)")
    p.add_argument("--category", action="append", help="need/offer category (repeatable)")
    p.add_argument("--urgency", action="append", help="need urgency (repeatable)")
    p.add_argument("--need", help="everything about one need")
    p.add_argument("--key", help="your key file: also see your pod's events")
    p.add_argument("--after", type=int, help="start after this cursor (default: the last 10)")
    p.set_defaults(fn=cmd_tail)

    p = add("export", "write every event as JSON lines", cmd_export)
    p.add_argument("--format", choices=["jsonl"], default="jsonl")
    p.add_argument("--out", default="-", help="file (default stdout)")
    p = add("import", "ingest events from a JSON-lines export", cmd_import)
    p.add_argument("file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = add("verify", "re-check every signature, hash and chain", cmd_verify)
    p.add_argument(
        "--rebuild", action="store_true", help="also rebuild the read models from the log"
    )
    p = add("backup", "write a consistent copy of the database while the node runs", cmd_backup)
    p.add_argument("out", help="the new backup file")
    add(
        "migrate",
        "bring the database up to this kith's schema (the node must be stopped);"
        " prints the schema version",
        cmd_migrate,
    )

    peer = sub.add_parser(
        "peer",
        help="manage the federation allowlist (peers.json)",
        description="manage the pods whose nodes this node federates with (peers.json in the"
        " data directory; a running node re-reads it within seconds)",
    )
    peer_sub = peer.add_subparsers(dest="peer_command", required=True, metavar="ACTION")

    def peer_cmd(
        name: str, help_text: str, fn: Callable[[argparse.Namespace], int]
    ) -> argparse.ArgumentParser:
        p = peer_sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--dir", default=DEFAULT_DIR, help=f"data directory (default {DEFAULT_DIR})")
        p.set_defaults(fn=fn)
        return p

    p = peer_cmd("add", "allow a peer pod's node (or change its URL)", cmd_peer_add)
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
        "--insecure",
        action="store_true",
        help="allow plain ws:// to a host that is not loopback (a lab or LAN you trust:"
        " events travel unencrypted)",
    )
    p = peer_cmd(
        "list", "show the peers, and each one's live state if the node is running", cmd_peer_list
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p = peer_cmd("remove", "stop federating with a pod", cmd_peer_remove)
    p.add_argument("pod", metavar="POD", help="the peer's pod id")

    p = add(
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
    return parser


#: An event id, key or pod id that starts with "-" (a quarter of base64url ids do).
_DASH_ID = re.compile(r"-[A-Za-z0-9_-]{42}\Z")


def _glue_ids(argv: list[str]) -> list[str]:
    """Let ``--need -Xy…`` and ``peer remove -Xy…`` work: argparse reads a leading ``-`` as
    an option, so such an id is glued to its option (``--need=-Xy…``), or, standing alone,
    moved behind ``--`` where only positionals are read."""
    out: list[str] = []
    loose: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out += argv[i:]
            break
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        if arg.startswith("--") and "=" not in arg and _DASH_ID.match(nxt):
            out.append(f"{arg}={nxt}")
            i += 2
            continue
        (loose if _DASH_ID.match(arg) else out).append(arg)
        i += 1
    return [*out, "--", *loose] if loose else out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kith`` command."""
    parser = build_parser()
    args = parser.parse_args(_glue_ids(list(sys.argv[1:] if argv is None else argv)))
    try:
        code: int = args.fn(args)
    except KithError as exc:
        _err(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        _err(f"{exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}".rstrip(": "))
        return 1
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
