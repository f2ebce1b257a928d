"""Each invite's status is a pure function of the stored events, the clock and the requests."""

from __future__ import annotations

from node.projections.invites import InviteFact, code_hash, derive, new_code
from protocol.kinds import InviteCreated, InviteRevoked, MemberAdded

K = "K" * 42 + "A"


def created(id: str, author: str = "CORA", ts: int = 10, expires_at: int = 1_000) -> InviteFact:
    body = InviteCreated(code_hash=code_hash(id), expires_at=expires_at, approve="coordinator")
    return InviteFact(id, author, ts, body)


def admin(key: str, ts: int) -> bool:
    return key == "CORA" or (key == "LATE" and ts >= 100)


def statuses(*args: list[InviteFact], now_ms: int = 500, pending: tuple[str, ...] = ()) -> dict:
    rows = derive(*args, admin=admin, now_ms=now_ms, pending=pending)
    return {r.id: r.status for r in rows}


def test_status_order_used_then_revoked_then_expired_then_pending() -> None:
    invites = [created("A"), created("B"), created("C"), created("D"), created("E")]
    revoked = [InviteFact(f"R{i}", "CORA", 20, InviteRevoked(invite=i)) for i in "AB"]
    used = [InviteFact("M", "CORA", 30, MemberAdded(key=K, role="member", box_key=K, invite="A"))]
    assert statuses(invites, revoked, used, pending=("C", "D")) == {
        "A": "used",
        "B": "revoked",
        "C": "pending",
        "D": "pending",
        "E": "open",
    }
    # Later, every invite not used or revoked has expired, pending or not.
    late = statuses(invites, revoked, used, now_ms=1_001, pending=("C",))
    assert late == {"A": "used", "B": "revoked", "C": "expired", "D": "expired", "E": "expired"}


def test_only_admins_invites_and_revocations_count() -> None:
    invites = [created("A", author="ADA"), created("B", author="LATE", ts=50), created("C")]
    revoked = [InviteFact("R", "ADA", 20, InviteRevoked(invite="C"))]
    assert statuses(invites, revoked, []) == {"C": "open"}


def test_the_first_member_added_naming_an_invite_is_its_member_and_rows_are_newest_first() -> None:
    other = "O" * 42 + "A"
    used = [
        InviteFact("M2", "CORA", 40, MemberAdded(key=other, role="member", box_key=K, invite="A")),
        InviteFact("M1", "CORA", 30, MemberAdded(key=K, role="member", box_key=K, invite="A")),
        InviteFact("M0", "CORA", 10, MemberAdded(key=K, role="member", box_key=K)),
    ]
    rows = derive([created("A"), created("B", ts=20)], [], used, admin=admin, now_ms=0)
    assert [(r.id, r.member) for r in rows] == [("B", None), ("A", K)]


def test_codes_are_128_bits_and_hashes_are_domain_separated() -> None:
    import base64
    import hashlib

    code = new_code()
    assert len(code) == 22 and code != new_code()
    digest = hashlib.sha256(b"kith-invite/1\n" + code.encode()).digest()
    assert code_hash(code) == base64.urlsafe_b64encode(digest).decode().rstrip("=")
