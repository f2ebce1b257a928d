#!/usr/bin/env python3
"""The image's entrypoint: make the pod on first start, then run its node.

``serve`` (the default command): if the data directory (``KITH_DATA``, default ``/data``) is
empty, ``kith init`` a pod named ``KITH_POD_NAME`` in it (roster ``KITH_ROSTER``, default
public); then ``kith serve`` on ``KITH_HOST:KITH_PORT`` (default ``0.0.0.0:8470``), trusting
the reverse proxies in ``KITH_TRUSTED_PROXIES`` (addresses or networks, separated by spaces or
commas) and serving TLS itself when ``KITH_TLS_CERT`` and ``KITH_TLS_KEY`` name a certificate
and its key. Anything else is handed to ``kith`` as it is::

    docker run --rm kith:local --help
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def fail(message: str) -> int:
    """One line on stderr, as ``kith`` itself says errors."""
    print(f"kith-entrypoint: error: {message}", file=sys.stderr)
    return 2


def serve_command(env: dict[str, str], extra: list[str]) -> list[str] | int:
    """The ``kith serve`` command line for ``env``, after making the pod if needed (or the
    exit code when that cannot be done)."""
    data = Path(env.get("KITH_DATA", "/data"))
    host, port = env.get("KITH_HOST", "0.0.0.0"), env.get("KITH_PORT", "8470")
    if not (data / "config.json").exists():
        if data.is_dir() and any(data.iterdir()):
            return fail(
                f"{data} holds files but no config.json: mount the volume of an existing pod,"
                " or an empty one to make a new pod"
            )
        name = env.get("KITH_POD_NAME", "").strip()
        if not name:
            return fail(f"{data} is empty: set KITH_POD_NAME to the pod's name to make a new pod")
        init = ["kith", "init", "--dir", str(data), "--name", name]
        init += ["--host", host, "--port", port, "--roster", env.get("KITH_ROSTER", "public")]
        made = subprocess.run(init, check=False)
        if made.returncode != 0:
            return made.returncode
    command = ["kith", "serve", "--dir", str(data), "--host", host, "--port", port]
    for proxy in env.get("KITH_TRUSTED_PROXIES", "").replace(",", " ").split():
        command += ["--trusted-proxy", proxy]
    for option, variable in (("--tls-cert", "KITH_TLS_CERT"), ("--tls-key", "KITH_TLS_KEY")):
        if env.get(variable):
            command += [option, env[variable]]  # kith says so if only one of the two is set
    return command + extra


def main(argv: list[str]) -> int:
    """Run ``serve`` (make the pod first if needed) or any other ``kith`` command."""
    args = argv or ["serve"]
    if args[0] != "serve":
        os.execvp("kith", ["kith", *args])
    command = serve_command(dict(os.environ), args[1:])
    if isinstance(command, int):
        return command
    sys.stdout.flush()
    os.execvp(command[0], command)  # the node becomes PID 1: docker's signals reach it


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
