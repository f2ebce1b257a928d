"""What every ``kith`` command module shares: the data directory option and one way to add
a subcommand."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeAlias

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
