"""Sealed fields: a body field encrypted to one or more recipients' X25519 ``box_key``s.

(Skeleton: the wire struct is fixed here; seal/open are implemented below.)
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

B64 = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]*$")]
ALG = "x25519-hkdf-sha256-chacha20poly1305"


class Recipient(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One recipient: their X25519 public ``box_key`` and the content key wrapped for them."""

    key: B64
    wrapped: B64


class SealedField(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The JSON object that stands in a body where a sealed value would be."""

    alg: Literal["x25519-hkdf-sha256-chacha20poly1305"]
    epk: B64
    nonce: B64
    ct: B64
    to: Annotated[list[Recipient], msgspec.Meta(min_length=1, max_length=32)]
