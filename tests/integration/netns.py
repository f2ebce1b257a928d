"""Network-namespace labs: real hosts, real links and real partitions for multi-node tests.

A `NetLab` is a handful of Linux network namespaces ("hosts") joined by veth pairs ("links"),
each host also wired to the pytest process by a management veth that is never cut. Processes
started in a host see only its interfaces, so a `kith serve` there is a node on its own little
network.

    require_netns()                      # skips only where the kernel refuses `ip netns add`
    with NetLab(3) as lab:               # h0, h1, h2
        lab.link(0, 1)
        lab.link(1, 2)                   # a line: h0 reaches h2 only through h1's application
        b = KithHost(lab, 1, tmp_path / "b")
        b.init("Pod B")
        b.start()                        # `kith serve --host 0.0.0.0` inside h1
        httpx.get(b.url + "/healthz")    # over the management path, from the root namespace
        b.url_from(0)                    # what h0 dials: http://<h1's address on h0–h1>:8470
        lab.cut(0, 1)                    # partition; existing connections are aborted
        lab.heal(0, 1)

Addresses. Link number k gets 10.213.(k // 64).(4·(k % 64) + 1 | 2)/30 — the lower host index
takes .1. These exist only inside the lab's namespaces. Management link of host i is
10.214.s.(4i + 1)/30 in the root namespace ↔ 10.214.s.(4i + 2) in host i, where s is a slot
this lab holds under a file lock (so concurrent labs never share an address) and which no
route of the root namespace overlaps (so no real network is shadowed). Hosts have no default
route and `net.ipv4.ip_forward=0`: a host reaches only its direct neighbours' link addresses
and, over management, the root side of its own management link. Test traffic therefore never
leaves loopback and the lab's own addresses. IPv6 is disabled on every lab veth.

Cuts. `cut(i, j)` sets both veth ends down, so the link's routes vanish: nothing more is
delivered over it and new connections across it fail at once with ENETUNREACH. It then aborts,
in both hosts, every TCP socket between the two link addresses (`ss -K`, sock_destroy): each
side's application gets ECONNABORTED within milliseconds, just as if its keepalive had fired —
a websocket peer notices immediately, reconnects with its backoff and catches up after `heal`.
`cut(i, j, silent=True)` only sets the link down, like a real unplugged cable: existing
connections stall without an error; a peer notices through its own pings, or through TCP giving
up on unacknowledged data after `tcp_retries2` retransmissions — about 3 s with this lab's
default of 3 (the kernel's default of 15 means ~15 minutes) — and a connection that survives
the cut resumes on its next retransmission after `heal` (at most 1.6 s later with that
default). `heal(i, j)` sets both ends up again; IPv4 addresses and routes come back at once.

Cleanup. Leaving the `with` block — normally, on a failing test, on Ctrl-C, on SIGTERM, or at
interpreter exit — terminates (then kills) every process started in the hosts, deletes the
management veths and the namespaces (which takes their links with them), releases the slot,
and checks that nothing is left. A lab whose creating process died without cleaning up
(SIGKILL) is removed by the next lab that opens. Setup that fails halfway is undone the same way.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import ipaddress
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import httpx
import pytest

from tests.integration.conftest import kith

IP = shutil.which("ip") or "/usr/sbin/ip"
SS = shutil.which("ss") or "/usr/bin/ss"
SYSCTL = shutil.which("sysctl") or "/usr/sbin/sysctl"

LINK_NET = ipaddress.ip_network("10.213.0.0/16")
MGMT_NET = ipaddress.ip_network("10.214.0.0/16")
MAX_HOSTS = 64  # management /30s per /24 slot
MAX_LINKS = LINK_NET.num_addresses // 4

# Everything a lab creates carries this shape; stale labs are recognised by it.
_NETNS_NAME = re.compile(r"^kith-(?P<pid>\d+)-(?P<token>[0-9a-f]{6})-(?:h\d+|probe)$")
_SLOT_LOCKS = Path("/run/kith-netns")
_COMMAND_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0


class NetLabError(Exception):
    """A lab could not be built, changed or fully removed."""


# -- running commands ----------------------------------------------------------------------


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=_COMMAND_TIMEOUT, check=False
    )
    if check and proc.returncode != 0:
        raise NetLabError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def _netns_names() -> list[str]:
    out = _run(IP, "netns", "list").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _root_link_names() -> list[str]:
    out = _run(IP, "-o", "link", "show").stdout
    # "5: kitha1b2c3m0@if2: <...>" → "kitha1b2c3m0"
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]


def _empty_netns(name: str) -> None:
    """Kill every process still inside the namespace and wait until none is left."""
    deadline = time.monotonic() + _STOP_TIMEOUT
    while True:
        pids = _run(IP, "netns", "pids", name, check=False).stdout.split()
        if not pids:
            return
        if time.monotonic() > deadline:
            raise NetLabError(f"processes {pids} would not leave namespace {name}")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.02)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap_stale_labs() -> None:
    """Remove namespaces left by labs whose process died without cleaning up."""
    for name in _netns_names():
        match = _NETNS_NAME.match(name)
        if match and not _pid_alive(int(match["pid"])):
            _empty_netns(name)
            _run(IP, "netns", "del", name, check=False)


# -- the probe -------------------------------------------------------------------------------


@functools.cache
def netns_refusal() -> str | None:
    """Why this machine refuses network namespaces (the exact error), or None if it allows them.

    Decided by really adding (and removing) a probe namespace, once per process.
    """
    name = f"kith-{os.getpid()}-{secrets.token_hex(3)}-probe"
    proc = _run(IP, "netns", "add", name, check=False)
    if proc.returncode != 0:
        return proc.stderr.strip() or f"ip netns add exited with {proc.returncode}"
    _run(IP, "netns", "del", name)
    return None


def require_netns() -> None:
    """Skip the calling test if, and only if, the kernel or our permissions refuse `ip netns`."""
    reason = netns_refusal()
    if reason is not None:
        pytest.skip(f"ip netns add refused: {reason}")


# -- management slots ------------------------------------------------------------------------


def _root_routes() -> list[ipaddress.IPv4Network]:
    """Every IPv4 destination the root namespace routes, except the default route."""
    kinds = {"unicast", "local", "broadcast", "multicast", "anycast"}
    kinds |= {"blackhole", "unreachable", "prohibit", "throw", "nat"}
    nets = []
    for line in _run(IP, "-4", "-o", "route", "show", "table", "all").stdout.splitlines():
        words = line.split()
        if words and words[0] in kinds:
            words = words[1:]
        if not words or words[0] == "default":
            continue
        with contextlib.suppress(ValueError):
            nets.append(ipaddress.IPv4Network(words[0], strict=False))
    return nets


def _claim_slot() -> tuple[int, int]:
    """A management slot (and its held lock's fd) that no other lab and no real route uses."""
    _SLOT_LOCKS.mkdir(mode=0o700, exist_ok=True)
    routes = _root_routes()
    for slot in range(256):
        net = ipaddress.IPv4Network(f"10.214.{slot}.0/24")
        if any(net.overlaps(route) for route in routes):
            continue
        fd = os.open(_SLOT_LOCKS / f"slot-{slot}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return slot, fd
    raise NetLabError(f"no free management slot in {MGMT_NET}: every /24 is routed or taken")


# -- cleanup on the way out ------------------------------------------------------------------

_LIVE: dict[int, NetLab] = {}


def _close_live_labs() -> None:
    for lab in list(_LIVE.values()):
        lab.close()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Clean up, then die of SIGTERM as the sender asked.
    try:
        _close_live_labs()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


atexit.register(_close_live_labs)


# -- the lab ---------------------------------------------------------------------------------


@dataclass
class _Link:
    number: int
    low: int
    high: int
    cut: bool = False

    def other(self, host: int) -> int:
        return self.high if host == self.low else self.low

    def address(self, host: int) -> str:
        base = LINK_NET.network_address + 4 * self.number
        return str(base + (1 if host == self.low else 2))

    def device(self, host: int) -> str:
        return f"to-h{self.other(host)}"


class NetLab:
    """N hosts (network namespaces) with links you choose, cuts you control, and full cleanup.

    Hosts are numbered 0..N-1. Use it as a context manager; see the module docstring for the
    addresses, what a cut does and how cleanup is guaranteed.

    >>> with NetLab(2) as lab:                                   # doctest: +SKIP
    ...     lab.link(0, 1)
    ...     lab.addr(0, 1), lab.addr(1, 0), lab.links
    ('10.213.0.2', '10.213.0.1', [(0, 1)])
    """

    def __init__(self, hosts: int, *, tcp_retries2: int = 3) -> None:
        """Describe a lab of `hosts` hosts; nothing exists until it is entered.

        `tcp_retries2` is set in every host: how many retransmissions TCP makes before it gives
        up on unacknowledged data (3 ≈ 3 s, the kernel's 15 ≈ 15 min), which bounds how long a
        silent cut goes unnoticed by a sender.
        """
        if not 1 <= hosts <= MAX_HOSTS:
            raise ValueError(f"a lab has 1..{MAX_HOSTS} hosts, not {hosts}")
        self.hosts = hosts
        self.token = secrets.token_hex(3)
        self.tcp_retries2 = tcp_retries2
        self._netns = [f"kith-{os.getpid()}-{self.token}-h{i}" for i in range(hosts)]
        self._links: dict[frozenset[int], _Link] = {}
        self._procs: list[subprocess.Popen[Any]] = []
        self._slot: int | None = None
        self._slot_fd: int | None = None
        self._created: list[str] = []
        self._mgmt_devices: list[str] = []
        self._open = False

    # -- lifecycle

    def __enter__(self) -> NetLab:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Build the hosts and their management links; undo everything if any step fails."""
        if self._open:
            raise NetLabError("this lab is already open")
        self._open = True
        _LIVE[id(self)] = self
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        ):
            signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            _reap_stale_labs()
            self._slot, self._slot_fd = _claim_slot()
            for i in range(self.hosts):
                self._add_host(i)
        except BaseException as failure:
            try:
                self.close()
            except NetLabError as cleanup:
                failure.add_note(f"cleaning up the half-built lab: {cleanup}")
            raise

    def _add_host(self, i: int) -> None:
        ns = self._netns[i]
        _run(IP, "netns", "add", ns)
        self._created.append(ns)
        _run(IP, "-n", ns, "link", "set", "dev", "lo", "up")
        self.run(
            i,
            [
                SYSCTL,
                "-q",
                "-w",
                "net.ipv4.ip_forward=0",
                f"net.ipv4.tcp_retries2={self.tcp_retries2}",
                "net.ipv6.conf.default.disable_ipv6=1",  # for the veths still to come
            ],
        )
        root_dev = f"kith{self.token}m{i}"
        _run(
            IP, "link", "add", "name", "mgmt", "netns", ns, "type", "veth", "peer", "name", root_dev
        )
        self._mgmt_devices.append(root_dev)
        ipv6 = Path(f"/proc/sys/net/ipv6/conf/{root_dev}/disable_ipv6")
        if ipv6.exists():
            ipv6.write_text("1\n")
        _run(IP, "addr", "add", f"{self._mgmt_address(i, root=True)}/30", "dev", root_dev)
        _run(IP, "link", "set", "dev", root_dev, "up")
        _run(IP, "-n", ns, "addr", "add", f"{self.mgmt_addr(i)}/30", "dev", "mgmt")
        _run(IP, "-n", ns, "link", "set", "dev", "mgmt", "up")

    def close(self) -> None:
        """Stop every process, remove every namespace and veth, and check nothing is left.

        Safe to call more than once and after a partial `open`.
        """
        if not self._open:
            return
        errors: list[str] = []
        try:
            self._stop_processes()
        except (OSError, subprocess.SubprocessError, NetLabError) as e:
            errors.append(f"stopping processes: {e}")
        for ns in self._created:
            try:
                _empty_netns(ns)
            except (OSError, subprocess.SubprocessError, NetLabError) as e:
                errors.append(str(e))
        for dev in self._mgmt_devices:
            # Deleting one end deletes the pair; done before the namespaces go, because their
            # own teardown in the kernel is asynchronous.
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                _run(IP, "link", "del", "dev", dev, check=False)
        for ns in self._created:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                _run(IP, "netns", "del", ns, check=False)
        if self._slot_fd is not None:
            os.close(self._slot_fd)  # releases the slot's lock
        self._slot = self._slot_fd = None
        self._created.clear()
        self._mgmt_devices.clear()
        self._links.clear()
        self._open = False
        _LIVE.pop(id(self), None)
        if not _LIVE and signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with contextlib.suppress(OSError, subprocess.SubprocessError, NetLabError):
            left = [n for n in _netns_names() if self.token in n]
            left += [d for d in _root_link_names() if self.token in d]
            if left:
                errors.append(f"still present after cleanup: {left}")
        if errors:
            raise NetLabError("; ".join(errors))

    def _stop_processes(self) -> None:
        running = [p for p in self._procs if p.poll() is None]
        for p in running:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
        deadline = time.monotonic() + _STOP_TIMEOUT
        for p in running:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=_STOP_TIMEOUT)
        for p in self._procs:
            for stream in (p.stdin, p.stdout, p.stderr):
                if stream is not None:
                    stream.close()
        self._procs.clear()

    # -- topology

    def netns(self, i: int) -> str:
        """The name of host i's network namespace (for `ip -n`, `ip netns exec`)."""
        self._check_host(i)
        return self._netns[i]

    def link(self, i: int, j: int) -> None:
        """Join hosts i and j by a veth pair with its own /30 subnet."""
        self._check_host(i)
        self._check_host(j)
        if i == j:
            raise ValueError("a link joins two different hosts")
        key = frozenset((i, j))
        if key in self._links:
            raise NetLabError(f"h{i} and h{j} are already linked")
        if len(self._links) >= MAX_LINKS:
            raise NetLabError(f"a lab has at most {MAX_LINKS} links")
        link = _Link(len(self._links), min(i, j), max(i, j))
        lo, hi = link.low, link.high
        _run(
            IP,
            "link",
            "add",
            "name",
            link.device(lo),
            "netns",
            self._netns[lo],
            "type",
            "veth",
            "peer",
            "name",
            link.device(hi),
            "netns",
            self._netns[hi],
        )
        self._links[key] = link
        for host in (lo, hi):
            ns, dev = self._netns[host], link.device(host)
            _run(IP, "-n", ns, "addr", "add", f"{link.address(host)}/30", "dev", dev)
            _run(IP, "-n", ns, "link", "set", "dev", dev, "up")
        self._wait_up(link)

    def _wait_up(self, link: _Link) -> None:
        # The kernel finishes bringing a veth up (carrier, queueing) asynchronously; until
        # "state UP" the first packets, ARP replies among them, may be dropped.
        deadline = time.monotonic() + _COMMAND_TIMEOUT
        for host in (link.low, link.high):
            ns, dev = self._netns[host], link.device(host)
            while " state UP " not in _run(IP, "-n", ns, "-o", "link", "show", "dev", dev).stdout:
                if time.monotonic() > deadline:
                    raise NetLabError(f"{dev} in {ns} did not come up")
                time.sleep(0.005)

    def addr(self, i: int, j: int) -> str:
        """The address at which host i reaches host j: j's address on the i–j link."""
        return self._link(i, j).address(j)

    def mgmt_addr(self, i: int) -> str:
        """Host i's address on its management link (reachable from the pytest process)."""
        return self._mgmt_address(i, root=False)

    def mgmt_url(self, i: int, port: int) -> str:
        """`http://<host i's management address>:<port>` — never affected by cuts."""
        return f"http://{self.mgmt_addr(i)}:{port}"

    def _mgmt_address(self, i: int, *, root: bool) -> str:
        self._check_host(i)
        if self._slot is None:
            raise NetLabError("the lab is not open")
        return f"10.214.{self._slot}.{4 * i + (1 if root else 2)}"

    def _link(self, i: int, j: int) -> _Link:
        try:
            return self._links[frozenset((i, j))]
        except KeyError:
            raise NetLabError(f"h{i} and h{j} are not linked") from None

    def _check_host(self, i: int) -> None:
        if not 0 <= i < self.hosts:
            raise IndexError(f"no host h{i} in a lab of {self.hosts}")

    # -- partitions

    def cut(self, i: int, j: int, *, silent: bool = False) -> int:
        """Partition the i–j link; return how many TCP connections were aborted.

        Both veth ends go down. Unless `silent`, every TCP socket between the two link
        addresses is then aborted in both hosts, so both applications learn of it at once.
        Cutting a cut link does nothing.
        """
        link = self._link(i, j)
        if link.cut:
            return 0
        for host in (link.low, link.high):
            _run(IP, "-n", self._netns[host], "link", "set", "dev", link.device(host), "down")
        link.cut = True
        if silent:
            return 0
        aborted = 0
        for host in (link.low, link.high):
            local, remote = link.address(host), link.address(link.other(host))
            out = self.run(host, [SS, "-K", "-H", "-t", "-n", "src", local, "dst", remote])
            aborted += len(out.stdout.splitlines())
        return aborted

    def heal(self, i: int, j: int) -> None:
        """Bring the i–j link back; healing a whole link does nothing."""
        link = self._link(i, j)
        if not link.cut:
            return
        for host in (link.low, link.high):
            _run(IP, "-n", self._netns[host], "link", "set", "dev", link.device(host), "up")
        self._wait_up(link)
        link.cut = False

    @property
    def links(self) -> list[tuple[int, int]]:
        """Every link as (lower host, higher host), in the order they were made."""
        return [(link.low, link.high) for link in self._links.values()]

    def is_cut(self, i: int, j: int) -> bool:
        """Whether the i–j link is cut now."""
        return self._link(i, j).cut

    # -- processes

    def spawn(self, i: int, argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[Any]:
        """Start `argv` inside host i (`ip netns exec`); the lab stops it when it closes.

        `ip netns exec` execs the command, so the returned process is the command itself.
        """
        if not self._open:
            raise NetLabError("the lab is not open")
        proc: subprocess.Popen[Any] = subprocess.Popen(
            [IP, "netns", "exec", self.netns(i), *argv], **popen_kwargs
        )
        self._procs.append(proc)
        return proc

    def run(
        self, i: int, argv: Sequence[str], *, timeout: float = _COMMAND_TIMEOUT, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a short command inside host i and return its captured output."""
        proc = subprocess.run(
            [IP, "netns", "exec", self.netns(i), *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise NetLabError(
                f"h{i}: {' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}"
            )
        return proc


class KithHost:
    """One pod's node in a lab host: a data directory and `kith serve` inside the namespace.

    The node listens on 0.0.0.0 in its namespace, which there means only its own links and its
    management address; every host can use the same port.
    """

    def __init__(self, lab: NetLab, index: int, dir: Path, *, port: int = 8470) -> None:
        """Describe the node of host `index`, keeping its data in `dir`."""
        self.lab = lab
        self.index = index
        self.dir = dir
        self.port = port
        self.log_path = dir.with_name(dir.name + ".log")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The node's base URL over the management path, for the pytest process."""
        return self.lab.mgmt_url(self.index, self.port)

    def url_from(self, j: int) -> str:
        """The node's base URL as host j, a direct neighbour, dials it."""
        return f"http://{self.lab.addr(j, self.index)}:{self.port}"

    def init(self, name: str) -> None:
        """Create the pod's data directory with the real `kith init`."""
        kith("init", "--dir", str(self.dir), "--name", name, "--port", str(self.port))

    def start(self, *, wait: bool = True, timeout: float = 30.0) -> None:
        """Start `kith serve` in the host; unless told not to, wait until it answers.

        Starting several nodes with `wait=False` and then calling `wait_ready` on each brings
        them up in parallel.
        """
        if self.proc is not None and self.proc.poll() is None:
            raise NetLabError(f"the node in h{self.index} is already running")
        argv = [sys.executable, "-m", "node.cli", "serve", "--dir", str(self.dir)]
        argv += ["--host", "0.0.0.0", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self.proc = self.lab.spawn(self.index, argv, stdout=log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until /healthz answers 200 over the management path."""
        if self.proc is None:
            raise NetLabError(f"the node in h{self.index} was not started")
        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"kith serve in h{self.index} exited:\n{self.log()}")
                try:
                    if client.get(self.url + "/healthz").status_code == 200:
                        return
                except httpx.HTTPError:
                    time.sleep(0.05)
        raise AssertionError(f"kith serve in h{self.index} did not come up:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal the node and wait for it to exit (SIGKILL after a bounded wait)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=_STOP_TIMEOUT * 2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=_STOP_TIMEOUT)
        self.proc = None

    def log(self) -> str:
        """What the node has printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
