"""``kith init``, ``kith serve`` and ``kith demo``: make a pod and run its node."""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from node.cli.options import Subcommands, add_command
from protocol.reasons import KithError


def cmd_init(args: argparse.Namespace) -> int:
    """``kith init``: a new pod's keys, config and genesis events in ``--dir``."""
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
        pod=root.public,
        node_key=node_key.public,
        name=args.name,
        host=args.host,
        port=args.port,
        roster_scope=args.roster,
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
    if args.roster == "peers":
        print(
            "The roster is kept among direct peers: strangers see that the pod exists, not who"
            " or how many are in it; members post in pod or peers scope, never public."
        )
    print(f"Start the node with: kith serve --dir {data.path}")
    return 0


def _serve(
    node: Any,
    host: str,
    port: int,
    banner: Callable[[], None] | None = None,
    *,
    tls: tuple[Path, Path] | None = None,
) -> None:
    """Serve ``node`` on ``host:port`` until stopped; https and wss with ``tls`` (cert, key)."""
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
        # Forwarded headers are read by node/clientaddr.py from trusted proxies only.
        proxy_headers=False,
        ssl_certfile=None if tls is None else str(tls[0]),
        ssl_keyfile=None if tls is None else str(tls[1]),
    )
    server = uvicorn.Server(config)

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started:
            if banner is not None:
                banner()
            scheme = "http" if tls is None else "https"
            print(f"Kith node for pod {node.pod} listening on {scheme}://{host}:{port}", flush=True)
        await task

    asyncio.run(run())


def cmd_serve(args: argparse.Namespace) -> int:
    """``kith serve``: run the node of ``--dir``."""
    from node.app import Node
    from node.datadir import DataDir

    data = DataDir(args.dir)
    config = data.config()
    host = args.host or config.host
    port = args.port or config.port
    if args.trusted_proxy is not None:
        config = msgspec.structs.replace(config, trusted_proxies=args.trusted_proxy)
    tls = _tls_files(args)
    _serve(Node(data, config=config), host, port, tls=tls)
    return 0


def _tls_files(args: argparse.Namespace) -> tuple[Path, Path] | None:
    """``--tls-cert`` and ``--tls-key``, checked (both or neither)."""
    from node.tls import check_tls

    if args.tls_cert is None and args.tls_key is None:
        return None
    if args.tls_key is None:
        raise KithError("--tls-cert needs --tls-key too: give the certificate and its key")
    if args.tls_cert is None:
        raise KithError("--tls-key needs --tls-cert too: give the certificate and its key")
    cert, key = Path(args.tls_cert), Path(args.tls_key)
    check_tls(cert, key)
    return cert, key


def cmd_demo(args: argparse.Namespace) -> int:
    """``kith demo``: a temporary pod full of demo data, served on localhost."""
    from node.app import Node
    from node.cli.invites import invite_link
    from node.datadir import DataDir
    from node.demo import invite, populate

    workdir = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="kith-demo-"))
    ns = argparse.Namespace(
        dir=str(workdir),
        name="Elm Street Mutual Aid",
        host=args.host,
        port=args.port,
        roster="public",
    )
    cmd_init(ns)
    data = DataDir(workdir)

    codes: list[str] = []

    async def fill() -> None:
        node = Node(data)
        await node.start()
        try:
            people = await populate(node)
            codes.append(await invite(node))
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
        print(f"The board: {url}/ — join the demo pod in your browser with this one-time link:")
        print(f"  {invite_link(url, codes[0])}")

    _serve(Node(data), args.host, args.port, banner)
    return 0


def register(sub: Subcommands) -> None:
    """Add ``init``, ``serve`` and ``demo`` to ``kith``."""
    p = add_command(sub, "init", "create a pod: root key, node key, config and database", cmd_init)
    p.add_argument("--name", required=True, help="the pod's name, e.g. 'Elm Street Mutual Aid'")
    p.add_argument(
        "--roster",
        choices=("public", "peers"),
        default="public",
        help="who sees the roster (keys and roles): anyone (default), or only direct peers"
        " — then the pod's size stays private and members post nothing public (docs/privacy.md)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8470, help="port to serve on (default 8470)")

    p = add_command(sub, "serve", "run the node (HTTP API on --host:--port)", cmd_serve)
    p.add_argument("--host", help="override the configured address")
    p.add_argument("--port", type=int, help="override the configured port")
    p.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="serve https and wss with this PEM certificate (with --tls-key)",
    )
    p.add_argument("--tls-key", metavar="FILE", help="the certificate's PEM private key")
    p.add_argument(
        "--trusted-proxy",
        action="append",
        metavar="ADDR",
        help="a reverse proxy (address or network, e.g. 172.16.0.0/12) whose X-Forwarded-For"
        " names the client for per-client limits; repeatable; replaces config.json's"
        " trusted_proxies for this run (default: none trusted)",
    )

    p = add_command(
        sub, "demo", "start a temporary pod full of demo data on localhost", cmd_demo, datadir=False
    )
    p.add_argument("--dir", default=None, help="where to put it (default: a new temp folder)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8470)
