"""`kith export` and `kith import` as a volunteer runs them: restoring a pod from its export
into a new directory, and the coordinator formats (CSV, iCalendar, ValueFlows JSON-LD)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import icalendar
import pytest
from pyld import jsonld

from node.app import Node
from node.datadir import DataDir, read_key_file
from node.demo import DEMO_PEOPLE, NEEDS, OFFERS, _Signer, populate
from node.exports.tables import CLAIMS_HEADER, HOURS_HEADER, NEEDS_HEADER, OFFERS_HEADER
from protocol.tokens import make_token
from tests.integration.conftest import Pod, free_port, kith

VF = "https://w3id.org/valueflows/ont/vf#"
OM2 = "http://www.ontology-of-units-of-measure.org/resource/om-2/"
HOUR = 3_600_000


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pod made by `kith init`, filled by node/demo.py, plus one need with a time window."""
    base = tmp_path_factory.mktemp("demo")
    kith("init", "--dir", str(base / "pod"), "--name", "Elm Street", "--port", str(free_port()))

    async def fill() -> None:
        node = Node(DataDir(base / "pod"))
        await node.start()
        try:
            people = await populate(node)
            start = (int(time.time()) // 3600 + 24) * HOUR
            body = {
                "title": "Help moving a sofa",
                "category": "other",
                "urgency": "normal",
                "window": {"start": start, "end": start + 2 * HOUR},
            }
            await _Signer(node).post(people["Bao"].signing_key(), "need.posted", body)
        finally:
            await node.stop()

    asyncio.run(fill())
    return base / "pod"


def export_jsonl(pod: Path, out: Path) -> Path:
    kith("export", "--dir", str(pod), "--out", str(out))
    return out


def projection_hash(pod: Path) -> str:
    out = kith("verify", "--dir", str(pod)).stdout.splitlines()
    assert out[-1] == "OK"
    return next(line for line in out if line.startswith("projection hash:"))


def csv_export(pod: Path, out: Path) -> dict[str, list[list[str]]]:
    kith("export", "--dir", str(pod), "--format", "csv", "--out", str(out))
    return {p.name: list(csv.reader(io.StringIO(p.read_text()))) for p in out.iterdir()}


# --- restore ------------------------------------------------------------------------------


def test_an_export_restores_its_pod_into_a_new_directory_with_the_old_node_key(
    demo: Path, tmp_path: Path
) -> None:
    dump = export_jsonl(demo, tmp_path / "elm.jsonl")
    count = len(dump.read_bytes().splitlines())
    pod = DataDir(demo).config().pod
    new = tmp_path / "restored"
    proc = kith(
        "import", str(dump), "--quiet", "--dir", str(new), "--node-key", str(demo / "node.key")
    )
    assert proc.stdout.splitlines() == [
        f"Restored pod 'Elm Street' ({pod}) into {new}: stored: {count}",
        f"Start the node with: kith serve --dir {new}",
    ]
    config = DataDir(new).config()
    assert (config.pod, config.name, config.node_key) == (
        pod,
        "Elm Street",
        read_key_file(demo / "node.key").public,
    )
    assert not (new / "root.key").exists()  # the root key stays where its owner keeps it
    # The same events make the same read models: verify's hash, and every CSV table.
    assert projection_hash(new) == projection_hash(demo)
    assert csv_export(new, tmp_path / "after") == csv_export(demo, tmp_path / "before")
    # … and both nodes answer the same needs, offers and time bank over HTTP.
    node_key = read_key_file(demo / "node.key")
    token = make_token(
        node_key.signing_key(),
        purpose="http",
        node_key=node_key.public,
        now_ms=int(time.time() * 1000),
    )
    answers = []
    for directory in (demo, new):
        served = Pod(directory, free_port())
        served.start()
        try:
            answers.append(
                [
                    httpx.get(served.url + path, headers={"authorization": f"Kith {token}"}).json()
                    for path in ("/v1/needs?limit=100", "/v1/offers?limit=100", "/v1/timebank")
                ]
            )
        finally:
            served.stop()
    assert answers[0] == answers[1]
    needs, offers, bank = answers[0]
    assert (len(needs), len(offers), bank["total_minutes_balance"]) == (9, 4, 0)
    assert len(bank["members"]) >= 2 and len(bank["pending"]) == 1


def test_a_restore_with_the_root_key_attests_a_new_node_key(demo: Path, tmp_path: Path) -> None:
    dump = export_jsonl(demo, tmp_path / "elm.jsonl")
    new = tmp_path / "restored"
    proc = kith(
        "import", str(dump), "--quiet", "--dir", str(new), "--root-key", str(demo / "root.key")
    )
    node_key = read_key_file(new / "node.key").public
    assert node_key != read_key_file(demo / "node.key").public
    assert proc.stdout.splitlines()[1] == f"  new node key: {node_key} (attested by the root key)"
    assert projection_hash(new) == projection_hash(demo)
    again = export_jsonl(new, tmp_path / "again.jsonl").read_bytes().splitlines()
    last = json.loads(json.loads(again[-1])["head"])
    assert (last["kind"], last["author"]) == ("node.key", DataDir(demo).config().pod)
    assert len(again) == len(dump.read_bytes().splitlines()) + 1


def test_an_export_of_another_pod_is_refused_and_says_how_to_restore_it(
    demo: Path, tmp_path: Path
) -> None:
    dump = export_jsonl(demo, tmp_path / "elm.jsonl")
    other = tmp_path / "oak"
    kith("init", "--dir", str(other), "--name", "Oak", "--port", str(free_port()))
    scopes = [
        json.loads(json.loads(line)["head"])["scope"] for line in dump.read_bytes().splitlines()
    ]
    pod_events = scopes.count("pod")
    assert pod_events > 0
    proc = kith("import", str(dump), "--dir", str(other), "--quiet", check=False)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"kith: error: {dump} is an export of pod {DataDir(demo).config().pod}; {other} holds"
        f" pod {DataDir(other).config().pod}, which cannot take its {pod_events} pod events."
        " To restore"
        f" that pod, import into a new directory: `kith import {dump} --dir NEW-DIR --node-key"
        " OLD-DIR/node.key` (or --root-key ROOT.key for a new node key)"
    ]
    assert len(export_jsonl(other, tmp_path / "oak.jsonl").read_bytes().splitlines()) == 2


def test_a_restore_without_a_key_says_which_keys_it_takes(demo: Path, tmp_path: Path) -> None:
    dump = export_jsonl(demo, tmp_path / "elm.jsonl")
    new = tmp_path / "restored"
    proc = kith("import", str(dump), "--quiet", "--dir", str(new), check=False)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"kith: error: {new} holds no pod yet: to restore pod {DataDir(demo).config().pod}"
        f" from {dump} there, give the old node's key (--node-key OLD-DIR/node.key) or the"
        " pod's root key (--root-key ROOT.key, which attests a new node key)"
    ]
    assert not new.exists()


def test_a_restore_with_another_pods_node_key_leaves_nothing_behind(
    demo: Path, tmp_path: Path
) -> None:
    dump = export_jsonl(demo, tmp_path / "elm.jsonl")
    other = tmp_path / "oak"
    kith("init", "--dir", str(other), "--name", "Oak", "--port", str(free_port()))
    new = tmp_path / "restored"
    key = other / "node.key"
    proc = kith(
        "import", str(dump), "--quiet", "--dir", str(new), "--node-key", str(key), check=False
    )
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"kith: error: {key} is not a node key of pod {DataDir(demo).config().pod}: give that"
        " pod's node.key, or --root-key ROOT.key to attest a new one"
    ]
    assert not new.exists()


# --- coordinator formats ------------------------------------------------------------------


def test_export_help_lists_its_formats() -> None:
    out = kith("export", "--help").stdout
    assert "--format {jsonl,csv,ics,valueflows}" in out


def test_csv_is_four_tables_in_a_zip(demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "elm.zip"
    proc = kith("export", "--dir", str(demo), "--format", "csv", "--out", str(out))
    assert proc.stderr == f"exported 9 needs, 4 offers, 5 claims and 3 hours entries to {out}\n"
    assert out.stat().st_mode & 0o777 == 0o600
    with zipfile.ZipFile(out) as z:
        assert z.namelist() == ["needs.csv", "offers.csv", "claims.csv", "hours.csv"]
        tables = {
            name: list(csv.DictReader(io.StringIO(z.read(name).decode()))) for name in z.namelist()
        }
        headers = {
            name: next(csv.reader(io.StringIO(z.read(name).decode()))) for name in z.namelist()
        }
    assert headers == {
        "needs.csv": list(NEEDS_HEADER),
        "offers.csv": list(OFFERS_HEADER),
        "claims.csv": list(CLAIMS_HEADER),
        "hours.csv": list(HOURS_HEADER),
    }
    needs, offers, claims, hours = (
        tables[n] for n in ("needs.csv", "offers.csv", "claims.csv", "hours.csv")
    )
    assert [n["Title"] for n in needs] == [title for title, *_ in NEEDS] + ["Help moving a sofa"]
    assert {n["Asked by"] for n in needs} <= set(DEMO_PEOPLE)
    assert sorted(n["Status"] for n in needs).count("fulfilled") == 3
    sofa = needs[-1]
    assert (sofa["Asked by"], sofa["Scope"], sofa["Status"]) == ("Bao", "pod", "open")
    assert sofa["Window start"].endswith(":00:00Z") and sofa["Window end"] > sofa["Window start"]
    assert [o["Title"] for o in offers] == [title for title, *_ in OFFERS]
    assert {c["Status"] for c in claims} == {"accepted"}
    assert {c["Need"] for c in claims} <= {title for title, *_ in NEEDS}
    assert all(c["Claimed by"] in DEMO_PEOPLE for c in claims)
    assert sorted(h["Status"] for h in hours) == ["confirmed", "confirmed", "pending"]
    for h in hours:
        assert f"{int(h['Minutes']) / 60:.2f}" == h["Hours"]
        assert h["Giver"] in DEMO_PEOPLE and h["Receiver"] in DEMO_PEOPLE


def test_csv_needs_a_zip_or_a_directory(demo: Path) -> None:
    proc = kith("export", "--dir", str(demo), "--format", "csv", check=False)
    assert proc.returncode == 1
    assert proc.stderr == (
        "kith: error: a CSV export is 4 files (needs.csv, offers.csv, claims.csv, hours.csv):"
        " give --out FILE.zip or --out DIRECTORY\n"
    )


def test_ics_is_the_pods_calendar(demo: Path) -> None:
    proc = kith("export", "--dir", str(demo), "--format", "ics")
    assert proc.stderr == "exported 1 calendar entries\n"
    cal = icalendar.Calendar.from_ical(proc.stdout)
    (event,) = cal.walk("VEVENT")
    assert str(event["summary"]) == "Need: Help moving a sofa"
    assert str(cal["x-wr-calname"]) == "Elm Street"


def _offline_loader(url: str, options: dict[str, Any]) -> Any:
    raise AssertionError(f"the document must expand without fetching {url}")


def test_valueflows_expands_to_vf_and_om2_terms_only(demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "elm.jsonld"
    proc = kith("export", "--dir", str(demo), "--format", "valueflows", "--out", str(out))
    document = json.loads(out.read_text())
    assert proc.stderr == f"exported {len(document['@graph'])} ValueFlows objects\n"
    expanded = jsonld.expand(document, {"documentLoader": _offline_loader})
    assert len(expanded) == len(document["@graph"])

    context = document["@context"]

    def iri(term: str) -> str:
        definition = context[term]
        prefix, local = (definition if isinstance(definition, str) else definition["@id"]).split(
            ":", 1
        )
        return str(context[prefix]) + local

    def check(node: dict[str, Any], compact: dict[str, Any]) -> None:
        # Nothing dropped: a term the context did not define would vanish from the expansion.
        assert len(node) == len(compact), (node, compact)
        for term, value in compact.items():
            if term == "@id":
                assert node["@id"] == value
            elif term == "@type":
                assert node["@type"] == [iri(value)] and iri(value).startswith(VF)
            else:
                key = iri(term)
                assert key.startswith((VF, OM2)), term  # every property a vf: or om2: term
                assert key in node, term
                if isinstance(value, dict):
                    check(node[key][0], value)

    for node, compact in zip(expanded, document["@graph"], strict=True):
        check(node, compact)
    actions = {a["@id"] for n in expanded for a in n.get(VF + "action", [])}
    assert actions == {VF + "deliverService"}

    types: dict[str, int] = {}
    for node in expanded:
        for t in node["@type"]:
            types[t.removeprefix(VF)] = types.get(t.removeprefix(VF), 0) + 1
    # 8 people and the pod; 9 needs and 4 offers; 5 accepted claims; 3 fulfilments and 2
    # confirmed hours entries (the pending one is no economic event yet).
    assert types == {
        "Organization": 1,
        "Person": len(DEMO_PEOPLE),
        "Intent": 13,
        "Commitment": 5,
        "EconomicEvent": 5,
    }
    quantities = [
        node[VF + "resourceQuantity"][0] for node in expanded if VF + "resourceQuantity" in node
    ]
    assert len(quantities) == 5
    for quantity in quantities:
        assert quantity[OM2 + "hasUnit"] == [{"@id": OM2 + "hour"}]
        assert quantity[OM2 + "hasNumericalValue"][0]["@type"].endswith("#double")
    receivers = [n for n in expanded if VF + "receiver" in n and n["@type"] == [VF + "Intent"]]
    providers = [n for n in expanded if VF + "provider" in n and n["@type"] == [VF + "Intent"]]
    assert (len(receivers), len(providers)) == (9, 4)
