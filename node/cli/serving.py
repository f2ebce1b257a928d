"""How ``kith serve`` and ``kith demo`` serve a node: the listening socket (bound here, so that
a taken port is one line), TLS files checked before anything starts, and uvicorn with the
stream's direct-write websocket protocol."""

from __future__ import annotations

import argparse
import asyncio
import errno
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from protocol.reasons import KithError


def _bind(host: str, port: int, command: str) -> socket.socket:
    """The listening socket for ``host:port``, or a ``KithError`` saying the port is taken and
    how to pick another. Bound here, not inside uvicorn, so that a taken port is one line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: the connections it accepts inherit it, and asyncio turns Nagle off
    # (TCP_NODELAY) only on sockets that say TCP — else fanout waits on delayed ACKs (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise KithError(
                f"port {port} on {host} is already in use (another kith node, or another"
                f" program): pick another with `kith {command} --port N` (or `make run PORT=N`)"
            ) from None
        raise KithError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
            " (check --host, or pick another port with --port N)"
        ) from None
    sock.set_inheritable(True)
    return sock


def _serve(
    node: Any,
    host: str,
    port: int,
    banner: Callable[[], None] | None = None,
    *,
    tls: tuple[Path, Path] | None = None,
    command: str = "serve",
) -> None:
    """Serve ``node`` on ``host:port`` until a signal stops it; https and wss with ``tls``
    (cert, key). ``command`` names the ``kith`` command a person would rerun with another port."""
    import uvicorn

    from node.api import build_app
    from node.streams import direct_websocket_protocol

    # The data directory first: a second `kith serve` of one pod would also find its port taken,
    # and the directory is what the person must hear about.
    node.take_lock()
    try:
        sock = _bind(host, port, command)
    except BaseException:
        node.release_lock()
        raise
    app = build_app(node)
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
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started:
            if banner is not None:
                banner()
            scheme = "http" if tls is None else "https"
            print(f"Kith node for pod {node.pod} listening on {scheme}://{host}:{port}", flush=True)
        await task

    try:
        asyncio.run(run())
    finally:
        sock.close()
        node.release_lock()


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
