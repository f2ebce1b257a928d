"""Non-event signatures and tokens: message bytes, every reason, check order and tampering."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from protocol.codec import b64e
from protocol.crypto import SigningKey
from protocol.reasons import InvalidToken, KithError
from protocol.tokens import (
    AUTH_PREFIX,
    EXPIRED,
    FORMAT,
    LIFETIME,
    MAX_TTL_MS,
    NODE,
    NONCE,
    PURPOSE,
    SIG,
    TOKEN_REASONS,
    TokenClaims,
    auth_message,
    check_token,
    make_token,
    sign_auth,
    verify_auth,
)

MEMBER = SigningKey.from_seed(bytes([0x01]) * 32)
NODE_KEY = SigningKey.from_seed(bytes([0x02]) * 32).public_b64
OTHER_NODE = SigningKey.from_seed(bytes([0x03]) * 32).public_b64
NOW = 1_700_000_000_000
FIXED_NONCE = b64e(bytes(range(16)))  # 22 characters


def token(**overrides: object) -> str:
    args: dict[str, object] = {
        "purpose": "http",
        "node_key": NODE_KEY,
        "now_ms": NOW,
        "nonce": FIXED_NONCE,
    }
    args.update(overrides)
    return make_token(MEMBER, **args)  # type: ignore[arg-type]


def check(text: str, **overrides: object) -> TokenClaims:
    args: dict[str, object] = {"purpose": "http", "node_key": NODE_KEY, "now_ms": NOW}
    args.update(overrides)
    return check_token(text, **args)  # type: ignore[arg-type]


def reason_of(text: str, **overrides: object) -> str:
    with pytest.raises(InvalidToken) as info:
        check(text, **overrides)
    assert info.value.reason in TOKEN_REASONS
    return info.value.reason


# -- the signed message -------------------------------------------------------------------------


def test_auth_message_is_exact() -> None:
    message = auth_message("stream", NODE_KEY, FIXED_NONCE, 1_700_000_300_000)
    assert message == (
        b"kith-auth/1\nstream\n" + NODE_KEY.encode() + b"\nAAECAwQFBgcICQoLDA0ODw\n1700000300000"
    )
    assert message.startswith(AUTH_PREFIX)


@pytest.mark.parametrize(
    ("purpose", "node_key", "nonce", "expiry"),
    [
        ("", NODE_KEY, FIXED_NONCE, 1),
        ("Http", NODE_KEY, FIXED_NONCE, 1),
        ("1http", NODE_KEY, FIXED_NONCE, 1),
        ("-http", NODE_KEY, FIXED_NONCE, 1),
        ("http\n", NODE_KEY, FIXED_NONCE, 1),
        ("ht.tp", NODE_KEY, FIXED_NONCE, 1),
        ("a" * 33, NODE_KEY, FIXED_NONCE, 1),
        (None, NODE_KEY, FIXED_NONCE, 1),
        ("http", NODE_KEY + "A", FIXED_NONCE, 1),
        ("http", NODE_KEY[:-1] + "B", FIXED_NONCE, 1),  # non-canonical: spare bits set
        ("http", b64e(bytes(64)), FIXED_NONCE, 1),
        ("http", "{" + NODE_KEY[1:], FIXED_NONCE, 1),
        ("http", None, FIXED_NONCE, 1),
        ("http", NODE_KEY, "n" * 15, 1),
        ("http", NODE_KEY, "n" * 129, 1),
        ("http", NODE_KEY, "n" * 15 + ".", 1),
        ("http", NODE_KEY, "n" * 16 + "\n", 1),
        ("http", NODE_KEY, "n" * 15 + "=", 1),
        ("http", NODE_KEY, None, 1),
        ("http", NODE_KEY, FIXED_NONCE, -1),
        ("http", NODE_KEY, FIXED_NONCE, 2**53 + 1),
        ("http", NODE_KEY, FIXED_NONCE, True),
        ("http", NODE_KEY, FIXED_NONCE, 1.0),
        ("http", NODE_KEY, FIXED_NONCE, "1"),
    ],
)
def test_auth_message_refuses_bad_parts(
    purpose: str, node_key: str, nonce: str, expiry: int
) -> None:
    with pytest.raises(ValueError):
        auth_message(purpose, node_key, nonce, expiry)


def test_auth_message_accepts_the_bounds() -> None:
    assert auth_message("a", NODE_KEY, "n" * 16, 0).endswith(b"\n0")
    assert auth_message("a" * 32, NODE_KEY, "n" * 128, 2**53).endswith(b"\n9007199254740992")


parts = st.tuples(
    st.from_regex(r"[a-z][a-z0-9-]{0,31}", fullmatch=True),
    st.binary(min_size=32, max_size=32).map(b64e),
    st.from_regex(r"[A-Za-z0-9_-]{16,128}", fullmatch=True),
    st.integers(0, 2**53),
)


@given(parts, parts)
def test_auth_messages_are_unambiguous(
    one: tuple[str, str, str, int], two: tuple[str, str, str, int]
) -> None:
    # Never an event head (which starts with "{"), and different parts never give the same bytes.
    message = auth_message(*one)
    assert message.startswith(b"kith-auth/1\n")
    assert not message.startswith(b"{")
    assert message.split(b"\n")[1:] == [str(part).encode() for part in one]
    assert (message == auth_message(*two)) == (one == two)


# -- sign_auth / verify_auth --------------------------------------------------------------------


def test_sign_and_verify_auth() -> None:
    sig = sign_auth(MEMBER, "federation", NODE_KEY, FIXED_NONCE, NOW)
    assert verify_auth(MEMBER.public_b64, sig, "federation", NODE_KEY, FIXED_NONCE, NOW)


@pytest.mark.parametrize(
    ("author", "sig_index", "parts"),
    [
        (SigningKey.from_seed(bytes(32)).public_b64, 0, ("federation", NODE_KEY, FIXED_NONCE, NOW)),
        (MEMBER.public_b64, 1, ("federation", NODE_KEY, FIXED_NONCE, NOW)),
        (MEMBER.public_b64, 0, ("stream", NODE_KEY, FIXED_NONCE, NOW)),
        (MEMBER.public_b64, 0, ("federation", OTHER_NODE, FIXED_NONCE, NOW)),
        (MEMBER.public_b64, 0, ("federation", NODE_KEY, "x" * 22, NOW)),
        (MEMBER.public_b64, 0, ("federation", NODE_KEY, FIXED_NONCE, NOW + 1)),
        (MEMBER.public_b64, 0, ("Federation", NODE_KEY, FIXED_NONCE, NOW)),
        ("not-a-key", 0, ("federation", NODE_KEY, FIXED_NONCE, NOW)),
        (None, 0, ("federation", NODE_KEY, FIXED_NONCE, NOW)),
        (MEMBER.public_b64, 2, ("federation", NODE_KEY, FIXED_NONCE, NOW)),
    ],
)
def test_verify_auth_is_false_for_anything_else(
    author: str, sig_index: int, parts: tuple[str, str, str, int]
) -> None:
    good = sign_auth(MEMBER, "federation", NODE_KEY, FIXED_NONCE, NOW)
    sigs = [good, sign_auth(MEMBER, "federation", NODE_KEY, FIXED_NONCE, NOW + 1), good[:-2]]
    assert verify_auth(author, sigs[sig_index], *parts) is False


def test_sign_auth_refuses_bad_parts() -> None:
    with pytest.raises(ValueError):
        sign_auth(MEMBER, "HTTP", NODE_KEY, FIXED_NONCE, NOW)


# -- make_token ---------------------------------------------------------------------------------


def test_token_round_trip() -> None:
    text = token()
    assert text.split(".")[:6] == [
        "kith1",
        "http",
        MEMBER.public_b64,
        NODE_KEY,
        FIXED_NONCE,
        str(NOW + MAX_TTL_MS),
    ]
    assert check(text) == TokenClaims(
        author=MEMBER.public_b64,
        purpose="http",
        node_key=NODE_KEY,
        nonce=FIXED_NONCE,
        expiry_ms=NOW + MAX_TTL_MS,
    )


def test_default_nonce_comes_from_rng() -> None:
    text = make_token(
        MEMBER, purpose="http", node_key=NODE_KEY, now_ms=NOW, rng=lambda size: bytes([7]) * size
    )
    assert text.split(".")[4] == b64e(bytes([7]) * 16)
    assert token(nonce=None).split(".")[4] != token(nonce=None).split(".")[4]


@pytest.mark.parametrize(
    "overrides",
    [
        {"ttl_ms": 0},
        {"ttl_ms": MAX_TTL_MS + 1},
        {"ttl_ms": True},
        {"ttl_ms": 1.5},
        {"now_ms": "1700000000000"},
        {"now_ms": 2**53},  # expiry beyond 2^53
        {"purpose": "HTTP"},
        {"node_key": "node"},
        {"nonce": "short"},
    ],
)
def test_make_token_refuses_bad_input(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        token(**overrides)


# -- check_token: every reason, at its boundary -------------------------------------------------


def test_ttl_bounds_are_accepted() -> None:
    assert check(token(ttl_ms=1)).expiry_ms == NOW + 1
    assert check(token(ttl_ms=MAX_TTL_MS)).expiry_ms == NOW + MAX_TTL_MS


def test_purpose_reason() -> None:
    assert reason_of(token(purpose="stream")) == PURPOSE


def test_node_reason() -> None:
    assert reason_of(token(node_key=OTHER_NODE)) == NODE


def test_expired_reason_and_boundary() -> None:
    text = token(ttl_ms=1_000)
    assert check(text, now_ms=NOW + 1_000).expiry_ms == NOW + 1_000
    assert reason_of(text, now_ms=NOW + 1_001) == EXPIRED


def test_lifetime_reason_and_boundary() -> None:
    text = token(now_ms=NOW + 60_000)  # minted by a clock a minute ahead, or claiming 6 minutes
    assert reason_of(text) == LIFETIME
    assert check(text, now_ms=NOW + 60_000).author == MEMBER.public_b64
    assert reason_of(token(ttl_ms=120_000), max_ttl_ms=119_999) == LIFETIME
    assert check(token(ttl_ms=120_000), max_ttl_ms=120_000).expiry_ms == NOW + 120_000


def test_nonce_reason() -> None:
    text = token()
    assert check(text, expected_nonce=FIXED_NONCE).nonce == FIXED_NONCE
    assert reason_of(text, expected_nonce="x" * 22) == NONCE


def test_sig_reason() -> None:
    parts = token().split(".")
    parts[6] = b64e(MEMBER.sign(b"something else"))
    assert reason_of(".".join(parts)) == SIG


@pytest.mark.parametrize("max_ttl_ms", [0, MAX_TTL_MS + 1, True, 1.0])
def test_check_token_refuses_a_bad_max_ttl(max_ttl_ms: object) -> None:
    with pytest.raises(ValueError):
        check(token(), max_ttl_ms=max_ttl_ms)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "kith1",
        "Kith " + "x",
        b"kith1.http",
        None,
        "kith1." * 100,
        "kith1.http.a.b.c.d",
        "kith1.http.a.b.c.d.e.f",
        "kith2" + token()[5:],
        token().replace("kith1.http.", "kith1.http.x", 1),  # author not 32 bytes
        token()[:-1],  # sig not 64 bytes
        token()[:-1] + "B",  # sig not canonical
        token().replace(f".{NOW + MAX_TTL_MS}.", f".0{NOW + MAX_TTL_MS}."),
        token().replace(f".{NOW + MAX_TTL_MS}.", f".+{NOW + MAX_TTL_MS}."),
        token().replace(f".{NOW + MAX_TTL_MS}.", ".9007199254740993."),
        token().replace(f".{NOW + MAX_TTL_MS}.", ".12345678901234567."),
        token().replace(f".{NOW + MAX_TTL_MS}.", "..", 1),
        token().replace(".http.", ".HTTP.", 1),
        token().replace(".http.", "..", 1),
        token().replace(f".{NODE_KEY}.", ".node.", 1),
        token().replace(f".{FIXED_NONCE}.", ".short.", 1),
        token() + "\n",
        " " + token(),
    ],
)
def test_format_reason(text: str) -> None:
    assert reason_of(text) == FORMAT


def test_check_order() -> None:
    # Each token is wrong in two ways; the earlier check in the documented order names it.
    assert reason_of(token(purpose="stream", node_key=OTHER_NODE)) == PURPOSE
    assert reason_of(token(node_key=OTHER_NODE, ttl_ms=1), now_ms=NOW + 5) == NODE
    assert reason_of(token(ttl_ms=1), now_ms=NOW + 5, expected_nonce="x" * 22) == EXPIRED
    assert reason_of(token(now_ms=NOW + 1), expected_nonce="x" * 22) == LIFETIME
    forged = token().split(".")
    forged[6] = b64e(bytes(64))
    assert reason_of(".".join(forged), expected_nonce="x" * 22) == NONCE
    assert reason_of(".".join(forged)) == SIG


def test_errors_are_kith_errors() -> None:
    assert issubclass(InvalidToken, KithError)
    with pytest.raises(InvalidToken) as info:
        check("nope")
    assert info.value.message.startswith("a token has 7")


# -- tampering and arbitrary input --------------------------------------------------------------

OTHER_VALUES = [
    "kith2",
    "stream",
    SigningKey.from_seed(bytes([0x09]) * 32).public_b64,
    OTHER_NODE,
    "y" * 22,
    str(NOW + MAX_TTL_MS - 1),
    b64e(MEMBER.sign(b"other")),
]


@pytest.mark.parametrize("index", range(7))
def test_replacing_any_part_fails(index: int) -> None:
    parts = token().split(".")
    parts[index] = OTHER_VALUES[index]
    tampered = ".".join(parts)
    # Check against the tampered claims themselves, so only the signature can catch it.
    expected = {"purpose": parts[1], "node_key": parts[3], "expected_nonce": parts[4]}
    assert reason_of(tampered, **expected) == (FORMAT if index == 0 else SIG)


@given(position=st.integers(min_value=0), char=st.characters())
def test_any_single_character_change_fails(position: int, char: str) -> None:
    text = token()
    index = position % len(text)
    tampered = text[:index] + char + text[index + 1 :]
    assume(tampered != text)
    with pytest.raises(InvalidToken):
        check(tampered, expected_nonce=FIXED_NONCE)


@given(
    text=st.one_of(
        st.text(),
        st.text(alphabet="kith1.-_aAzZ09", max_size=400),
        st.lists(st.text(alphabet="abcAB09-_", max_size=90), min_size=7, max_size=7).map(
            lambda parts: "kith1." + ".".join(parts[1:])
        ),
    ),
    now_ms=st.integers(-(2**60), 2**60),
)
def test_arbitrary_strings_only_ever_raise_invalid_token(text: str, now_ms: int) -> None:
    try:
        check(text, now_ms=now_ms)
    except InvalidToken as exc:
        assert exc.reason in TOKEN_REASONS


# -- the pinned vector (docs/protocol.md §Tokens) -----------------------------------------------

VECTOR_TOKEN = (
    "kith1.http.iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w"
    ".gTl3Dqh9F19Wo1Rmw0x-zMuNipG07jeiXfYPW4_Js5Q.AAECAwQFBgcICQoLDA0ODw.1700000300000"
    ".XgMFNZUgNHl7memNkRkR4QKaxi7k1Mh74HQ3hp_7r_YWvMuwKwuYp1Co3_fKpz8ciDb6GlRPsoxFTm6lvImRCw"
)


def test_pinned_vector() -> None:
    # Ed25519 is deterministic, so seeds 0x01*32 (member) and 0x02*32 (node) fix every byte.
    assert token() == VECTOR_TOKEN
    assert check(VECTOR_TOKEN, now_ms=NOW + MAX_TTL_MS).expiry_ms == 1_700_000_300_000
