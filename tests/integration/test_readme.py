"""The README's "Running a pod for real" section, run as a newcomer would type it.

Every ``sh`` block of the section is run line by line in a fresh folder, with ``kith`` on the
PATH (this tree's ``node.cli``). Only what a person would fill in themselves is substituted:
the ids a command printed as its last word (``<need-id>``, ``<claim-id>``,
``<hours-entry-id>``) and a free port for the README's 8470. ``kith serve`` runs in the
background, as in a second terminal. A command that fails, or a README that stops showing one of
these steps, fails the test.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]

#: Placeholder → the command (its first words) whose last printed word fills it.
FILLED_BY = {
    "<need-id>": "kith post need",
    "<claim-id>": "kith post claim",
    "<hours-entry-id>": "kith post hours",
}


def _section_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Running a pod for real")
    end = text.index("\n## ", start + 1)
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text[start:end], re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line:
                commands.append(line.removeprefix(".venv/bin/"))
    return commands


def test_the_readme_commands_work_in_a_fresh_folder(tmp_path: Path) -> None:
    commands = _section_commands()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    kith = bindir / "kith"
    kith.write_text(f'#!/bin/sh\nexec {sys.executable} -m node.cli "$@"\n')
    kith.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    env = {
        **os.environ,
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
    }
    port = str(free_port())
    filled: dict[str, str] = {}
    ran: list[str] = []
    server: subprocess.Popen[str] | None = None
    try:
        for command in commands:
            line = command.replace("8470", port)
            if line.startswith("kith init"):
                line += f" --port {port}"
            for placeholder, value in filled.items():
                line = line.replace(placeholder, value)
            assert "<" not in line, f"the README leaves {line!r} for the reader to fill in"
            if line.startswith("kith serve"):
                server = subprocess.Popen(
                    line,
                    shell=True,
                    cwd=work,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    start_new_session=True,
                )
                assert server.stdout is not None
                first = server.stdout.readline()
                assert "listening on http://127.0.0.1:" + port in first, first
                ran.append("kith serve")
                continue
            done = subprocess.run(
                ["bash", "-c", line], cwd=work, env=env, capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
            assert "Traceback" not in done.stderr and "Warning" not in done.stderr, done.stderr
            for placeholder, prefix in FILLED_BY.items():
                if command.startswith(prefix):
                    filled[placeholder] = done.stdout.split()[-1]
            ran.append(" ".join(line.split()[:2]))
            if line.startswith("kith needs --key bao.key") and "--json" not in line:
                assert "Ride to the clinic" in done.stdout
            if line.startswith("kith timebank"):
                assert "Amara" in done.stdout and "Bao" not in done.stdout  # Bao has no name
        # The whole walk: a pod, two people, the care cycle, reading it, its backup and restore.
        for step in (
            "kith init",
            "kith serve",
            "kith member",
            "kith post",
            "kith needs",
            "kith timebank",
            "kith export",
            "kith import",
            "kith verify",
        ):
            assert step in ran, f"the README no longer shows `{step}`"
        assert (work / "restored" / "config.json").exists()
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGINT)
            server.wait(timeout=20)
            assert server.stdout is not None
            server.stdout.close()
