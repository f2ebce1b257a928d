"""Nothing personal where it does not belong: not in the node's log, not in /metrics, not in
error messages — checked on a real `kith serve` with events that carry a marker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import websockets

from protocol.envelope import encode_envelope
from tests.integration.conftest import Pod, Poster, member

MARKER = "MARKER-9c1e-Ada-Okafor-12-Elm-St"


def test_a_marker_in_bodies_and_bad_input_never_reaches_logs_metrics_or_errors(
    pod: Pod, tmp_path: Path
) -> None:
    pod.start()
    pod.follow_log()
    ada = member(pod, tmp_path, "ada")
    meta = httpx.get(pod.url + "/.well-known/kith").json()
    poster = Poster(pod.url, ada, meta["pod"])
    answers: list[str] = []

    # accepted events with the marker in every free-text field
    poster.post(
        [
            poster.sign(
                "need.posted",
                {
                    "title": f"Lift for {MARKER}",
                    "category": "ride",
                    "urgency": "high",
                    "details": f"call {MARKER}",
                    "area": "Elm",
                },
            )
        ]
    )
    # refused or without effect: the marker in a bad value, an unknown field, a bad category,
    # a claim naming nothing, and a body that is not JSON
    bad = [
        poster.sign(
            "need.posted", {"title": "x" * 121 + MARKER, "category": "ride", "urgency": "high"}
        ),
        poster.sign("need.posted", {"title": "x", "category": MARKER, "urgency": "high"}),
        poster.sign("need.posted", {"title": "x", "category": "ride", "urgency": MARKER}),
        poster.sign("claim.made", {"need": MARKER}),
    ]
    for env in bad:
        response = httpx.post(pod.url + "/v1/events", content=encode_envelope(env))
        answers.append(response.text)
    for raw in (f'{{"events": [{MARKER}]}}', f'{{"head": "{MARKER}", "sig": "x"}}'):
        answers.append(httpx.post(pod.url + "/v1/events", content=raw).text)
    answers.append(httpx.get(pod.url + "/v1/needs", params={"status": MARKER}).text)
    answers.append(httpx.get(pod.url + f"/v1/needs/{MARKER}").text)

    async def over_the_stream() -> None:
        async with websockets.connect(pod.url.replace("http", "ws") + "/v1/stream") as ws:
            await ws.recv()  # CHALLENGE
            for frame in (
                json.dumps(["EVENT", {"head": MARKER, "sig": MARKER, "body": MARKER}]),
                json.dumps(["SUB", "s1", {"filters": [{"kinds": [MARKER]}]}]),  # its id is echoed
                f"not json {MARKER}",
            ):
                await ws.send(frame)
                answers.append(str(await asyncio.wait_for(ws.recv(), 10)))

    asyncio.run(over_the_stream())
    answers.append(httpx.get(pod.url + "/metrics").text)
    pod.stop()
    log = "".join(pod.log)
    assert "listening on" in log  # the log was read
    assert MARKER not in log
    for answer in answers:
        assert MARKER not in answer, answer[:300]
