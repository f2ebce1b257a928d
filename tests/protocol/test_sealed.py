"""Sealed fields: round trips, refusals, tamper resistance and a pinned wire vector."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import msgspec
import nacl.bindings
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.codec import b64d, b64e
from protocol.reasons import KithError, SealError
from protocol.sealed import (
    ALG,
    HKDF_INFO,
    MAX_RECIPIENTS,
    Recipient,
    SealedField,
    box_keypair_from_seed,
    field_aad,
    generate_box_keypair,
    open_json,
    open_sealed,
    seal,
    seal_json,
)

ALICE = box_keypair_from_seed(bytes([0x44]) * 32)
BOB = box_keypair_from_seed(bytes([0x55]) * 32)
CAROL = box_keypair_from_seed(bytes([0x66]) * 32)
MALLORY = box_keypair_from_seed(bytes([0x77]) * 32)

# Points of small order on Curve25519 (libsodium's blocklist, in canonical and
# non-canonical encodings): X25519 with any of them yields an all-zero secret.
SMALL_ORDER = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
]


def queue_rng(*chunks: bytes) -> Callable[[int], bytes]:
    """An rng that hands out the given chunks in order (and checks the sizes asked for)."""
    pending = list(chunks)

    def rng(size: int) -> bytes:
        chunk = pending.pop(0)
        assert len(chunk) == size
        return chunk

    return rng


def hash_rng(seed: bytes) -> Callable[[int], bytes]:
    """A deterministic stream of pseudo-random bytes, so failures reproduce."""
    counter = iter(range(1 << 30))
    return lambda size: hashlib.shake_256(seed + next(counter).to_bytes(4, "big")).digest(size)


def replace(field: SealedField, **changes: object) -> SealedField:
    return msgspec.structs.replace(field, **changes)


# -- keys ---------------------------------------------------------------------------------------


def test_box_keypair_matches_rfc7748_vector() -> None:
    seed = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    private, public = box_keypair_from_seed(seed)
    assert private == seed
    assert public.hex() == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"


def test_box_keypair_refuses_wrong_seed_length() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        box_keypair_from_seed(bytes(31))


def test_generate_box_keypair_is_random_or_driven_by_rng() -> None:
    first, second = generate_box_keypair(), generate_box_keypair()
    assert first != second
    assert all(len(part) == 32 for part in first)
    seed = bytes([9]) * 32
    assert generate_box_keypair(rng=queue_rng(seed)) == box_keypair_from_seed(seed)


# -- round trips --------------------------------------------------------------------------------


def test_single_recipient_round_trip() -> None:
    field = seal(b"12 Elm Street", [ALICE[1]])
    assert field.alg == ALG
    assert [r.key for r in field.to] == [b64e(ALICE[1])]
    assert open_sealed(field, ALICE[0]) == b"12 Elm Street"


def test_every_recipient_opens_and_others_do_not() -> None:
    field = seal(b"flat 3", [ALICE[1], BOB[1], CAROL[1]], aad=b"need.posted/address")
    for private, _ in (ALICE, BOB, CAROL):
        assert open_sealed(field, private, aad=b"need.posted/address") == b"flat 3"
    with pytest.raises(SealError, match="not a recipient"):
        open_sealed(field, MALLORY[0], aad=b"need.posted/address")


@given(
    plaintext=st.binary(max_size=512),
    aad=st.binary(max_size=64),
    count=st.integers(1, 5),
    seed=st.binary(min_size=1, max_size=8),
)
def test_round_trip_property(plaintext: bytes, aad: bytes, count: int, seed: bytes) -> None:
    keys = [box_keypair_from_seed(hashlib.sha256(seed + bytes([i])).digest()) for i in range(count)]
    field = seal(plaintext, [public for _, public in keys], aad=aad, rng=hash_rng(seed))
    for private, _ in keys:
        assert open_sealed(field, private, aad=aad) == plaintext


def test_sealing_twice_gives_different_fields() -> None:
    assert seal(b"x", [ALICE[1]]) != seal(b"x", [ALICE[1]])


def test_max_recipients_is_allowed() -> None:
    keys = [box_keypair_from_seed(bytes([i]) * 32) for i in range(1, MAX_RECIPIENTS + 1)]
    field = seal(b"x", [public for _, public in keys])
    assert open_sealed(field, keys[-1][0]) == b"x"


# -- refusals on the opening side ---------------------------------------------------------------


def test_wrong_key_fails() -> None:
    # Alice's entry carries the content key wrapped for Bob: Alice must not get past the unwrap.
    field = seal(b"secret", [ALICE[1], BOB[1]])
    swapped = replace(
        field,
        to=[
            Recipient(key=field.to[0].key, wrapped=field.to[1].wrapped),
            Recipient(key=field.to[1].key, wrapped=field.to[0].wrapped),
        ],
    )
    with pytest.raises(SealError, match="cannot unwrap"):
        open_sealed(swapped, ALICE[0])


def test_wrong_private_key_length_fails() -> None:
    with pytest.raises(SealError, match="32 bytes"):
        open_sealed(seal(b"x", [ALICE[1]]), ALICE[0][:31])


def test_aad_mismatch_fails() -> None:
    field = seal(b"x", [ALICE[1]], aad=b"one")
    with pytest.raises(SealError, match="cannot unwrap"):
        open_sealed(field, ALICE[0], aad=b"two")
    with pytest.raises(SealError, match="cannot unwrap"):
        open_sealed(field, ALICE[0])


@pytest.mark.parametrize("point", SMALL_ORDER)
def test_small_order_epk_fails_cleanly(point: bytes) -> None:
    field = replace(seal(b"x", [ALICE[1]]), epk=b64e(point))
    with pytest.raises(SealError, match="small-order"):
        open_sealed(field, ALICE[0])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"alg": "x25519-hkdf-sha512-aes"}, "unknown sealing algorithm"),
        ({"epk": "not base64!"}, "epk is malformed"),
        ({"epk": b64e(bytes(31))}, "epk is malformed"),
        ({"epk": 12345}, "epk is malformed"),
        ({"nonce": b64e(bytes(24))}, "nonce is malformed"),
        ({"epk": "A" * 42 + "B"}, "epk is malformed"),  # spare bits set: not canonical
        ({"ct": b64e(bytes(15))}, "shorter than its authentication tag"),
        ({"ct": "A"}, "ct is malformed"),
        ({"to": []}, "1..32 recipients"),
        ({"to": [Recipient(key=b64e(ALICE[1]), wrapped=b64e(bytes(48)))] * 33}, "1..32"),
        ({"to": [Recipient(key=b64e(ALICE[1]), wrapped=b64e(bytes(48)))] * 2}, "named twice"),
        ({"to": [Recipient(key=b64e(ALICE[1]), wrapped=b64e(bytes(47)))]}, "wrapped key"),
        ({"to": [Recipient(key=b64e(bytes(33)), wrapped=b64e(bytes(48)))]}, "recipient key"),
    ],
)
def test_malformed_fields_fail_cleanly(changes: dict[str, object], message: str) -> None:
    field = replace(seal(b"x", [ALICE[1]]), **changes)
    with pytest.raises(SealError, match=message):
        open_sealed(field, ALICE[0])


TAMPERABLE = ["ct", "nonce", "epk", "wrapped"]


def _get(field: SealedField, name: str, entry: int) -> str:
    return field.to[entry].wrapped if name == "wrapped" else str(getattr(field, name))


def _put(field: SealedField, name: str, entry: int, text: str) -> SealedField:
    if name != "wrapped":
        return replace(field, **{name: text})
    to = list(field.to)
    to[entry] = Recipient(key=to[entry].key, wrapped=text)
    return replace(field, to=to)


@given(
    name=st.sampled_from(TAMPERABLE),
    position=st.integers(min_value=0),
    flip=st.integers(1, 255),
    reader=st.integers(0, 1),
)
def test_every_single_byte_tamper_fails(name: str, position: int, flip: int, reader: int) -> None:
    field = seal(b"meet at the library, 3pm", [ALICE[1], BOB[1]], rng=hash_rng(b"tamper"))
    raw = bytearray(b64d(_get(field, name, reader)))
    raw[position % len(raw)] ^= flip
    tampered = _put(field, name, reader, b64e(bytes(raw)))
    with pytest.raises(SealError):
        open_sealed(tampered, (ALICE, BOB)[reader][0])


@given(
    name=st.sampled_from(TAMPERABLE),
    position=st.integers(min_value=0),
    char=st.characters(codec="utf-8"),
)
def test_every_text_tamper_fails_with_seal_error(name: str, position: int, char: str) -> None:
    field = seal(b"x", [ALICE[1]], rng=hash_rng(b"text"))
    text = _get(field, name, 0)
    index = position % len(text)
    tampered = text[:index] + char + text[index + 1 :]
    if tampered == text:
        return
    try:
        open_sealed(_put(field, name, 0, tampered), ALICE[0])
    except SealError:
        return
    raise AssertionError("a tampered field opened")


def test_errors_are_kith_errors() -> None:
    assert issubclass(SealError, KithError)


# -- refusals on the sealing side ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("recipients", "message"),
    [
        ([], "1..32 recipients"),
        ([box_keypair_from_seed(bytes([i]) * 32)[1] for i in range(33)], "1..32 recipients"),
        ([ALICE[1], BOB[1], ALICE[1]], "named twice"),
        ([ALICE[1], BOB[1][:31]], "recipient #1 is 31 bytes"),
        ([ALICE[1] + b"\0"], "recipient #0 is 33 bytes"),
        ([ALICE[1], SMALL_ORDER[0]], "recipient #1 is a small-order"),
    ],
)
def test_seal_refuses_bad_recipients(recipients: list[bytes], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        seal(b"x", recipients)


def test_seal_refuses_a_short_rng() -> None:
    with pytest.raises(ValueError, match="rng returned 31 bytes"):
        seal(b"x", [ALICE[1]], rng=lambda size: bytes(size - 1))


# -- JSON helpers and the wire struct -----------------------------------------------------------


class Address(msgspec.Struct, frozen=True):
    street: str
    flat: int | None = None


def test_json_round_trip_untyped_and_typed() -> None:
    field = seal_json({"street": "Elm", "flat": 3}, [ALICE[1]])
    assert open_json(field, ALICE[0]) == {"street": "Elm", "flat": 3}
    assert open_json(field, ALICE[0], type=Address) == Address(street="Elm", flat=3)


def test_json_helpers_pass_aad_through() -> None:
    field = seal_json([1], [ALICE[1]], aad=b"ctx")
    assert open_json(field, ALICE[0], aad=b"ctx") == [1]
    with pytest.raises(SealError):
        open_json(field, ALICE[0])


def test_open_json_refuses_the_wrong_type() -> None:
    field = seal_json({"street": 7}, [ALICE[1]])
    with pytest.raises(SealError, match="does not match the expected type"):
        open_json(field, ALICE[0], type=Address)


def test_open_json_refuses_non_json_plaintext() -> None:
    with pytest.raises(SealError, match="not JSON"):
        open_json(seal(b"{not json", [ALICE[1]]), ALICE[0])


def test_wire_struct_round_trips_through_msgspec() -> None:
    field = seal(b"x", [ALICE[1], BOB[1]])
    encoded = msgspec.json.encode(field)
    assert msgspec.json.decode(encoded, type=SealedField) == field
    assert set(msgspec.json.decode(encoded)) == {"alg", "epk", "nonce", "ct", "to"}


@pytest.mark.parametrize(
    "mutate",
    [
        lambda obj: obj.update(extra=1),
        lambda obj: obj.update(alg="rsa"),
        lambda obj: obj.update(to=[]),
        lambda obj: obj.update(epk="has=padding"),
        lambda obj: obj["to"][0].update(extra=1),
        lambda obj: obj.pop("nonce"),
    ],
)
def test_wire_struct_refuses_bad_json(mutate: Callable[[dict[str, object]], object]) -> None:
    obj = msgspec.json.decode(msgspec.json.encode(seal(b"x", [ALICE[1]])))
    mutate(obj)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(msgspec.json.encode(obj), type=SealedField)


# -- the pinned vector (docs/protocol.md §Sealed fields) ----------------------------------------

VECTOR_RNG = (bytes([0x11]) * 32, bytes([0x22]) * 12, bytes([0x33]) * 32)  # CEK, nonce, eph key
VECTOR_JSON = (
    '{"alg":"x25519-hkdf-sha256-chacha20poly1305",'
    '"epk":"ew1H2TQn-DERYHgcfHM_2J-IlwrvSQ2KoO4ZpMuKGxQ","nonce":"IiIiIiIiIiIiIiIi",'
    '"ct":"_lemak_1yAP_WNPNySKPA0rdEuwpt7eCXCCqRuuuLYgLNR7fdY8soUIU",'
    '"to":[{"key":"_y7kVgHsG2cxDHeQQEWFrmlzMe7hwfjPJBlzHB__Pms",'
    '"wrapped":"wr3GhN411J8uN_g2lIgz0wQqRRWlrMEpZQv99GIw4kADh0i28uw3MUoxiLGFtWaJ"},'
    '{"key":"OKtmS9hvd9fma92a4HkpE6lP2LM6EmACfktGwfSITGc",'
    '"wrapped":"hrnqWhJe3Kqw16uec2d8OJ7_9IULmiJCra9xli3_EItVP04BOp61mxXjcu5WeS5m"}]}'
)


def test_pinned_vector() -> None:
    field = seal_json({"street": "12 Elm Street"}, [ALICE[1], BOB[1]], rng=queue_rng(*VECTOR_RNG))
    assert msgspec.json.encode(field).decode() == VECTOR_JSON
    decoded = msgspec.json.decode(VECTOR_JSON, type=SealedField)
    assert open_json(decoded, BOB[0]) == {"street": "12 Elm Street"}


def _hkdf_sha256(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    # RFC 5869 written out, so the check below does not share code with the implementation.
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def test_format_matches_the_specification_with_an_independent_library() -> None:
    # Rebuild the vector from the formulas in the docs with libsodium (PyNaCl) and hmac.
    cek, nonce, eph = VECTOR_RNG
    epk = nacl.bindings.crypto_scalarmult_base(eph)
    aead = nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt
    to = []
    for _, public in (ALICE, BOB):
        shared = nacl.bindings.crypto_scalarmult(eph, public)
        kek = _hkdf_sha256(shared, epk + public, HKDF_INFO)
        to.append({"key": b64e(public), "wrapped": b64e(aead(cek, b"", bytes(12), kek))})
    plaintext = b'{"street":"12 Elm Street"}'
    expected = {
        "alg": ALG,
        "epk": b64e(epk),
        "nonce": b64e(nonce),
        "ct": b64e(aead(plaintext, b"", nonce, cek)),
        "to": to,
    }
    assert msgspec.json.decode(VECTOR_JSON) == expected


def test_a_field_opens_only_in_its_own_kind_and_field() -> None:
    assert field_aad("need.posted", "personal") == b"need.posted/personal"
    field = seal_json({"address": "flat 3"}, [ALICE[1]], aad=field_aad("need.posted", "personal"))
    assert open_json(field, ALICE[0], aad=field_aad("need.posted", "personal")) == {
        "address": "flat 3"
    }
    with pytest.raises(SealError):
        open_json(field, ALICE[0], aad=field_aad("report.filed", "sealed"))
