"""Whose request is this: the client address every per-client limit counts by.

A node reached straight sees its client as the socket's peer. Behind a reverse proxy (Caddy,
nginx) every peer is the proxy, so every client would share one address and one budget
(``stream_connections_per_ip``, the invite redeem limit). A node told which proxies it trusts
(``trusted_proxies`` in config.json, ``kith serve --trusted-proxy``) takes the client from the
``X-Forwarded-For`` header those proxies add — the rightmost address that is not itself a
trusted proxy, since everything left of that was written by the client and may be made up —
and the scheme from ``X-Forwarded-Proto``. A peer that is not trusted has its forwarded headers
ignored: it is the client.

``ForwardedClients`` is the one ASGI middleware that does this (``build_app`` installs it), so
``request.client`` and ``socket.client`` already name the client; ``client_address`` reads it
for a limit. Nothing is trusted by default (D48)::

    >>> proxies = TrustedProxies.parse(["10.0.0.0/8"])
    >>> proxies.client("10.1.2.3", ["203.0.113.7, 10.9.9.9"])
    '203.0.113.7'
    >>> proxies.client("198.51.100.1", ["203.0.113.7"])  # not a proxy of ours: header ignored
    '198.51.100.1'
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from litestar.connection import ASGIConnection
from litestar.types import ASGIApp, Receive, Scope, Send

from protocol.reasons import KithError

__all__ = ["ForwardedClients", "TrustedProxies", "client_address"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> _Address | None:
    """An address as a proxy writes it: ``1.2.3.4``, ``1.2.3.4:5678``, ``::1``, ``[::1]:80``."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        found = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


class TrustedProxies:
    """The proxies whose ``X-Forwarded-For`` a node believes (addresses or networks)."""

    def __init__(self, networks: Sequence[_Network]) -> None:
        self.networks = tuple(networks)

    @classmethod
    def parse(cls, entries: Iterable[str]) -> TrustedProxies:
        """From config or options: each an address (``127.0.0.1``) or a network (``CIDR``)."""
        networks: list[_Network] = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                raise KithError(
                    f"trusted proxy {entry!r} is not an address or network: give one like"
                    " 127.0.0.1 or 172.16.0.0/12 (--trusted-proxy, or trusted_proxies in"
                    " config.json)"
                ) from None
        return cls(networks)

    def trusts(self, address: _Address | None) -> bool:
        """Is ``address`` one of our proxies?"""
        return address is not None and any(address in net for net in self.networks)

    def client(self, peer: str | None, forwarded_for: Sequence[str]) -> str | None:
        """The client behind ``peer`` given its ``X-Forwarded-For`` header values, in order.

        Walks from the right while the hop is a trusted proxy; an entry that is no address
        stops the walk at the hop that passed it on (so garbage never makes a new budget).
        """
        hop = _address(peer) if peer is not None else None
        if not self.trusts(hop) or not forwarded_for:
            return peer
        chain = [part for value in forwarded_for for part in value.split(",") if part.strip()]
        found = peer
        for entry in reversed(chain):
            address = _address(entry)
            if address is None:
                return found
            found = str(address)
            if not self.trusts(address):
                return found
        return found


class ForwardedClients:
    """ASGI middleware: behind a trusted proxy, the scope's ``client`` and ``scheme`` become
    the forwarded client's (Litestar's ``middleware=[ForwardedClients.factory(proxies)]``)."""

    def __init__(self, app: ASGIApp, proxies: TrustedProxies) -> None:
        self.app = app
        self.proxies = proxies

    @staticmethod
    def factory(proxies: TrustedProxies) -> Callable[[ASGIApp], ASGIApp]:
        """The middleware factory Litestar takes."""

        def wrap(app: ASGIApp) -> ASGIApp:
            return ForwardedClients(app, proxies)

        return wrap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Rewrite ``scope`` when its peer is trusted, then hand it on."""
        if self.proxies.networks and scope["type"] in ("http", "websocket"):
            self._rewrite(scope)
        await self.app(scope, receive, send)

    def _rewrite(self, scope: Any) -> None:
        peer = scope.get("client")
        host = peer[0] if peer else None
        if not self.proxies.trusts(_address(host) if host else None):
            return
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        forwarded = [v.decode("latin-1") for k, v in headers if k == b"x-forwarded-for"]
        client = self.proxies.client(host, forwarded)
        if client is not None and client != host:
            scope["client"] = (client, 0)
        protos = [v.decode("latin-1") for k, v in headers if k == b"x-forwarded-proto"]
        # The last proxy's word: the scheme the client used to reach the first one we trust.
        proto = protos[-1].rpartition(",")[2].strip().lower() if protos else ""
        if proto in ("http", "https"):
            secure = proto == "https"
            if scope["type"] == "websocket":
                scope["scheme"] = "wss" if secure else "ws"
            else:
                scope["scheme"] = "https" if secure else "http"


def client_address(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The address a per-client limit counts by (the forwarded client behind a trusted proxy:
    ``ForwardedClients`` already put it in the scope)."""
    return connection.client.host if connection.client is not None else "?"
