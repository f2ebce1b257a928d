"""A member reads their pod and names people from the command line (issue 14, item 5):
``kith key show``, people as keys, key files or names, ids and enums refused in words,
``kith needs|offers|timebank|token`` — each through the real ``kith`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from node.cli import main
from node.client import KithClient
from node.datadir import read_key_file
from protocol.kinds import KNOWN_CATEGORIES
from tests.node.conftest import Served


def kith(*args: str) -> subprocess.CompletedProcess[str]:
    """The real ``kith`` command (this tree: PYTHONPATH is kept)."""
    return subprocess.run(
        [sys.executable, "-m", "node.cli", *args], capture_output=True, text=True, timeout=60
    )


def new_key(path: Path) -> Path:
    assert main(["key", "new", "--out", str(path)]) == 0
    return path


@dataclass
class Pod:
    """A served pod whose members have display names."""

    served: Served
    keys: dict[str, Path]

    def public(self, who: str) -> str:
        return read_key_file(self.keys[who]).public

    def client(self, who: str) -> KithClient:
        return KithClient(self.served.url, read_key_file(self.keys[who]).signing_key())

    def kith(self, who: str, *args: str) -> subprocess.CompletedProcess[str]:
        return kith(*args, "--key", str(self.keys[who]), "--url", self.served.url)


@pytest.fixture
def pod(served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Pod:
    names = {"ada": "Ada", "bo": "Bo", "sam1": "Sam", "sam2": "sam"}
    keys = {who: new_key(tmp_path / f"{who}.key") for who in names}
    for key in keys.values():
        argv = ["member", "add", "--dir", str(served.data.path), "--key-file", str(key)]
        assert main([*argv, "--url", served.url]) == 0
    p = Pod(served, keys)
    for who, name in names.items():
        assert p.client(who).post("profile.set", {"name": name})["ok"]
    capsys.readouterr()
    return p


# --- kith key show ------------------------------------------------------------------------


def test_key_show_prints_the_public_parts_and_warns_of_a_readable_file(tmp_path: Path) -> None:
    path = new_key(tmp_path / "me.key")
    key = read_key_file(path)
    shown = kith("key", "show", str(path))
    assert shown.returncode == 0 and shown.stderr == ""
    assert shown.stdout.splitlines() == [
        f"{path}: a Kith key file (kith-key/1)",
        f"  public key (Ed25519, signs your events):  {key.public}",
        f"  box key (X25519, opens what is sealed):    {key.box_public}",
    ]
    os.chmod(path, 0o644)
    shown = kith("key", "show", str(path))
    assert shown.returncode == 0
    assert shown.stderr.splitlines() == [
        f"kith: warning: {path} is readable by others (mode 0644): run `chmod 600 {path}`"
    ]
    assert key.seed not in shown.stdout + shown.stderr
    assert key.box_seed not in shown.stdout + shown.stderr


def test_key_show_of_a_file_that_is_no_key(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    shown = kith("key", "show", str(path))
    assert shown.returncode == 1
    assert shown.stderr.startswith(f"kith: error: {path} is not a valid Kith key file (")
    assert len(shown.stderr.splitlines()) == 1


# --- ids and enums ------------------------------------------------------------------------


def test_an_id_that_is_none_says_so_without_a_regex(tmp_path: Path) -> None:
    key = str(new_key(tmp_path / "me.key"))
    done = kith("post", "claim", "--need", "bogus", "--key", key, "--url", "http://127.0.0.1:9")
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        "kith post claim: error: argument --need: not an event id: bogus"
        " (an id is the 43 characters the node printed for it, e.g. in `kith needs`)"
    )
    assert "regex" not in done.stderr and "[A-Za-z" not in done.stderr


def test_categories_and_urgencies_are_listed_in_help_and_in_the_error(tmp_path: Path) -> None:
    key = str(new_key(tmp_path / "me.key"))
    argv = ["post", "need", "--title", "Soup", "--key", key, "--url", "http://127.0.0.1:9"]
    done = kith(*argv, "--category", "Food")
    assert done.returncode == 2
    allowed = ", ".join(f"'{c}'" for c in KNOWN_CATEGORIES)
    assert done.stderr.splitlines()[-1] == (
        "kith post need: error: argument --category: invalid choice: 'Food'"
        f" (choose from {allowed})"
    )
    done = kith(*argv, "--category", "food", "--urgency", "asap")
    assert done.stderr.splitlines()[-1] == (
        "kith post need: error: argument --urgency: invalid choice: 'asap'"
        " (choose from 'low', 'normal', 'high', 'urgent')"
    )
    helped = " ".join(kith("post", "need", "--help").stdout.split())
    assert f"one of: {', '.join(KNOWN_CATEGORIES)} (another pod's newer categories" in helped
    assert "one of: low, normal, high, urgent (default normal)" in helped


# --- people by key, key file or name ------------------------------------------------------


def test_hours_name_people_by_display_name_or_key_file(pod: Pod) -> None:
    argv = ["post", "hours", "--minutes", "30", "--giver", "ada", "--receiver"]
    done = pod.kith("ada", *argv, str(pod.keys["bo"]))
    assert done.returncode == 0, done.stderr
    entry = done.stdout.split()[-1]
    [event] = pod.client("ada").get("/v1/events", ids=entry)["events"]
    body = json.loads(event["envelope"]["body"])
    assert (body["giver"], body["receiver"]) == (pod.public("ada"), pod.public("bo"))


def test_a_name_two_people_share_is_not_guessed(pod: Pod) -> None:
    done = pod.kith(
        "ada", "post", "hours", "--minutes", "30", "--giver", "Ada", "--receiver", "SAM"
    )
    assert done.returncode == 1 and done.stdout == ""
    both = ", ".join(sorted([pod.public("sam1"), pod.public("sam2")]))
    assert done.stderr.splitlines() == [
        f"kith: error: --receiver 'SAM': 2 members have that name ({both});"
        " give one of these keys instead"
    ]


def test_an_unknown_name_says_so(pod: Pod) -> None:
    done = pod.kith("ada", "report", "--about", "Zed", "--text", "x")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "kith: error: --about 'Zed': not a key, not a key file, and no member of this pod has"
        " that name (`kith member list` shows the members' keys)"
    ]


def test_member_commands_take_a_name(pod: Pod) -> None:
    done = pod.kith("ada", "member", "devices", "Bo")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"{pod.public('bo')} (member, active): 0 linked device(s)"


# --- kith needs, offers, timebank, token --------------------------------------------------


def test_a_member_reads_needs_offers_and_the_time_bank(pod: Pod) -> None:
    need = pod.client("ada").post(
        "need.posted", {"title": "Soup for two", "category": "food", "urgency": "high"}
    )["id"]
    offer = pod.client("bo").post(
        "offer.posted", {"title": "Rides to the clinic", "category": "ride", "capacity": 2}
    )["id"]
    done = pod.kith("bo", "needs")
    assert done.returncode == 0, done.stderr
    assert [" ".join(line.split()) for line in done.stdout.splitlines()] == [
        "ID STATUS WHAT BY TITLE",
        f"{need} open food/high Ada Soup for two",
    ]
    done = pod.kith("ada", "offers")
    assert [" ".join(line.split()) for line in done.stdout.splitlines()] == [
        "ID STATUS CATEGORY CAPACITY BY TITLE",
        f"{offer} open ride 2 Bo Rides to the clinic",
    ]
    assert json.loads(pod.kith("ada", "needs", "--json").stdout)[0]["id"] == need
    assert pod.kith("ada", "needs", "--status", "fulfilled").stdout.startswith("No needs here.")

    given = {"giver": pod.public("bo"), "receiver": pod.public("ada"), "minutes": 90}
    first = pod.client("bo").post("hours.logged", given)["id"]
    assert pod.client("ada").post("hours.confirmed", {"entry": first})["ok"]
    second = pod.client("bo").post("hours.logged", {**given, "minutes": 45})["id"]
    done = pod.kith("ada", "timebank")
    assert done.returncode == 0, done.stderr
    lines = [" ".join(line.split()) for line in done.stdout.splitlines()]
    assert lines[0] == "PERSON BALANCE GIVEN RECEIVED"
    assert sorted(lines[1:3]) == ["Ada -1:30 0:00 1:30", "Bo +1:30 1:30 0:00"]
    assert lines[3:] == [
        "Your entries waiting for a confirmation:",
        f"{second} Bo gave Ada 0:45: confirm with `kith post confirm --entry {second}`",
    ]
    mine = [" ".join(line.split()) for line in pod.kith("bo", "timebank").stdout.splitlines()]
    assert mine[-1] == f"{second} Bo gave Ada 0:45: waiting for Ada to confirm"


def test_a_token_for_curl(pod: Pod) -> None:
    done = pod.kith("ada", "token")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    answer = httpx.get(pod.served.url + "/v1/timebank", headers={"authorization": f"Kith {token}"})
    assert answer.status_code == 200
    key, url = pod.keys["ada"], pod.served.url
    assert done.stderr.splitlines() == [
        "kith: this token works for 2 minutes, on this node only; e.g. curl -H"
        f' "Authorization: Kith $(kith token --key {key} --url {url})" {url}/v1/timebank'
    ]


def test_the_time_bank_needs_a_key() -> None:
    done = kith("timebank", "--url", "http://127.0.0.1:9")
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        "kith timebank: error: the following arguments are required: --key"
    )


def test_needs_without_a_key_are_the_public_ones(pod: Pod) -> None:
    pod.client("ada").post(
        "need.posted", {"title": "Members only", "category": "food", "urgency": "low"}
    )
    public = pod.client("bo").post(
        "need.posted", {"title": "Anyone", "category": "goods", "urgency": "low"}, scope="public"
    )["id"]
    done = kith("needs", "--url", pod.served.url)
    assert done.returncode == 0, done.stderr
    assert [" ".join(line.split()) for line in done.stdout.splitlines()] == [
        "ID STATUS WHAT BY TITLE",
        f"{public} open goods/low {pod.public('bo')[:8]} Anyone",
    ]


# --- kith post profile ----------------------------------------------------------------------


def test_a_member_names_themself_with_post_profile(pod: Pod) -> None:
    done = pod.kith("bo", "post", "profile", "--name", "Bo Lin", "--language", "es")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("profile.set recorded")
    hours = ["post", "hours", "--minutes", "15", "--giver", "ada", "--receiver", "bo lin"]
    done = pod.kith("ada", *hours)
    assert done.returncode == 0, done.stderr
    [event] = pod.client("ada").get("/v1/events", ids=done.stdout.split()[-1])["events"]
    assert json.loads(event["envelope"]["body"])["receiver"] == pod.public("bo")


def test_an_empty_profile_or_a_bad_language_is_refused_in_words(pod: Pod) -> None:
    done = pod.kith("bo", "post", "profile")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "kith: error: a profile needs something in it:"
        " give --name (and --pronouns, --language, --about)"
    )
    done = pod.kith("bo", "post", "profile", "--language", "not a tag")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "kith post profile: error: argument --language: not a language tag: not a tag"
        " (e.g. en, es, pt-BR)"
    )
