"""Ed25519 keys, signing and the one strict verify (protocol/crypto.py, docs/protocol.md §4)."""

from __future__ import annotations

import doctest
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.codec import b64e
from protocol.crypto import (
    PUBLIC_KEY_SIZE,
    SEED_SIZE,
    SIGNATURE_SIZE,
    SigningKey,
    sha256_b64,
    verify,
)

#: The group order of the base point.
L = 2**252 + 27742317777372353535851937790883648493

#: RFC 8032 §7.1, tests 1-3: seed, public key, message, signature (hex).
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
        "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]

#: Encodings of the eight points of small order (order 1, 2, 4, 8), and non-canonical
#: encodings (y >= p) of some of them.
SMALL_ORDER = [
    "0100000000000000000000000000000000000000000000000000000000000000",  # identity
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 2
    "0000000000000000000000000000000000000000000000000000000000000000",  # order 4
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p + 1 (identity)
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",  # y = p - 1, x sign set
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p (order 4)
]


@pytest.mark.parametrize(("seed", "public", "message", "signature"), RFC8032)
def test_rfc8032_vectors(seed: str, public: str, message: str, signature: str) -> None:
    key = SigningKey.from_seed(bytes.fromhex(seed))
    assert key.public.hex() == public
    assert key.public_b64 == b64e(bytes.fromhex(public))
    assert key.sign(bytes.fromhex(message)).hex() == signature
    assert verify(bytes.fromhex(public), bytes.fromhex(signature), bytes.fromhex(message))


def test_signing_is_deterministic() -> None:
    key = SigningKey.from_seed(bytes(SEED_SIZE))
    assert key.sign(b"head") == key.sign(b"head")
    assert len(key.sign(b"head")) == SIGNATURE_SIZE
    assert len(key.public) == PUBLIC_KEY_SIZE


def test_generate_makes_distinct_keys() -> None:
    first, second = SigningKey.generate(), SigningKey.generate()
    assert len(first.seed) == SEED_SIZE
    assert first.public != second.public
    assert SigningKey(first.seed).public == first.public


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_seed_must_be_32_bytes(size: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SigningKey(bytes(size))


def test_repr_shows_the_public_key_only() -> None:
    key = SigningKey.from_seed(bytes(range(32)))
    assert repr(key) == f"SigningKey(public={key.public_b64})"
    assert key.seed.hex() not in repr(key)


def test_sha256_b64() -> None:
    assert sha256_b64(b"") == "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
    assert sha256_b64(b"kith") == b64e(hashlib.sha256(b"kith").digest())
    assert len(sha256_b64(b"x" * 1000)) == 43


# --- strict verification --------------------------------------------------------------------

KEY = SigningKey.from_seed(bytes(range(32)))
MESSAGE = b'{"v":1}'
SIG = KEY.sign(MESSAGE)


@pytest.mark.parametrize(
    ("public", "signature", "message"),
    [
        (KEY.public, SIG, MESSAGE + b" "),
        (KEY.public, SIG[:-1] + bytes([SIG[-1] ^ 1]), MESSAGE),
        (SigningKey.from_seed(bytes(32)).public, SIG, MESSAGE),
        (KEY.public[:-1], SIG, MESSAGE),  # wrong lengths
        (KEY.public + b"\0", SIG, MESSAGE),
        (KEY.public, SIG[:-1], MESSAGE),
        (KEY.public, SIG + b"\0", MESSAGE),
        (KEY.public, SIG + MESSAGE, b""),  # a "combined" signed message is not a signature
        (b"", b"", b""),
    ],
)
def test_verify_refuses(public: bytes, signature: bytes, message: bytes) -> None:
    assert verify(public, signature, message) is False


def test_verify_never_raises_on_wrong_types() -> None:
    assert verify("k" * 32, SIG, MESSAGE) is False  # type: ignore[arg-type]
    assert verify(KEY.public, SIG, "message") is False  # type: ignore[arg-type]


def test_verify_refuses_s_at_or_above_l() -> None:
    """S + L satisfies the same equation: a second, malleated signature. S < L is required."""
    s = int.from_bytes(SIG[32:], "little")
    assert s < L
    for bigger in (s + L, s + 2 * L, L):
        assert not verify(KEY.public, SIG[:32] + bigger.to_bytes(32, "little"), MESSAGE)


@pytest.mark.parametrize("point", SMALL_ORDER)
def test_verify_refuses_small_order_keys_and_r(point: str) -> None:
    """With A = identity, R = identity and S = 0 "sign" every message; all such are refused."""
    encoded = bytes.fromhex(point)
    assert not verify(encoded, encoded + bytes(32), MESSAGE)
    assert not verify(encoded, SIG, MESSAGE)
    assert not verify(KEY.public, encoded + SIG[32:], MESSAGE)
    assert not verify(KEY.public, encoded + bytes(32), MESSAGE)


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=300), st.data())
def test_sign_verify_round_trip(seed: bytes, message: bytes, data: st.DataObject) -> None:
    key = SigningKey(seed)
    signature = key.sign(message)
    assert verify(key.public, signature, message)
    # Any single flipped bit — in the key, the signature or the message — is refused.
    parts = [bytearray(key.public), bytearray(signature), bytearray(message)]
    which = data.draw(st.sampled_from([0, 1, 2] if message else [0, 1]))
    index = data.draw(st.integers(min_value=0, max_value=len(parts[which]) - 1))
    parts[which][index] ^= 1 << data.draw(st.integers(min_value=0, max_value=7))
    assert not verify(bytes(parts[0]), bytes(parts[1]), bytes(parts[2]))


def test_docstring_examples_run() -> None:
    import protocol.crypto

    result = doctest.testmod(protocol.crypto)
    assert result.attempted > 0
    assert result.failed == 0
