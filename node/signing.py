"""Signing events on this node: the next position in a log, and one way in (ingest).

The node signs some events itself — roster changes by ``kith member add``, the demo's history,
and the overflow events of ``node.overflow`` — always with a key it holds (the node key, or a
key file the caller passed), always through ``Ingestor.submit`` as a client post, so that its
own events pass every check any member's would.
"""

from __future__ import annotations

import asyncio
from typing import Any

from node.ingest import Ingestor, Result
from protocol.crypto import SigningKey
from protocol.envelope import Envelope, Scope, sign_event
from protocol.logs import LogKey
from protocol.validate import CLIENT

__all__ = ["Signer"]


class Signer:
    """Signs events of ``pod`` at the next seq of the signer's log, and posts them."""

    def __init__(self, *, pod: str, ingest: Ingestor) -> None:
        self.pod = pod
        self.ingest = ingest
        # One event at a time: the next seq is known only once the previous one committed.
        self._lock = asyncio.Lock()

    def sign(self, key: SigningKey, kind: str, body: Any, *, scope: Scope = "pod") -> Envelope:
        """Sign ``body`` as the next event of ``key``'s log in ``scope``."""
        log = LogKey(self.pod, key.public_b64, scope)
        state = self.ingest.heads.get(log)
        seq = state.seq + 1 if state else 1
        ts = max(self.ingest.now_ms(), state.ts if state else 0)
        return sign_event(
            key,
            pod=self.pod,
            scope=scope,
            seq=seq,
            prev=state.id if state else None,
            ts=ts,
            kind=kind,
            body=body,
        )

    async def post(self, key: SigningKey, kind: str, body: Any, *, scope: Scope = "pod") -> Result:
        """Sign and submit; the ingest result says whether it was accepted and why not."""
        async with self._lock:
            env = self.sign(key, kind, body, scope=scope)
            return (await self.ingest.submit([env], CLIENT))[0]
