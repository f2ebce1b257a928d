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


#: The node a command talks to unless ``--url`` says otherwise (``kith serve``'s default).
DEFAULT_URL = "http://127.0.0.1:8470"


def add_node_options(
    parser: argparse.ArgumentParser,
    *,
    key_help: str | None = "your key file",
    key_required: bool = True,
) -> None:
    """Give a command that talks to a running node ``--url`` and (unless ``key_help`` is
    ``None``) ``--key``, the member's key file it signs and reads with."""
    if key_help is not None:
        parser.add_argument("--key", required=key_required, help=key_help)
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the node (default {DEFAULT_URL})")


def node_client(args: argparse.Namespace) -> tuple[Any, Any]:
    """A client for ``args.url`` signing with ``args.key`` (if given), and the key file."""
    from node.client import KithClient
    from node.datadir import read_key_file

    path = getattr(args, "key", None)
    key = read_key_file(Path(path)) if path else None
    return KithClient(args.url, None if key is None else key.signing_key()), key
