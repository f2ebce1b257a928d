"""The ``kith`` command. Every command that touches a data directory takes ``--dir``.

Errors are one readable line on stderr and a non-zero exit — never a traceback.

One module per domain, each adding its own subcommands through ``register(sub)``:

- ``pod`` — ``init``, ``serve``, ``demo`` (``serving``: the socket, TLS and uvicorn they serve with)
- ``members`` — ``key new|show``, ``member add``; ``moderation`` adds
  ``member block|unblock|remove`` and ``devices`` adds ``member list|devices|revoke-device|recover``
- ``invites`` — ``invite create|list|revoke``
- ``reports`` — ``report``, ``moderation show|resolve``
- ``posts`` — ``post need|offer|claim|accept|fulfil|hours|confirm|profile|withdraw``, ``details``
- ``reading`` — ``needs``, ``offers``, ``timebank``, ``token`` (a member reads their pod)
- ``proposals`` — ``proposal open|vote|list|show``
- ``tail`` — ``tail``
- ``data`` — ``export``, ``import``, ``verify``, ``backup``, ``migrate``
- ``erasure`` — ``erase``, ``erasures``, ``retention``
- ``peers`` — ``peer add|list|remove``, ``sync``
- ``overflow`` — ``overflow refer|list|show|offer|assign|return``
- ``gatherings`` — ``gathering schedule|cancel|rsvp|list``
- ``calendar`` — ``calendar url``, ``calendar feed new|list|revoke``
- ``match`` — ``match`` (offers that could meet a need)

``options`` holds what they share (``--dir``, ``add_command``); ``people`` reads an option
that names a person (a key, a key file or a display name); ``values`` the types and choices
of ids and enums. A new domain is one new
module beside them — say ``node/cli/overflow.py`` for ``kith overflow offer``::

    import argparse

    from node.cli.options import Subcommands, add_command

    def cmd_overflow_offer(args: argparse.Namespace) -> int:
        ...  # import the node's rooms here, do the work, return the exit code

    def register(sub: Subcommands) -> None:
        overflow = sub.add_parser("overflow", help="...", description="...")
        actions = overflow.add_subparsers(dest="overflow_command", required=True)
        p = add_command(actions, "offer", "offer a need to a peer pod", cmd_overflow_offer)
        p.add_argument("--need", required=True)

— and its name in ``COMMANDS`` below, whose order is the order of ``kith --help``. Handlers
import the node's rooms inside their bodies, so that ``kith --help`` stays quick.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from node.cli import (
    calendar,
    data,
    erasure,
    gatherings,
    invites,
    match,
    members,
    overflow,
    peers,
    pod,
    posts,
    proposals,
    reading,
    reports,
    tail,
)
from node.cli.posts import _post_body
from node.cli.serving import _serve
from protocol.reasons import KithError

# The private names are here because tests and benchmarks reach for them as node.cli.<name>.
__all__ = ["COMMANDS", "_glue_ids", "_post_body", "_serve", "build_parser", "main"]

#: The command modules, in the order ``kith --help`` lists their commands.
COMMANDS = (
    pod,
    members,
    invites,
    reports,
    posts,
    reading,
    match,
    proposals,
    gatherings,
    calendar,
    tail,
    data,
    erasure,
    peers,
    overflow,
)


def _err(message: str) -> None:
    print(f"kith: error: {message}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    """The ``kith`` parser: every command module's subcommands, ``COMMANDS`` in order."""
    parser = argparse.ArgumentParser(
        prog="kith",
        description="Kith: a mutual-aid pod's own node — signed events, read models, federation.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
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
