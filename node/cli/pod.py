"""``kith init``, ``kith serve`` and ``kith demo``: make a pod and run its node."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from node.cli.options import Subcommands, add_command
from node.cli.serving import _serve, _tls_files
from protocol.reasons import KithError

#: What ``kith init`` writes into its directory: all of it is removed again if init fails.
_INIT_FILES = (
    "config.json",
    "root.key",
    "node.key",
    "node.lock",
    "kith.db",
    "kith.db-wal",
    "kith.db-shm",
    "kith.db-journal",
)
#: The longest pod name ``pod.created`` accepts (protocol/kinds.py ``Name``).
_MAX_NAME = 80


def _check_name(name: str) -> str:
    """The pod's name as given, or a ``KithError`` saying what a name must be."""
    if not name.strip():
        raise KithError(
            "the pod needs a name: kith init --name 'Elm Street Mutual Aid' (it cannot be blank)"
        )
    if len(name) > _MAX_NAME:
        raise KithError(
            f"the pod's name is {len(name)} characters; keep it to {_MAX_NAME} or fewer"
        )
    return name


def _undo_init(path: Path, first_new: Path | None) -> None:
    """Remove what a failed ``kith init`` made: the directories it created, or, in a directory
    that was already there, only its own files (never anything else in it)."""
    import shutil

    if first_new is not None:
        shutil.rmtree(first_new, ignore_errors=True)
        return
    for name in _INIT_FILES:
        with contextlib.suppress(FileNotFoundError):
            (path / name).unlink()


def _first_missing(path: Path) -> Path | None:
    """The outermost directory of ``path`` that does not exist yet (``None``: all do)."""
    missing = None
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


def cmd_init(args: argparse.Namespace) -> int:
    """``kith init``: a new pod's keys, config and genesis events in ``--dir``.

    A failed init leaves nothing behind: what it made is removed, and only that.
    """
    from node.datadir import DataDir

    name = _check_name(args.name)
    data = DataDir(args.dir)
    if data.exists():
        raise KithError(
            f"{data.path} already holds a pod (config.json exists): serve it with"
            f" `kith serve --dir {data.path}`, or give another --dir for a new pod"
        )
    for name_in_use in _INIT_FILES:
        if (data.path / name_in_use).exists():
            raise KithError(
                f"{data.path} already holds {name_in_use} but no config.json (a pod half made"
                " by hand?): move it away, or give another --dir for a new pod"
            )
    first_new = _first_missing(data.path)
    try:
        root, node_key = _make_pod(data, name, args)
    except OSError as exc:
        _undo_init(data.path, first_new)
        raise KithError(
            f"cannot make a pod in {data.path}: {exc.strerror or exc}"
            " (choose a directory you may write with --dir)"
        ) from None
    except BaseException:
        _undo_init(data.path, first_new)
        raise
    print(f"Created pod {name!r} in {data.path}")
    print(f"  pod id:   {root}")
    print(f"  node key: {node_key}")
    print(f"The pod's root key is {data.root_key_path}. It is only needed to rotate keys:")
    print("move it offline (a USB stick in a drawer) and delete it from this machine.")
    if args.roster == "peers":
        print(
            "The roster is kept among direct peers: strangers see that the pod exists, not who"
            " or how many are in it; members post in pod or peers scope, never public."
        )
    if not getattr(args, "quiet_start_hint", False):
        print(f"Start the node with: kith serve --dir {data.path}")
    return 0


def _make_pod(data: Any, name: str, args: argparse.Namespace) -> tuple[str, str]:
    """Write the keys, config and genesis events; the pod id and the node key."""
    from node.app import Node
    from node.datadir import Config, new_key_file, write_key_file
    from node.demo import _Signer

    data.path.mkdir(parents=True, exist_ok=True, mode=0o700)
    root, node_key = new_key_file(), new_key_file()
    write_key_file(data.root_key_path, root)
    write_key_file(data.node_key_path, node_key)
    config = Config(
        pod=root.public,
        node_key=node_key.public,
        name=name,
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
            await signer.post(root_key, "pod.created", {"name": name}, scope="public")
            await signer.post(root_key, "node.key", {"key": node_key.public}, scope="public")
        finally:
            await node.stop()

    asyncio.run(genesis())
    return root.public, node_key.public


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


def cmd_demo(args: argparse.Namespace) -> int:
    """``kith demo``: a temporary pod full of demo data, served on localhost.

    The temporary folder is removed when the demo stops (Ctrl-C, SIGTERM, or a failure to
    start); a ``--dir`` the person gave is theirs to keep.
    """
    import shutil
    import signal

    if args.dir:
        return _demo(Path(args.dir), args)
    workdir = Path(tempfile.mkdtemp(prefix="kith-demo-"))
    # SIGTERM's default ends the process at once, past any cleanup: as an exit, it unwinds.
    # (uvicorn re-raises the signal it stopped on once it has shut down.)
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return _demo(workdir, args)
    finally:
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(workdir, ignore_errors=True)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _demo(workdir: Path, args: argparse.Namespace) -> int:
    from node.app import Node
    from node.cli.invites import invite_link
    from node.datadir import DataDir
    from node.demo import invite, populate

    ns = argparse.Namespace(
        dir=str(workdir),
        name="Elm Street Mutual Aid",
        host=args.host,
        port=args.port,
        roster="public",
        quiet_start_hint=True,  # the demo starts it itself
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
        if not args.dir:
            print("Ctrl-C stops the demo and removes its folder (keep one with kith demo --dir).")

    _serve(Node(data), args.host, args.port, banner, command="demo")
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
