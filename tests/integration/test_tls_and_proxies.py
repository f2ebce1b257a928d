"""``kith serve --tls-cert/--tls-key`` (https and wss) and ``--trusted-proxy`` (per-client
limits by the forwarded client), through real ``kith serve`` processes on loopback."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.sync.client import connect

from node.clientaddr import TrustedProxies
from node.datadir import DataDir, read_key_file
from protocol.crypto import SigningKey
from protocol.tokens import make_token
from tests.integration.conftest import free_port, kith


def make_cert(folder: Path, name: str = "node") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Serving:
    """One ``kith serve`` process with the given options; its banner line once it is up."""

    def __init__(self, data: Path, port: int, *options: str) -> None:
        self.port = port
        self.errors = (data.parent / f"serve-{port}.err").open("w")
        command = ["serve", "--dir", str(data), "--port", str(port), *options]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli", *command],
            stdout=subprocess.PIPE,
            stderr=self.errors,  # read only when a test fails: the banner is on stdout
            text=True,
        )
        assert self.proc.stdout is not None
        self.banner = self.proc.stdout.readline().strip()  # printed once the server listens

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.errors.close()


@pytest.fixture
def pod_dir(tmp_path: Path) -> Path:
    """A pod made by ``kith init`` whose streams allow one connection per address."""
    path = tmp_path / "pod"
    kith("init", "--dir", str(path), "--name", "Elm")
    config = json.loads((path / "config.json").read_text())
    config["stream_connections_per_ip"] = 1
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.fixture
def start(pod_dir: Path) -> Iterator[object]:
    running: list[Serving] = []

    def go(*options: str) -> Serving:
        node = Serving(pod_dir, free_port(), *options)
        running.append(node)
        return node

    yield go
    for node in running:
        node.stop()


# --- TLS ---------------------------------------------------------------------------------


def test_serve_with_a_certificate_answers_https_and_wss(
    start: object, pod_dir: Path, tmp_path: Path
) -> None:
    cert, key = make_cert(tmp_path)
    node = start("--tls-cert", str(cert), "--tls-key", str(key))  # type: ignore[operator]
    pod = DataDir(pod_dir).config().pod
    assert node.banner == f"Kith node for pod {pod} listening on https://127.0.0.1:{node.port}"

    trusted = ssl.create_default_context(cafile=str(cert))
    health = httpx.get(f"https://127.0.0.1:{node.port}/healthz", verify=trusted)
    assert health.status_code == 200
    with connect(f"wss://127.0.0.1:{node.port}/v1/stream", ssl=trusted) as ws:
        assert json.loads(ws.recv(timeout=10))[0] == "CHALLENGE"
    with pytest.raises(httpx.ConnectError):  # a client that does not trust it is refused
        httpx.get(f"https://127.0.0.1:{node.port}/healthz")


def serve_error(pod_dir: Path, *options: str) -> str:
    proc = kith("serve", "--dir", str(pod_dir), "--port", str(free_port()), *options, check=False)
    assert proc.returncode == 1 and proc.stdout == "", proc
    return proc.stderr


def test_a_missing_certificate_says_which_file(pod_dir: Path, tmp_path: Path) -> None:
    _, key = make_cert(tmp_path)
    missing = tmp_path / "nope.crt"
    assert serve_error(pod_dir, "--tls-cert", str(missing), "--tls-key", str(key)) == (
        f"kith: error: cannot read the certificate {missing} (--tls-cert): No such file or"
        " directory; give the path of a readable PEM file\n"
    )


def test_a_key_of_another_certificate_is_refused(pod_dir: Path, tmp_path: Path) -> None:
    cert, _ = make_cert(tmp_path, "one")
    _, other = make_cert(tmp_path, "two")
    assert serve_error(pod_dir, "--tls-cert", str(cert), "--tls-key", str(other)) == (
        f"kith: error: the key {other} does not belong to the certificate {cert}: give the key"
        " that was made with this certificate\n"
    )


def test_files_that_are_not_pem_and_half_the_pair_are_refused(
    pod_dir: Path, tmp_path: Path
) -> None:
    cert, key = make_cert(tmp_path)
    assert serve_error(pod_dir, "--tls-cert", str(key), "--tls-key", str(key)) == (
        f"kith: error: {key} is not a PEM certificate (-----BEGIN CERTIFICATE-----): give"
        " --tls-cert the certificate file (fullchain.pem with Let's Encrypt)\n"
    )
    assert serve_error(pod_dir, "--tls-cert", str(cert), "--tls-key", str(cert)) == (
        f"kith: error: {cert} is not a PEM private key (-----BEGIN PRIVATE KEY-----): give"
        " --tls-key the key file (privkey.pem with Let's Encrypt)\n"
    )
    locked = tmp_path / "locked.key"
    plain = serialization.load_pem_private_key(key.read_bytes(), password=None)
    locked.write_bytes(
        plain.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    assert serve_error(pod_dir, "--tls-cert", str(cert), "--tls-key", str(locked)) == (
        f"kith: error: {locked} is encrypted with a passphrase: give --tls-key an unencrypted"
        " key (openssl pkey -in KEY -out plain.key), readable by this user only\n"
    )
    assert serve_error(pod_dir, "--tls-cert", str(cert)) == (
        "kith: error: --tls-cert needs --tls-key too: give the certificate and its key\n"
    )


# --- trusted proxies ---------------------------------------------------------------------


def first_frame(streams: contextlib.ExitStack, port: int, forwarded_for: str) -> list[object]:
    """Open a stream as if through a proxy for ``forwarded_for``; its first frame (the stream
    stays open until the test ends)."""
    ws = streams.enter_context(
        connect(
            f"ws://127.0.0.1:{port}/v1/stream",
            additional_headers={"X-Forwarded-For": forwarded_for},
        )
    )
    frame: list[object] = json.loads(ws.recv(timeout=10))
    return frame


@pytest.fixture
def streams() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as stack:
        yield stack


REFUSED = ["NOTICE", "rate-limited: at most 1 connections per address"]


def test_behind_a_trusted_proxy_each_client_has_its_own_stream_budget(
    start: object, streams: contextlib.ExitStack
) -> None:
    node = start("--trusted-proxy", "127.0.0.1")  # type: ignore[operator]
    assert first_frame(streams, node.port, "203.0.113.1")[0] == "CHALLENGE"
    assert first_frame(streams, node.port, "203.0.113.2, 127.0.0.1")[0] == "CHALLENGE"
    # The rightmost untrusted address is the client: 203.0.113.1 again, its budget spent.
    assert first_frame(streams, node.port, "198.51.100.9, 203.0.113.1") == REFUSED


def test_a_forwarded_header_from_an_untrusted_peer_changes_nothing(
    start: object, streams: contextlib.ExitStack
) -> None:
    node = start()  # nothing trusted: loopback is the client, whatever it claims
    assert first_frame(streams, node.port, "203.0.113.1")[0] == "CHALLENGE"
    assert first_frame(streams, node.port, "203.0.113.2") == REFUSED


def redeem(port: int, forwarded_for: str) -> int:
    key = SigningKey.generate().public_b64
    body = {"code": "not-a-code", "key": key, "box_key": key}  # refused before any token
    answer = httpx.post(
        f"http://127.0.0.1:{port}/v1/invites/redeem",
        content=msgspec.json.encode(body),
        headers={"X-Forwarded-For": forwarded_for, "content-type": "application/json"},
    )
    return answer.status_code


def test_the_invite_redeem_limit_counts_the_forwarded_client(start: object) -> None:
    node = start("--trusted-proxy", "127.0.0.0/8")  # type: ignore[operator]
    assert {redeem(node.port, "203.0.113.1") for _ in range(10)} == {404}
    assert redeem(node.port, "203.0.113.1") == 429
    assert redeem(node.port, "203.0.113.2") == 404  # another client behind the same proxy


def test_the_invite_redeem_limit_ignores_an_untrusted_peers_header(start: object) -> None:
    node = start()
    assert {redeem(node.port, f"203.0.113.{n}") for n in range(10)} == {404}
    assert redeem(node.port, "203.0.113.99") == 429


def test_a_trusted_proxy_that_is_no_address_is_one_line(pod_dir: Path) -> None:
    assert serve_error(pod_dir, "--trusted-proxy", "caddy") == (
        "kith: error: trusted proxy 'caddy' is not an address or network: give one like"
        " 127.0.0.1 or 172.16.0.0/12 (--trusted-proxy, or trusted_proxies in config.json)\n"
    )


# --- the address rule itself -------------------------------------------------------------


def test_the_client_is_the_rightmost_address_that_is_not_a_trusted_proxy() -> None:
    proxies = TrustedProxies.parse(["10.0.0.0/8", "::1"])
    assert proxies.client("10.0.0.2", ["203.0.113.7"]) == "203.0.113.7"
    assert proxies.client("10.0.0.2", ["1.1.1.1, 203.0.113.7", "10.0.0.3"]) == "203.0.113.7"
    assert proxies.client("::1", ["[2001:db8::1]:4711"]) == "2001:db8::1"
    assert proxies.client("::ffff:10.0.0.2", ["203.0.113.7:80"]) == "203.0.113.7"
    assert proxies.client("10.0.0.2", ["10.0.0.4, 10.0.0.3"]) == "10.0.0.4"  # all proxies
    assert proxies.client("10.0.0.2", ["203.0.113.7, junk"]) == "10.0.0.2"  # stops at garbage
    assert proxies.client("10.0.0.2", []) == "10.0.0.2"
    assert proxies.client("192.0.2.1", ["203.0.113.7"]) == "192.0.2.1"  # not ours: ignored
    assert TrustedProxies.parse([]).client("10.0.0.2", ["203.0.113.7"]) == "10.0.0.2"


def test_a_trusted_proxy_says_the_scheme_so_feed_urls_are_https(
    start: object, pod_dir: Path
) -> None:
    node = start("--trusted-proxy", "127.0.0.1")  # type: ignore[operator]
    data = DataDir(pod_dir)
    token = make_token(
        read_key_file(data.root_key_path).signing_key(),
        purpose="http",
        node_key=data.node_key().public,
        now_ms=int(time.time() * 1000),
    )
    headers = {"authorization": f"Kith {token}", "host": "pod.example.org"}
    behind = {**headers, "x-forwarded-proto": "https"}
    url = f"http://127.0.0.1:{node.port}/v1/calendar/feeds"
    assert (
        httpx.post(url, headers=behind)
        .json()["url"]
        .startswith("https://pod.example.org/v1/calendar/")
    )
    assert (
        httpx.post(url, headers=headers)
        .json()["url"]
        .startswith("http://pod.example.org/v1/calendar/")
    )
