"""A small HTTP client for the CLI: sign the next event of a log and post it.

Standard library only (urllib), so the `kith` command works without extra packages.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import msgspec

from protocol.crypto import SigningKey
from protocol.envelope import Envelope, Scope, encode_envelope, sign_event
from protocol.reasons import KithError
from protocol.tokens import make_token

#: Tokens the CLI makes live 2 minutes: a client clock up to 3 minutes fast still passes
#: the node's 5-minute lifetime check.
TOKEN_TTL_MS = 120_000


class NodeUnreachable(KithError):
    """The node did not answer (not running, wrong URL)."""


class KithClient:
    """Talks to one node over HTTP."""

    def __init__(self, url: str, key: SigningKey | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.timeout = timeout
        self._info: dict[str, Any] | None = None

    def _request(
        self, method: str, path: str, body: bytes | None = None, auth: bool = False
    ) -> Any:
        with self._open(method, path, body, auth) as resp:
            return json.loads(resp.read())

    def lines(
        self, method: str, path: str, body: bytes | None = None, *, timeout: float = 600.0
    ) -> Iterator[Any]:
        """An authenticated request whose answer is NDJSON: each line, decoded, as it comes."""
        with self._open(method, path, body, True, timeout=timeout) as resp:
            for line in resp:
                yield json.loads(line)

    @contextlib.contextmanager
    def _open(
        self,
        method: str,
        path: str,
        body: bytes | None,
        auth: bool,
        *,
        timeout: float | None = None,
    ) -> Iterator[Any]:
        headers = {"content-type": "application/json"}
        if auth and self.key is not None:
            headers["authorization"] = "Kith " + self.token()
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                yield resp
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read())
            except ValueError:
                detail = {}
            message = detail.get("message") or detail.get("detail") or exc.reason
            if detail.get("reason") and detail.get("message"):
                message = f"{detail['reason']}: {message}"
            raise KithError(f"{self.url}{path}: HTTP {exc.code}: {message}") from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NodeUnreachable(
                f"cannot reach the node at {self.url}: {reason}"
                " (is `kith serve` running there? --url picks another node)"
            ) from None

    def info(self) -> dict[str, Any]:
        """The node's ``/.well-known/kith`` document (cached)."""
        if self._info is None:
            self._info = self._request("GET", "/.well-known/kith")
        return self._info

    def token(self) -> str:
        """A fresh ``Authorization: Kith`` token for this node."""
        if self.key is None:
            raise KithError("a key file is needed for this")
        return make_token(
            self.key,
            purpose="http",
            node_key=self.info()["node_key"],
            now_ms=int(time.time() * 1000),
            ttl_ms=TOKEN_TTL_MS,
        )

    def get(self, path: str, **params: Any) -> Any:
        """GET with query parameters (authenticated when a key is set)."""
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        return self._request(
            "GET", path + ("?" + query if query else ""), auth=self.key is not None
        )

    def call(self, method: str, path: str, data: Any = None) -> Any:
        """An authenticated JSON request to a read-model or action route; the decoded answer."""
        body = None if data is None else msgspec.json.encode(data)
        return self._request(method, path, body, auth=self.key is not None)

    def post_envelopes(self, envelopes: list[Envelope]) -> list[dict[str, Any]]:
        """POST a batch; the per-event results."""
        body = b'{"events":[' + b",".join(encode_envelope(e) for e in envelopes) + b"]}"
        answer = self._request("POST", "/v1/events", body)
        results: list[dict[str, Any]] = answer["results"]
        return results

    def post(
        self, kind: str, body: Any, *, scope: Scope = "pod", pod: str | None = None
    ) -> dict[str, Any]:
        """Sign ``kind``/``body`` as the next event of this key's log and post it."""
        if self.key is None:
            raise KithError("a key file is needed to post")
        pod = pod or self.info()["pod"]
        author = self.key.public_b64
        for _ in range(3):
            head = self._request("GET", f"/v1/logs/{pod}/{author}/{scope}", auth=True)
            now = int(time.time() * 1000)
            env = sign_event(
                self.key,
                pod=pod,
                scope=scope,
                seq=head["seq"] + 1,
                prev=head["id"],
                ts=max(now, head["ts"] or 0),
                kind=kind,
                body=msgspec.to_builtins(body),
            )
            result = self.post_envelopes([env])[0]
            if result.get("reason") != "fork":  # another device raced us: re-read the head
                return result
        return result
