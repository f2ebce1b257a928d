"""The docker recipe cannot rot: no docker engine runs here, so this replays the Dockerfile.

It reads ``docker/Dockerfile``, copies what its ``COPY`` lines copy into a throwaway image
root, runs its ``pip install`` steps in a fresh venv there (with the Dockerfile's ``ENV``), then
starts the image's entrypoint as ``ENTRYPOINT`` + ``CMD`` would — which makes the pod on
first start — and runs the ``HEALTHCHECK`` command until it passes. The venv reuses the
dependencies already installed for the tests (the same pyproject.toml made them; pip still
checks each pinned range), so what is built here is the project itself, from its own files.
``compose.yaml`` and the ``Caddyfile`` are checked for what they name.
Linting is hadolint's (``make lint``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.node.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, as (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\s*\\\n\s*", " ", (DOCKER / "Dockerfile").read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def one(name: str) -> str:
    values = [rest for word, rest in instructions() if word == name]
    assert len(values) == 1, (name, values)
    return values[0]


def parse_env(rest: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in shlex.split(rest))


def test_the_image_is_slim_python_without_root_with_a_data_volume() -> None:
    assert one("FROM") == "python:3.11-slim"
    user = one("USER")
    assert user.split(":")[0] not in ("root", "0")
    assert json.loads(one("VOLUME")) == ["/data"]
    assert "/healthz" in one("HEALTHCHECK")
    assert json.loads(one("ENTRYPOINT")) == ["kith-entrypoint"]
    assert json.loads(one("CMD")) == ["serve"]


class Image:
    """The Dockerfile replayed in ``root``: COPY into it, pip install in a venv, ENV kept."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.venv = root / "venv"
        self.env: dict[str, str] = {}
        self.system_steps: list[str] = []
        subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True)
        # The dependencies come from the test environment (made from the same pyproject.toml),
        # so nothing large is downloaded; the project itself is built from its files.
        site = self.python("-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
        (Path(site.strip()) / "kith-test-deps.pth").write_text(sysconfig.get_paths()["purelib"])
        workdir = root
        for word, rest in instructions():
            if word == "ENV":
                self.env.update(parse_env(rest))
            elif word == "WORKDIR":
                workdir = self.path(rest)
                workdir.mkdir(parents=True, exist_ok=True)
            elif word == "COPY":
                *sources, target = shlex.split(rest)
                for source in sources:
                    self.copy(ROOT / source, target, workdir)
            elif word == "RUN" and rest.startswith("pip install"):
                args = shlex.split(rest)[2:]
                self.run([str(self.venv / "bin" / "pip"), "install", "-q", *args], cwd=workdir)
            elif word == "RUN":
                self.system_steps.append(rest)  # users, modes: the engine's business

    def path(self, image_path: str) -> Path:
        return self.root / image_path.lstrip("/")

    def copy(self, source: Path, target: str, workdir: Path) -> None:
        into = self.path(target) if target.startswith("/") else workdir / target
        if source.is_dir():
            shutil.copytree(source, into / "" if target.endswith("/") else into)
        elif target.endswith("/"):
            shutil.copy2(source, into / source.name)
        else:
            into.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into)

    def environ(self, **extra: str) -> dict[str, str]:
        """The container's environment: the Dockerfile's ENV, the venv first on PATH, and no
        PYTHONPATH (the installed copy runs, not the source tree)."""
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(self.env)
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env.update(extra)
        return env

    def run(self, command: list[str], **kwargs: object) -> str:
        proc = subprocess.run(
            command,
            env=self.environ(),
            capture_output=True,
            text=True,
            check=False,
            **kwargs,  # type: ignore[call-overload]
        )
        assert proc.returncode == 0, proc.stderr
        out: str = proc.stdout
        return out

    def python(self, *args: str) -> str:
        return self.run([str(self.venv / "bin" / "python"), *args], cwd=self.root)

    def entrypoint(self, data: Path, port: int, *args: str, **env: str) -> subprocess.Popen[str]:
        """``kith-entrypoint`` as the image runs it (its shebang's python is the venv's)."""
        script = self.path("/usr/local/bin/kith-entrypoint")
        extra = {"KITH_DATA": str(data), "KITH_HOST": "127.0.0.1", "KITH_PORT": str(port), **env}
        return subprocess.Popen(
            [str(self.venv / "bin" / "python"), str(script), *args],
            env=self.environ(**extra),
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def healthcheck(self, port: int) -> int:
        """The HEALTHCHECK's command (exec form), with the venv's python."""
        rest = one("HEALTHCHECK")
        command = json.loads(rest[rest.index("CMD") + 3 :])
        assert command[0] == "python"
        command[0] = str(self.venv / "bin" / "python")
        env = self.environ(KITH_PORT=str(port))
        return subprocess.run(command, env=env, capture_output=True, check=False).returncode


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    return Image(tmp_path_factory.mktemp("image"))


def test_the_install_steps_build_the_project_from_its_files(image: Image) -> None:
    where = image.python("-c", "import node, protocol; print(node.__file__, protocol.__file__)")
    for module in where.split():
        assert module.startswith(str(image.venv)), where  # installed, not the source tree
    assert (image.venv / "bin" / "kith").exists()
    assert image.system_steps == [
        "groupadd --system --gid 10001 kith "
        "&& useradd --system --uid 10001 --gid kith --home-dir /data --no-create-home kith",
        "chmod 0755 /usr/local/bin/kith-entrypoint && mkdir -m 0700 /data && chown kith:kith /data",
    ]


def test_first_start_makes_the_pod_and_the_healthcheck_passes(image: Image, tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    data.mkdir()  # the volume: empty on first start
    proc = image.entrypoint(data, port, KITH_POD_NAME="Elm Street Mutual Aid")
    try:
        deadline = time.monotonic() + 40
        while image.healthcheck(port) != 0:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the node did not become healthy"
            time.sleep(0.2)
        info = httpx.get(f"http://127.0.0.1:{port}/.well-known/kith").json()
        config = json.loads((data / "config.json").read_text())
        assert info["pod"] == config["pod"] and config["name"] == "Elm Street Mutual Aid"
    finally:
        proc.send_signal(signal.SIGTERM)  # the node itself: the entrypoint exec'd into it
        out, _ = proc.communicate(timeout=30)
    assert out.startswith("Created pod 'Elm Street Mutual Aid' in ")
    assert f"listening on http://127.0.0.1:{port}" in out

    again = image.entrypoint(data, port)  # a second start keeps the pod: no name needed
    try:
        deadline = time.monotonic() + 40
        while image.healthcheck(port) != 0:
            assert again.poll() is None, again.communicate()
            assert time.monotonic() < deadline, "the node did not come back"
            time.sleep(0.2)
    finally:
        again.send_signal(signal.SIGTERM)
        out, _ = again.communicate(timeout=30)
    assert "Created pod" not in out
    assert json.loads((data / "config.json").read_text())["pod"] == config["pod"]


@pytest.mark.parametrize(
    ("files", "env", "line"),
    [
        (
            [],
            {},
            "kith-entrypoint: error: {data} is empty: set KITH_POD_NAME to the pod's name to"
            " make a new pod",
        ),
        (
            ["notes.txt"],
            {"KITH_POD_NAME": "Elm"},
            "kith-entrypoint: error: {data} holds files but no config.json: mount the volume of"
            " an existing pod, or an empty one to make a new pod",
        ),
    ],
    ids=["empty-without-a-name", "files-without-a-pod"],
)
def test_the_entrypoint_refuses_in_one_line(
    image: Image, tmp_path: Path, files: list[str], env: dict[str, str], line: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in files:
        (data / name).write_text("not a pod")
    proc = image.entrypoint(data, free_port(), **env)
    out, err = proc.communicate(timeout=30)
    assert (proc.returncode, out, err) == (2, "", line.format(data=data) + "\n")
    assert sorted(p.name for p in data.iterdir()) == files


def test_compose_runs_two_pods_behind_caddy_with_files_that_exist() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    pods = [name for name, s in services.items() if s.get("image") == "kith:local"]
    assert pods == ["pod-a", "pod-b"]
    build = services["pod-a"]["build"]
    context = (DOCKER / build["context"]).resolve()
    assert context == ROOT and (context / build["dockerfile"]).is_file()
    caddy = services["caddy"]
    caddy_ip = caddy["networks"]["kith"]["ipv4_address"]
    for name in pods:
        service = services[name]
        assert service["environment"]["KITH_POD_NAME"]
        assert service["environment"]["KITH_TRUSTED_PROXIES"] == caddy_ip
        volume = service["volumes"][0].split(":")
        assert volume[1] == "/data" and volume[0] in compose["volumes"]
    mounts = [v.split(":") for v in caddy["volumes"]]
    for source, *_ in mounts:
        if source.startswith("."):
            assert (DOCKER / source).is_file(), source
        else:
            assert source in compose["volumes"]
    caddyfile = (DOCKER / "Caddyfile").read_text()
    upstreams = re.findall(r"^\s*reverse_proxy (\S+):(\d+)$", caddyfile, re.MULTILINE)
    assert sorted(upstreams) == [("pod-a", "8470"), ("pod-b", "8470")]
    assert one("EXPOSE") == "8470"
