"""Ed25519 keys, signing and the one strict verify function.

PyNaCl (libsodium) is pinned: it verifies ~1.7x faster than ``cryptography`` here
and is strict — it rejects S >= L, non-canonical R and A encodings and small-order
keys and R (the "Taming the many EdDSAs" cases; see ``protocol/vectors/ed25519.json``).
libsodium releases the GIL while verifying, so a node can verify on several threads.
"""

from __future__ import annotations

import hashlib
import os

import nacl.bindings
import nacl.exceptions

from protocol.codec import b64e

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
SEED_SIZE = 32


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Return True iff ``signature`` is a strict Ed25519 signature of ``message`` by ``public_key``.

    Never raises: wrong lengths and non-canonical inputs are simply ``False``.
    """
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        # PyNaCl exposes no detached verify; crypto_sign_open runs the same strict check.
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        return False
    return True


class SigningKey:
    """An Ed25519 private key held as its 32-byte seed.

    >>> key = SigningKey.from_seed(bytes(32))
    >>> key.public_b64
    'O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik'
    >>> verify(key.public, key.sign(b"hi"), b"hi")
    True
    """

    __slots__ = ("_secret", "public", "public_b64", "seed")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_SIZE:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self.seed = seed
        self.public, self._secret = nacl.bindings.crypto_sign_seed_keypair(seed)
        self.public_b64 = b64e(self.public)

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """Build the key from a 32-byte seed."""
        return cls(seed)

    @classmethod
    def generate(cls) -> SigningKey:
        """Make a new random key (the OS's CSPRNG)."""
        return cls(os.urandom(SEED_SIZE))

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte detached signature of ``message``."""
        signed: bytes = nacl.bindings.crypto_sign(message, self._secret)
        return signed[:SIGNATURE_SIZE]

    def __repr__(self) -> str:
        return f"SigningKey(public={self.public_b64})"


def sha256_b64(data: bytes) -> str:
    """base64url(SHA-256(data)), no padding: the form of event ids and body hashes."""
    return b64e(hashlib.sha256(data).digest())
