"""The roster as a pure model: ``Roster.authorize`` for every branch, ``Roster.apply`` per kind."""

from __future__ import annotations

import msgspec
import pytest

from node.roster import Member, PodRoster, Roster
from protocol.envelope import Head
from protocol.kinds import (
    MemberAdded,
    MemberBlocked,
    MemberKeyAdded,
    MemberKeyRevoked,
    MemberRemoved,
    MemberUnblocked,
    NeedPosted,
    NodeKey,
    PodCreated,
    PodRootRotated,
)
from protocol.validate import Authorization
from tests.node.conftest import signing_key

YES, NO, UNKNOWN, BLOCKED = (
    Authorization.YES,
    Authorization.NO,
    Authorization.UNKNOWN,
    Authorization.BLOCKED,
)


def k(name: str) -> str:
    return signing_key(f"roster:{name}").public_b64


POD = k("root")  # the pod id is its genesis root key
ROOT, NODE, NEW_ROOT = POD, k("node"), k("new-root")
ADA, BO, CY, PHONE, STRANGER = k("ada"), k("bo"), k("cy"), k("ada-phone"), k("stranger")
PREV = k("some-prev-id")


def head(
    author: str,
    kind: str = "need.posted",
    *,
    scope: str = "pod",
    seq: int = 1,
    pod: str = POD,
) -> Head:
    return Head(
        v=1,
        pod=pod,
        author=author,
        scope=scope,  # type: ignore[arg-type]
        seq=seq,
        prev=None if seq == 1 else PREV,
        ts=1000 + seq,
        kind=kind,
        body_hash=None,
        body_size=0,
    )


def built() -> Roster:
    """A pod: root, node key, Ada and Bo (members), Cy (coordinator), Ada's phone."""
    r = Roster()
    r.apply(head(ROOT, "pod.created", scope="public"), PodCreated(name="Elm"))
    r.apply(head(ROOT, "node.key", scope="public", seq=2), NodeKey(key=NODE))
    for who, role in ((ADA, "member"), (BO, "member"), (CY, "coordinator")):
        r.apply(
            head(NODE, "member.added", scope="public"),
            MemberAdded(key=who, role=role, box_key=k(f"box-{who}")),  # type: ignore[arg-type]
        )
    r.apply(head(NODE, "member.key_added", scope="public"), MemberKeyAdded(member=ADA, key=PHONE))
    return r


# --- authorize -------------------------------------------------------------------------

ENDED = Authorization.ENDED
ROSTER_KINDS_BY_ROOT_ONLY = ("pod.root_rotated", "node.key")
ROSTER_KINDS_BY_ADMINS = (
    "member.added",
    "member.removed",
    "member.key_added",
    "member.key_revoked",
    "member.blocked",
)


@pytest.mark.parametrize(
    ("author", "scope", "expected"),
    [
        (ROOT, "public", YES),
        (ROOT, "pod", NO),  # genesis is public
        (NODE, "public", NO),  # only the pod's own key creates it
        (STRANGER, "public", NO),
    ],
)
def test_pod_created_needs_the_pod_key_in_public_even_without_a_roster(
    author: str, scope: str, expected: Authorization
) -> None:
    assert Roster().authorize(head(author, "pod.created", scope=scope)) is expected
    assert built().authorize(head(author, "pod.created", scope=scope)) is expected


def test_anything_else_in_an_unknown_pod_is_unknown() -> None:
    r = built()
    assert r.authorize(head(ADA, pod=k("other-pod"))) is UNKNOWN
    assert r.authorize(head(ROOT, "member.added", scope="public", pod=k("other-pod"))) is UNKNOWN


@pytest.mark.parametrize("kind", ROSTER_KINDS_BY_ROOT_ONLY + ROSTER_KINDS_BY_ADMINS)
def test_roster_events_in_pod_scope_are_refused(kind: str) -> None:
    # Refused outright, even for the root and even for an unknown author.
    assert built().authorize(head(ROOT, kind, scope="pod")) is NO
    assert built().authorize(head(STRANGER, kind, scope="pod")) is NO


@pytest.mark.parametrize("kind", ROSTER_KINDS_BY_ROOT_ONLY)
def test_root_attestations_live_in_public_only(kind: str) -> None:
    # Anyone must be able to check a pod's node key: never kept among peers.
    assert built().authorize(head(ROOT, kind, scope="peers")) is NO


@pytest.mark.parametrize("kind", ROSTER_KINDS_BY_ADMINS)
def test_member_changes_may_live_among_direct_peers(kind: str) -> None:
    """A pod that keeps its size private signs its member changes in peers scope (D43)."""
    assert built().authorize(head(CY, kind, scope="peers", seq=5)) is YES
    r = Roster()
    r.apply(head(ROOT, "pod.created", scope="public"), PodCreated(name="Elm"))
    r.apply(
        head(ROOT, "member.added", scope="peers", seq=2),
        MemberAdded(key=ADA, role="member", box_key=k("box")),
    )
    assert r.authorize(head(ADA, scope="pod", seq=1)) is YES


@pytest.mark.parametrize(
    ("author", "root_only", "admin"),
    [
        (ROOT, YES, YES),
        (NODE, NO, YES),
        (CY, NO, YES),
        (ADA, NO, NO),
        (PHONE, NO, NO),  # a device key acts with its person's role
        (STRANGER, UNKNOWN, UNKNOWN),
    ],
)
def test_roster_events_by_role(author: str, root_only: Authorization, admin: Authorization) -> None:
    r = built()
    for kind in ROSTER_KINDS_BY_ROOT_ONLY:
        assert r.authorize(head(author, kind, scope="public", seq=5)) is root_only, kind
    for kind in ROSTER_KINDS_BY_ADMINS:
        assert r.authorize(head(author, kind, scope="public", seq=5)) is admin, kind


def test_device_of_a_coordinator_may_sign_roster_events() -> None:
    r = built()
    cy_phone = k("cy-phone")
    r.apply(head(NODE, "member.key_added", scope="public"), MemberKeyAdded(member=CY, key=cy_phone))
    assert r.authorize(head(cy_phone, "member.added", scope="public")) is YES


@pytest.mark.parametrize(
    ("author", "expected"),
    [(ROOT, YES), (NODE, YES), (CY, YES), (ADA, YES), (PHONE, YES), (STRANGER, UNKNOWN)],
)
def test_ordinary_events_by_anyone_in_the_roster(author: str, expected: Authorization) -> None:
    for scope in ("pod", "peers", "public"):
        assert built().authorize(head(author, scope=scope, seq=3)) is expected


def test_rotation_ends_the_old_root_at_the_rotation_seq() -> None:
    r = built()
    r.apply(head(ROOT, "pod.root_rotated", scope="public", seq=3), PodRootRotated(new_key=NEW_ROOT))
    assert r.pods[POD].roots == {ROOT: 3, NEW_ROOT: None}
    # Ordinary events and roster events alike: valid up to the rotation, not after.
    for kind in ("need.posted", "member.added", "node.key"):
        assert r.authorize(head(ROOT, kind, scope="public", seq=3)) is YES, kind
        assert r.authorize(head(ROOT, kind, scope="public", seq=4)) is ENDED, kind
        assert r.authorize(head(NEW_ROOT, kind, scope="public", seq=1)) is YES, kind
        assert r.authorize(head(NEW_ROOT, kind, scope="public", seq=99)) is YES, kind


def test_removal_applies_from_the_stated_seq_of_the_stated_scope() -> None:
    r = built()
    r.apply(
        head(CY, "member.removed", scope="public", seq=5),  # signed at ts 1005
        MemberRemoved(key=ADA, effective={"pod": 3}),
    )
    assert r.authorize(head(ADA, scope="pod", seq=2)) is YES
    assert r.authorize(head(ADA, scope="pod", seq=3)) is ENDED
    assert r.authorize(head(ADA, scope="pod", seq=30)) is ENDED
    assert r.authorize(head(ADA, scope="public", seq=30)) is YES  # not named
    # A device key of the removed person has its own logs: it ends from the removal's time.
    assert r.authorize(head(PHONE, scope="pod", seq=5)) is ENDED
    assert r.authorize(head(PHONE, scope="peers", seq=5)) is ENDED
    assert r.authorize(head(PHONE, scope="pod", seq=4)) is YES


def test_removal_of_a_coordinator_ends_their_roster_rights() -> None:
    r = built()
    r.apply(
        head(NODE, "member.removed", scope="public"),
        MemberRemoved(key=CY, effective={"public": 2}),
    )
    assert r.authorize(head(CY, "member.added", scope="public", seq=1)) is YES
    assert r.authorize(head(CY, "member.added", scope="public", seq=2)) is ENDED


def test_block_applies_from_the_stated_seq_of_the_stated_scope() -> None:
    r = built()
    r.apply(
        head(CY, "member.blocked", scope="public"),
        MemberBlocked(key=BO, effective={"pod": 2, "peers": 1}),
    )
    assert r.authorize(head(BO, scope="pod", seq=1)) is YES
    assert r.authorize(head(BO, scope="pod", seq=2)) is BLOCKED
    assert r.authorize(head(BO, scope="peers", seq=1)) is BLOCKED
    assert r.authorize(head(BO, scope="public", seq=5)) is YES


def test_removal_wins_over_a_block() -> None:
    r = built()
    r.apply(head(CY, "member.blocked", scope="public"), MemberBlocked(key=BO, effective={"pod": 1}))
    r.apply(head(CY, "member.removed", scope="public"), MemberRemoved(key=BO, effective={"pod": 1}))
    assert r.authorize(head(BO, scope="pod", seq=1)) is ENDED


def test_blocked_coordinator_roster_events_are_blocked() -> None:
    r = built()
    r.apply(
        head(NODE, "member.blocked", scope="public"),
        MemberBlocked(key=CY, effective={"public": 1}),
    )
    assert r.authorize(head(CY, "member.added", scope="public")) is BLOCKED


def test_revoked_key_is_valid_through_the_stated_seq() -> None:
    r = built()
    r.apply(
        head(CY, "member.key_revoked", scope="public"),
        MemberKeyRevoked(key=PHONE, valid_through={"pod": 2, "public": 0}),
    )
    assert r.authorize(head(PHONE, scope="pod", seq=2)) is YES
    assert r.authorize(head(PHONE, scope="pod", seq=3)) is ENDED
    assert r.authorize(head(PHONE, scope="public", seq=1)) is ENDED  # 0: nothing in that log
    assert r.authorize(head(PHONE, scope="peers", seq=9)) is YES  # not named
    assert r.authorize(head(ADA, scope="pod", seq=9)) is YES  # the person's own key is fine


# --- apply -----------------------------------------------------------------------------


def test_pod_created_names_the_pod_and_makes_its_key_a_root() -> None:
    r = Roster()
    r.apply(head(ROOT, "pod.created", scope="public"), PodCreated(name="Elm"))
    pod = r.pods[POD]
    assert (pod.created, pod.name, pod.roots) == (True, "Elm", {ROOT: None})


def test_apply_builds_members_nodes_and_devices() -> None:
    pod = built().pods[POD]
    assert pod.node_keys == {NODE}
    assert set(pod.members) == {ADA, BO, CY}
    assert pod.members[CY].role == "coordinator"
    assert pod.devices == {PHONE: ADA}
    assert pod.box_key(ADA) == k(f"box-{ADA}")
    assert pod.box_key(STRANGER) is None


def test_adding_a_member_again_changes_role_and_box_key_but_keeps_their_ends() -> None:
    r = built()
    r.apply(
        head(CY, "member.blocked", scope="public"), MemberBlocked(key=ADA, effective={"pod": 4})
    )
    r.apply(
        head(NODE, "member.added", scope="public", seq=3),  # later than the first: it wins
        MemberAdded(key=ADA, role="coordinator", box_key=k("new-box")),
    )
    member = r.pods[POD].members[ADA]
    assert (member.role_at(1001), member.role_at(1003)) == ("member", "coordinator")
    assert (member.role, member.box_key, member.blocked) == (
        "coordinator",
        k("new-box"),
        {"pod": 4},
    )


def test_removal_and_block_of_someone_unknown_change_nothing() -> None:
    r = built()
    before = msgspec.to_builtins(list(r.pods[POD].members.values()))
    r.apply(
        head(CY, "member.removed", scope="public"),
        MemberRemoved(key=STRANGER, effective={"pod": 1}),
    )
    r.apply(
        head(CY, "member.blocked", scope="public"),
        MemberBlocked(key=STRANGER, effective={"pod": 1}),
    )
    assert msgspec.to_builtins(list(r.pods[POD].members.values())) == before
    assert STRANGER not in r.pods[POD].members


def test_removals_accumulate_per_scope() -> None:
    r = built()
    r.apply(head(CY, "member.removed", scope="public"), MemberRemoved(key=BO, effective={"pod": 5}))
    r.apply(
        head(CY, "member.removed", scope="public", seq=2),
        MemberRemoved(key=BO, effective={"peers": 2}),
    )
    assert r.pods[POD].members[BO].removed == {"pod": 5, "peers": 2}


def test_a_body_less_or_non_roster_body_only_creates_the_pod_entry() -> None:
    r = Roster()
    r.apply(head(ROOT, "member.added", scope="public", pod=POD), None)
    r.apply(head(ADA, pod=k("p2")), NeedPosted(title="t", category="food", urgency="low"))
    assert set(r.pods) == {POD, k("p2")}
    assert r.pods[POD].members == {} and not r.pods[POD].created


def test_person_and_role_of_each_kind_of_key() -> None:
    pod = built().pods[POD]
    assert [pod.person_of(x) for x in (ROOT, NODE, ADA, PHONE, STRANGER)] == [
        ROOT,
        NODE,
        ADA,
        ADA,
        None,
    ]
    assert [pod.role_of(x) for x in (ROOT, NODE, CY, ADA, PHONE, STRANGER)] == [
        "root",
        "node",
        "coordinator",
        "member",
        "member",
        None,
    ]


def test_pod_creates_an_empty_roster_once_and_snapshot_is_independent() -> None:
    r = Roster()
    first = r.pod(POD)
    assert r.pod(POD) is first
    assert first == PodRoster(POD) and first.roots == {POD: None}
    r2 = built()
    snap = r2.snapshot()
    r2.apply(
        head(NODE, "member.added", scope="public"),
        MemberAdded(key=STRANGER, role="member", box_key=k("b")),
    )
    assert STRANGER in r2.pods[POD].members
    assert STRANGER not in snap.pods[POD].members
    ada = snap.pods[POD].members[ADA]
    assert (ada.key, ada.role, ada.box_key, ada.removed) == (ADA, "member", k(f"box-{ADA}"), {})
    assert isinstance(ada, Member)


def test_is_active_follows_revocation_removal_and_blocks() -> None:
    r = built()
    pod = r.pods[POD]
    assert pod.is_active(ROOT) and pod.is_active(NODE)  # the genesis root, the node key
    assert not pod.is_active(STRANGER)
    assert pod.is_active(ADA) and pod.is_active(PHONE)
    r.apply(
        head(CY, "member.key_revoked", scope="public", seq=2),
        MemberKeyRevoked(key=PHONE, valid_through={"pod": 3}),
    )
    assert not r.pods[POD].is_active(PHONE) and r.pods[POD].is_active(ADA)
    r.apply(
        head(CY, "member.blocked", scope="public", seq=3),
        MemberBlocked(key=ADA, effective={"pod": 5}),
    )
    assert not r.pods[POD].is_active(ADA) and r.pods[POD].is_blocked(ADA)
    assert r.pods[POD].blocked_people() == {ADA}
    r.apply(
        head(CY, "member.unblocked", scope="public", seq=4),
        MemberUnblocked(key=ADA, effective={"pod": 9}),
    )
    assert r.pods[POD].is_active(ADA) and not r.pods[POD].blocked_people()
    assert r.authorize(head(ADA, scope="pod", seq=7)) is BLOCKED  # between block and unblock
    assert r.authorize(head(ADA, scope="pod", seq=9)) is YES
    r.apply(
        head(CY, "member.removed", scope="public", seq=5),
        MemberRemoved(key=BO, effective={"pod": 1}),
    )
    assert not r.pods[POD].is_active(BO) and r.pods[POD].is_removed(BO)
    r.apply(head(ROOT, "pod.root_rotated", scope="public", seq=7), PodRootRotated(new_key=NEW_ROOT))
    assert not r.pods[POD].is_active(ROOT) and r.pods[POD].is_active(NEW_ROOT)


def test_adding_newcomers_one_by_one_gives_what_a_full_build_gives() -> None:
    """``admit`` takes a shortcut for a new member's ``member.added``: it must not differ."""
    from node.roster import build

    r = built()
    for i in range(5):
        r.apply(
            head(CY if i % 2 else NODE, "member.added", scope="public", seq=10 + i),
            MemberAdded(key=k(f"new{i}"), role="coordinator" if i == 3 else "member", box_key=BO),
        )
    pod = r.pods[POD]
    full = build(POD, pod.events)
    assert (pod.counted, pod.granted, pod.known, pod.ever_admin) == (
        full.counted,
        full.granted,
        full.known,
        full.ever_admin,
    )
    assert pod.members == full.members and pod.devices == full.devices
