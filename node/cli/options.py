"""What every ``kith`` command module shares: the data directory option and one way to add
a subcommand."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeAlias

#: The ``sub`` that ``build_parser`` hands to each command module's ``register``.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

#: Where a node keeps its keys, config and database unless ``--dir`` says otherwise.
DEFAULT_DIR = "./kith-data"

#: A subcommand's body: the parsed arguments in, the exit code out.
Handler = Callable[[argparse.Namespace], int]


def add_dir_option(parser: argparse.ArgumentParser) -> None:
    """Give a command the ``--dir`` option (every command that touches a data directory)."""
    parser.add_argument(
        "--dir", default=DEFAULT_DIR, help=f"data directory (default {DEFAULT_DIR})"
    )


def add_command(
    sub: Subcommands, name: str, help_text: str, fn: Handler, *, datadir: bool = True
) -> argparse.ArgumentParser:
    """Add the subcommand ``name`` running ``fn``, with ``--dir`` unless ``datadir`` is false."""
    p = sub.add_parser(name, help=help_text, description=help_text)
    if datadir:
        add_dir_option(p)
    p.set_defaults(fn=fn)
    return p


#: The node a command talks to when neither ``--url`` nor ``--dir``'s config says otherwise
#: (``kith init``'s and ``kith serve``'s default).
DEFAULT_URL = "http://127.0.0.1:8470"


def add_node_options(
    parser: argparse.ArgumentParser,
    *,
    key_help: str | None = "your key file",
    key_required: bool = True,
) -> None:
    """Give a command that talks to a running node ``--url``, ``--dir`` (whose config names
    the node when ``--url`` is not given) and (unless ``key_help`` is ``None``) ``--key``,
    the member's key file it signs and reads with."""
    if key_help is not None:
        parser.add_argument("--key", required=key_required, help=key_help)
    parser.add_argument(
        "--url",
        default=None,
        help=f"the node (default: the one --dir's config names, else {DEFAULT_URL})",
    )
    if "--dir" not in parser._option_string_actions:  # add_command may have given it already
        parser.add_argument(
            "--dir",
            default=DEFAULT_DIR,
            help=f"data directory whose node to talk to, when there is one (default {DEFAULT_DIR})",
        )


def node_url(args: argparse.Namespace) -> str:
    """The node a command talks to: ``--url``; else the host and port in ``--dir``'s config,
    if that directory holds a pod; else ``DEFAULT_URL``."""
    from node.datadir import DataDir

    url: str | None = getattr(args, "url", None)
    if url:
        return url
    data = DataDir(getattr(args, "dir", None) or DEFAULT_DIR)
    if not data.exists():
        return DEFAULT_URL
    config = data.config()
    return local_url(config.host, config.port)


def local_url(host: str, port: int) -> str:
    """The URL of a node serving on ``host:port`` as a command on this machine reaches it (a
    node on every interface answers on loopback)."""
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def node_client(args: argparse.Namespace) -> tuple[Any, Any]:
    """A client for the node of ``args`` (``node_url``) signing with ``args.key`` (if given),
    and the key file."""
    from node.client import KithClient
    from node.datadir import read_key_file

    path = getattr(args, "key", None)
    key = read_key_file(Path(path)) if path else None
    return KithClient(node_url(args), None if key is None else key.signing_key()), key
