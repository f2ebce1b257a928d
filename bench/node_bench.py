"""Node benchmarks (issue 4): ingest over HTTP vs the raw pipeline, query, rebuild, RSS.

Every figure is printed beside a baseline measured in the same run:
- HTTP batches vs the raw pipeline (verify + decode + insert with the real indices and
  projection writes, in-process, no server);
- concurrent single posts vs a bare Litestar POST handler under the same load;
- a 10k-event query at 200k stored, projection rebuild rate and peak RSS.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import ROOT, RawHTTP, Server, batches, encoded, free_port, presign, wait_up
from node.client import KithClient

N = 20_000
BIG = 200_000
CONCURRENCY = 32


async def raw_pipeline(server: Server, raw: list[bytes]) -> float:
    """The same events through Ingestor.submit on a copy of the server's fresh database."""
    from node.app import Node
    from node.datadir import DataDir
    from protocol.validate import CLIENT

    copy = Path(tempfile.mkdtemp(prefix="kith-raw-")) / "pod"
    shutil.copytree(server.dir, copy)
    node = Node(DataDir(copy))
    await node.start()
    t0 = time.perf_counter()
    for i in range(0, len(raw), 500):
        results = await node.ingest.submit(raw[i : i + 500], CLIENT)
        assert all(r.ok for r in results), results[:3]
    took = time.perf_counter() - t0
    await node.stop()
    return len(raw) / took


def http_batches(url: str, raw: list[bytes]) -> float:
    with httpx.Client(timeout=120) as client:
        t0 = time.perf_counter()
        for body in batches(raw, 500):
            results = client.post(url + "/v1/events", content=body).json()["results"]
            assert all(r["ok"] for r in results), results[:3]
        return len(raw) / (time.perf_counter() - t0)


async def concurrent_singles(port: int, raw: list[bytes], path: str = "/v1/events") -> float:
    """``CONCURRENCY`` keep-alive connections, each posting one event per request."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for item in raw:
        queue.put_nowait(item)

    async def worker() -> None:
        conn = RawHTTP(port)
        try:
            while not queue.empty():
                status, data = await conn.post(path, queue.get_nowait())
                assert status == 200 and b'"ok":true' in data, data[:200]
        finally:
            await conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return len(raw) / (time.perf_counter() - t0)


BARE = """
import msgspec
from litestar import Litestar, Request, post
@post("/bare", status_code=200)
async def bare(request: Request) -> dict:
    data = await request.body()
    return {"results": [{"id": str(len(data)), "ok": True, "reason": None}]}
app = Litestar([bare])
"""


def bare_server() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    path = Path(tempfile.mkdtemp()) / "bare_app.py"
    path.write_text(BARE)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bare_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=path.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_up(f"http://127.0.0.1:{port}/schema")
    return proc, port


def main() -> None:
    print(f"# node benchmark — {N} events per ingest run, {BIG} for query/rebuild/RSS")
    server = Server(members=16)
    raw = encoded(presign(server.keys, server.pod, N))
    raw_rate = asyncio.run(raw_pipeline(server, raw))
    server.start()
    batch_rate = http_batches(server.url, raw)
    server.stop()
    print(
        f"ingest, HTTP batches of 500:   {batch_rate:7.0f} ev/s | raw pipeline (no server)"
        f" {raw_rate:7.0f} ev/s | ratio {batch_rate / raw_rate:.2f} (target >= 0.80)"
    )

    singles = Server(members=CONCURRENCY)
    singles.start()
    single_envs = encoded(presign(singles.keys, singles.pod, N))
    single_rate = asyncio.run(concurrent_singles(singles.port, single_envs))
    singles.stop()
    bare, bare_port = bare_server()
    bare_rate = asyncio.run(concurrent_singles(bare_port, single_envs, "/bare"))
    bare.terminate()
    bare.wait()
    print(
        f"ingest, {CONCURRENCY} conns of single posts: {single_rate:6.0f} ev/s | bare Litestar"
        f" POST {bare_rate:7.0f} req/s | ratio {single_rate / bare_rate:.2f} (target >= 0.70)"
    )

    big = Server(members=16)
    big.start()
    idle_rss = big.rss_now_mib()
    raw_big = encoded(presign(big.keys, big.pod, BIG))
    t0 = time.perf_counter()
    http_batches(big.url, raw_big)
    fill = time.perf_counter() - t0
    del raw_big
    token = KithClient(big.url, big.keys[0]).token()
    with httpx.Client(timeout=60, headers={"authorization": "Kith " + token}) as http:
        times = []
        for _ in range(7):
            t0 = time.perf_counter()
            body = http.get(
                big.url + "/v1/events", params={"kinds": "offer.*", "limit": 10000}
            ).content
            times.append(time.perf_counter() - t0)
            assert body.count(b'"cursor":') == 10000
    times.sort()
    print(
        f"query 10k offer.* events at {BIG} stored: median {times[3] * 1000:.0f} ms, best"
        f" {times[0] * 1000:.0f} ms, over HTTP (target < 100 ms)"
    )
    print(
        f"fill {BIG} events over HTTP: {fill:.0f}s ({BIG / fill:.0f} ev/s); RSS idle"
        f" {idle_rss:.0f} MiB, peak {big.rss_peak_mib():.0f} MiB (target < 120 MiB, flat)"
    )
    big.stop()
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "node.cli", "verify", "--rebuild", "--dir", str(big.dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - t0
    verdict = out.stdout.strip().splitlines()[-1] if out.stdout else out.stderr[-200:]
    print(
        f"verify + projection rebuild of {BIG} events: {took:.0f}s"
        f" ({BIG / took:.0f} ev/s): {verdict}"
    )


if __name__ == "__main__":
    main()
