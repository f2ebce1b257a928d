"""``kith key new`` and ``kith member add``: key files and the pod's roster.

The rest of ``kith member`` lives by concern: ``block``, ``unblock``, ``remove`` in
``node/cli/moderation.py``; ``list``, ``devices``, ``revoke-device``, ``recover`` in
``node/cli/devices.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import msgspec

from node.cli import devices, moderation
from node.cli.options import Subcommands, add_dir_option, node_url
from node.cli.posts import print_result
from protocol.reasons import KithError


def cmd_key_new(args: argparse.Namespace) -> int:
    """``kith key new``: write a new key file."""
    from node.datadir import new_key_file, write_key_file

    key = new_key_file()
    path = Path(args.out)
    try:
        write_key_file(path, key)
    except FileExistsError:
        raise KithError(f"{path} exists; refusing to overwrite a key") from None
    print(f"Wrote {path} (mode 0600). Public key: {key.public}  box key: {key.box_public}")
    return 0


def cmd_key_show(args: argparse.Namespace) -> int:
    """``kith key show FILE``: a key file's public parts (never its seeds), and a warning on
    stderr when others may read the file."""
    import stat

    from node.datadir import read_key_file

    path = Path(args.file)
    key = read_key_file(path)
    print(f"{path}: a Kith key file ({key.type})")
    print(f"  public key (Ed25519, signs your events):  {key.public}")
    print(f"  box key (X25519, opens what is sealed):    {key.box_public}")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        print(
            f"kith: warning: {path} is readable by others (mode {mode:04o}):"
            f" run `chmod 600 {path}`",
            file=sys.stderr,
        )
    return 0


def cmd_member_add(args: argparse.Namespace) -> int:
    """``kith member add``: add a member, through the running node or offline."""
    from node.app import DataDirInUse
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
    body: dict[str, str] = {"key": public, "role": args.role, "box_key": box}
    if args.invite:
        if args.role != "member":
            raise KithError("an invite only ever makes a member: drop --role or --invite")
        body["invite"] = args.invite  # approves the join request waiting on it
    url = node_url(args)
    client = KithClient(url, data.node_key().signing_key())
    try:
        result = client.post("member.added", body, scope=config.roster_scope)
    except NodeUnreachable:
        try:  # no node answers: written straight into the data directory
            result = asyncio.run(_offline_post(data, "member.added", body, config.roster_scope))
        except DataDirInUse:
            raise KithError(
                f"the node of {data.path} is running but does not answer at {url}:"
                " give the address it serves on with --url"
            ) from None
    return print_result("member.added", result)


async def _offline_post(data: Any, kind: str, body: Any, scope: Any) -> dict[str, Any]:
    from node.app import Node
    from node.demo import _Signer

    node = Node(data)
    await node.start()
    try:
        env = _Signer(node).sign(node.key, kind, body, scope=scope)
        from protocol.validate import CLIENT

        result = (await node.ingest.submit([env], CLIENT))[0]
        return msgspec.to_builtins(result)  # type: ignore[no-any-return]
    finally:
        await node.stop()


def register(sub: Subcommands) -> None:
    """Add ``key new`` and ``member add`` to ``kith``."""
    key = sub.add_parser("key", help="manage key files", description="manage key files")
    key_sub = key.add_subparsers(dest="key_command", required=True, metavar="ACTION")
    p = key_sub.add_parser(
        "new",
        help="make a new key file (one per device, never shared)",
        description="make a new key file (one per device, never shared)",
    )
    p.add_argument("--out", required=True, help="file to write (mode 0600)")
    p.set_defaults(fn=cmd_key_new)
    p = key_sub.add_parser(
        "show",
        help="show a key file's public parts (never its private seeds)",
        description="show a key file's public key and box key (never its private seeds), and"
        " warn if others may read the file",
    )
    p.add_argument("file", metavar="FILE", help="the key file")
    p.set_defaults(fn=cmd_key_show)

    member = sub.add_parser(
        "member", help="manage the pod's roster", description="manage the pod's roster"
    )
    member_sub = member.add_subparsers(dest="member_command", required=True, metavar="ACTION")
    p = member_sub.add_parser(
        "add",
        help="add a member (signed by the node key)",
        description="add a member (signed by the node key)",
    )
    add_dir_option(p)
    p.add_argument("--key-file", help="the member's key file (public parts are used)")
    p.add_argument("--key", help="the member's public key (base64url)")
    p.add_argument("--box-key", help="the member's X25519 box key (base64url)")
    p.add_argument("--role", choices=["member", "coordinator"], default="member")
    p.add_argument(
        "--invite",
        metavar="ID",
        help="approve the join request waiting on this invite (`kith invite list`)",
    )
    p.add_argument("--url", help="the running node (default: the one --dir's config names)")
    p.set_defaults(fn=cmd_member_add)
    moderation.register_member_actions(member_sub)
    devices.register_member_actions(member_sub)
