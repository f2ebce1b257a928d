"""The network-namespace lab itself: real namespaces, real `kith serve`, real sockets.

Three hosts in a line h0–h1–h2. Every probe runs inside a lab host and targets only the lab's
own addresses; the pytest process talks to hosts only over their management links.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.netns import KithHost, NetLab, NetLabError, require_netns

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parents[2]
ECHO_PORT = 9000
HTTP_PORT = 9001

# One HTTP GET from inside a host: prints {"status": …} or {"error": …, "errno": …}.
# http.client never consults proxy variables, so it goes exactly where it is told.
GET = """
import http.client, json, sys
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
try:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn.request("GET", "/healthz")
    print(json.dumps({"status": conn.getresponse().status}))
    conn.close()
except OSError as e:
    print(json.dumps({"error": type(e).__name__, "errno": e.errno}))
"""

# The smallest HTTP server with a /healthz, where a whole node is not the point.
HEALTHZ_SERVER = """
import http.server, sys
class Healthy(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("0.0.0.0", int(sys.argv[1])), Healthy).serve_forever()
"""

ECHO_SERVER = """
import socket, sys
srv = socket.create_server(("0.0.0.0", int(sys.argv[1])))
while True:
    conn, _ = srv.accept()
    try:
        while data := conn.recv(65536):
            conn.sendall(data)
    except OSError:
        pass
    conn.close()
"""

# A TCP client driven line by line on stdin: "send WORD" or "recv SECONDS"; one answer line each.
TCP_CLIENT = """
import socket, sys, time
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
print("connected", flush=True)
for line in sys.stdin:
    cmd, arg = line.split()
    start = time.monotonic()
    try:
        if cmd == "send":
            sock.sendall(arg.encode())
            out = "sent"
        else:
            sock.settimeout(float(arg))
            data = sock.recv(100)
            out = "got " + data.decode() if data else "eof"
    except OSError as e:
        out = f"{type(e).__name__} {e.errno}"
    print(out, round(time.monotonic() - start, 3), flush=True)
sock.close()
"""

# A stream subscriber: prints "live" once subscribed, then when and how the connection ended.
WS_WATCHER = """
import sys, time
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
with connect(sys.argv[1], proxy=None, open_timeout=5, close_timeout=1) as ws:
    ws.send('["SUB", "watch", {"filters": [{"kinds": ["need.*"]}], "after": null}]')
    while not ws.recv(timeout=5).startswith('["LIVE"'):
        pass
    print("live", flush=True)
    try:
        ws.recv(timeout=20)
        print("frame", time.monotonic(), flush=True)
    except ConnectionClosed:
        print("closed", time.monotonic(), flush=True)
    except TimeoutError:
        print("timeout", time.monotonic(), flush=True)
"""


class Lines:
    """Reads a child's stdout line by line, each read bounded by a timeout."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        self.buf = b""

    def next(self, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            assert left > 0, f"no line within {timeout} s (so far {self.buf!r})"
            if select.select([self.fd], [], [], left)[0]:
                chunk = os.read(self.fd, 4096)
                assert chunk, f"the process ended (so far {self.buf!r})"
                self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode()


def get_from(lab: NetLab, i: int, host: str, port: int, timeout: float = 2.0) -> dict[str, object]:
    """GET http://host:port/healthz from inside lab host i."""
    proc = lab.spawn(
        i, [sys.executable, "-c", GET, host, str(port), str(timeout)], stdout=subprocess.PIPE
    )
    out, _ = proc.communicate(timeout=timeout + 10)
    result: dict[str, object] = json.loads(out)
    return result


def wait_tcp(host: str, port: int, timeout: float = 10.0) -> None:
    """Wait until something listens on host:port (a lab management address)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on {host}:{port}"
            time.sleep(0.05)


def gone(pid: int, timeout: float = 5.0) -> bool:
    """Whether the process has ended (a zombie awaiting its reaper counts as ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return True
        time.sleep(0.02)
    return False


def lab_leftovers(token: str) -> list[str]:
    """Namespaces and root-namespace links of the lab with this token that still exist."""
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, timeout=10)
    return [line for line in (netns.stdout + links.stdout).splitlines() if token in line]


@pytest.fixture
def line() -> Iterator[NetLab]:
    require_netns()
    with NetLab(3) as lab:
        lab.link(0, 1)
        lab.link(1, 2)
        yield lab


def test_a_line_reaches_neighbours_only(line: NetLab, tmp_path: Path) -> None:
    b = KithHost(line, 1, tmp_path / "b")
    b.init("Pod B")
    b.start(wait=False)
    line.spawn(2, [sys.executable, "-c", HEALTHZ_SERVER, str(HTTP_PORT)])  # a target in h2
    b.wait_ready()
    wait_tcp(line.mgmt_addr(2), HTTP_PORT)
    with httpx.Client(trust_env=False, timeout=5) as client:
        assert client.get(b.url + "/healthz").status_code == 200
        assert client.get(line.mgmt_url(2, HTTP_PORT) + "/healthz").status_code == 200

    assert get_from(line, 0, line.addr(0, 1), b.port) == {"status": 200}
    assert get_from(line, 2, line.addr(2, 1), b.port) == {"status": 200}
    assert b.url_from(0) == f"http://{line.addr(0, 1)}:{b.port}"
    # h2's address on h1–h2: h0 has no route to it …
    assert get_from(line, 0, line.addr(1, 2), HTTP_PORT) == {
        "error": "OSError",
        "errno": errno.ENETUNREACH,
    }
    # … and even given routes through h1, h1 does not forward: only applications relay.
    for i in range(3):
        out = line.run(i, ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout
        assert out.strip() == "0"
    line.run(0, ["ip", "route", "add", f"{line.addr(1, 2)}/32", "via", line.addr(0, 1)])
    line.run(2, ["ip", "route", "add", f"{line.addr(1, 0)}/32", "via", line.addr(2, 1)])
    assert get_from(line, 0, line.addr(1, 2), HTTP_PORT, timeout=1.0) == {
        "error": "TimeoutError",
        "errno": None,
    }
    # The control: the same routes do carry traffic once h1 forwards, so they were right.
    line.run(1, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
    assert get_from(line, 0, line.addr(1, 2), HTTP_PORT) == {"status": 200}


def test_cut_partitions_one_link_and_heal_restores_it(line: NetLab, tmp_path: Path) -> None:
    b = KithHost(line, 1, tmp_path / "b")
    b.init("Pod B")
    b.start()
    assert get_from(line, 0, line.addr(0, 1), b.port) == {"status": 200}

    line.cut(0, 1)
    assert line.is_cut(0, 1)
    started = time.monotonic()
    assert get_from(line, 0, line.addr(0, 1), b.port) == {
        "error": "OSError",
        "errno": errno.ENETUNREACH,
    }
    assert time.monotonic() - started < 2, "a cut link refuses at once, it does not time out"
    assert get_from(line, 2, line.addr(2, 1), b.port) == {"status": 200}  # other link untouched
    with httpx.Client(trust_env=False, timeout=5) as client:  # management is never cut
        assert client.get(b.url + "/healthz").status_code == 200

    line.heal(0, 1)
    assert not line.is_cut(0, 1)
    assert get_from(line, 0, line.addr(0, 1), b.port) == {"status": 200}


def test_cut_closes_a_websocket_on_both_sides_at_once(line: NetLab, tmp_path: Path) -> None:
    b = KithHost(line, 1, tmp_path / "b")
    b.init("Pod B")
    b.start()
    url = f"ws://{line.addr(0, 1)}:{b.port}/v1/stream"
    watcher = line.spawn(0, [sys.executable, "-c", WS_WATCHER, url], stdout=subprocess.PIPE)
    out = Lines(watcher)
    assert out.next() == "live"

    cut_at = time.monotonic()
    assert line.cut(0, 1) == 2  # the client's socket in h0 and the node's in h1
    what, when = out.next().split()
    assert what == "closed"
    assert float(when) - cut_at < 1.0
    established = line.run(1, ["ss", "-H", "-t", "-n", "state", "established"]).stdout
    assert line.addr(1, 0) not in established
    assert watcher.wait(timeout=10) == 0


def test_a_silent_cut_stalls_a_connection_until_heal_or_tcp_gives_up(line: NetLab) -> None:
    line.spawn(1, [sys.executable, "-c", ECHO_SERVER, str(ECHO_PORT)])
    wait_tcp(line.mgmt_addr(1), ECHO_PORT)
    client = line.spawn(
        0,
        [sys.executable, "-c", TCP_CLIENT, line.addr(0, 1), str(ECHO_PORT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert client.stdin is not None
    out = Lines(client)
    assert out.next() == "connected"

    def ask(command: str, timeout: float = 15.0) -> tuple[str, float]:
        assert client.stdin is not None
        client.stdin.write(command.encode() + b"\n")
        client.stdin.flush()
        *answer, seconds = out.next(timeout).split()
        return " ".join(answer), float(seconds)

    assert ask("send a")[0] == "sent"
    assert ask("recv 5")[0] == "got a"

    assert line.cut(0, 1, silent=True) == 0
    assert ask("send b")[0] == "sent"
    assert ask("recv 0.5")[0] == "TimeoutError None"  # nothing delivered, no error either
    line.heal(0, 1)
    answer, seconds = ask("recv 5")
    assert answer == "got b"  # retransmitted over the healed link
    assert seconds < 3

    line.cut(0, 1, silent=True)
    assert ask("send c")[0] == "sent"
    answer, seconds = ask("recv 15")
    assert answer == f"TimeoutError {errno.ETIMEDOUT}"  # TCP gave up after tcp_retries2=3
    assert 2 < seconds < 6


def test_closing_removes_namespaces_links_and_processes() -> None:
    require_netns()
    lab = NetLab(2)
    with pytest.raises(RuntimeError, match="the test failed"), lab:
        lab.link(0, 1)
        tracked = lab.spawn(0, ["sleep", "60"])
        # a grandchild the lab never saw, which the namespace sweep must still find
        shell = lab.spawn(1, ["sh", "-c", "sleep 60 & echo $!; wait"], stdout=subprocess.PIPE)
        grandchild = int(Lines(shell).next())
        assert lab.run(1, ["ip", "netns", "identify"]).stdout.strip() == lab.netns(1)
        assert lab_leftovers(lab.token)
        raise RuntimeError("the test failed")
    assert tracked.returncode is not None
    assert shell.returncode is not None
    assert gone(grandchild)
    assert lab_leftovers(lab.token) == []
    lab.close()  # again: nothing to do


def test_a_half_built_lab_is_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    require_netns()
    real = NetLab._add_host

    def add_host(self: NetLab, i: int) -> None:
        if i == 2:
            raise NetLabError("host 2 refused")
        real(self, i)

    monkeypatch.setattr(NetLab, "_add_host", add_host)
    lab = NetLab(3)
    with pytest.raises(NetLabError, match="host 2 refused"):
        lab.open()
    assert lab_leftovers(lab.token) == []


OPEN_AND_WAIT = """
import sys, time
from tests.integration.netns import NetLab
lab = NetLab(2)
lab.open()
lab.link(0, 1)
lab.spawn(1, ["sleep", "60"])
print(lab.token, flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_test_process_leaves_nothing_behind(sig: signal.Signals) -> None:
    """SIGTERM: the lab cleans up and the process still dies of SIGTERM. SIGKILL: the next
    lab to open removes what the dead process left."""
    require_netns()
    proc = subprocess.Popen([sys.executable, "-c", OPEN_AND_WAIT], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        token = Lines(proc).next(timeout=20)
        assert lab_leftovers(token)
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == -sig
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
    if sig == signal.SIGKILL:
        assert lab_leftovers(token)
        with NetLab(1):
            pass
    assert lab_leftovers(token) == []
