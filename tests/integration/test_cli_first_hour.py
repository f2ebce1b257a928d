"""The CLI a volunteer meets in their first hour (issue 14): the real ``kith`` command in a
subprocess, and the exact line a person reads."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import Pod, free_port, kith


def one_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line of a failed command (no traceback, nothing else)."""
    assert proc.returncode == 1, proc
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


# --- kith init ---------------------------------------------------------------------------


def test_init_refuses_a_blank_name_and_makes_nothing(tmp_path: Path) -> None:
    for name in ("", "   "):
        proc = kith("init", "--dir", str(tmp_path / "pod"), "--name", name, check=False)
        assert one_error(proc) == (
            "kith: error: the pod needs a name: kith init --name 'Elm Street Mutual Aid'"
            " (it cannot be blank)"
        )
        assert not (tmp_path / "pod").exists()


def test_a_failed_init_leaves_a_directory_of_yours_as_it_was(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    proc = kith("init", "--dir", str(mine), "--name", "x" * 81, check=False)
    assert one_error(proc) == "kith: error: the pod's name is 81 characters; keep it to 80 or fewer"
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]

    (mine / "root.key").write_text("a key of mine")
    proc = kith("init", "--dir", str(mine), "--name", "Elm", check=False)
    assert one_error(proc) == (
        f"kith: error: {mine} already holds root.key but no config.json (a pod half made by"
        " hand?): move it away, or give another --dir for a new pod"
    )
    assert (mine / "root.key").read_text() == "a key of mine"
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt", "root.key"]


def test_init_where_no_directory_can_be_made_says_so(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    proc = kith("init", "--dir", str(tmp_path / "a-file" / "pod"), "--name", "Elm", check=False)
    assert one_error(proc) == (
        f"kith: error: cannot make a pod in {tmp_path / 'a-file' / 'pod'}: Not a directory"
        " (choose a directory you may write with --dir)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_init_refuses_an_existing_pod(pod: Pod) -> None:
    before = sorted(p.name for p in pod.dir.iterdir())
    proc = kith("init", "--dir", str(pod.dir), "--name", "Again", check=False)
    assert one_error(proc) == (
        f"kith: error: {pod.dir} already holds a pod (config.json exists): serve it with"
        f" `kith serve --dir {pod.dir}`, or give another --dir for a new pod"
    )
    assert sorted(p.name for p in pod.dir.iterdir()) == before


def test_a_missing_data_directory_says_where_to_look(tmp_path: Path) -> None:
    proc = kith("serve", "--dir", str(tmp_path / "nowhere"), check=False)
    assert one_error(proc) == (
        "kith: error: no Kith data directory here (use --dir, or kith init to create a new pod):"
        f" {tmp_path / 'nowhere'} has no config.json"
    )


# --- kith serve, and the commands beside a running node ------------------------------------


def test_a_running_node_is_found_by_its_dir_and_said_to_be_running(
    pod: Pod, tmp_path: Path
) -> None:
    # Offline first: no node answers, so member add writes into the data directory.
    kith("key", "new", "--out", str(tmp_path / "ada.key"))
    added = kith("member", "add", "--dir", str(pod.dir), "--key-file", str(tmp_path / "ada.key"))
    assert added.stdout.startswith("member.added recorded (member added): ")

    pod.start()
    pid = pod.proc.pid if pod.proc is not None else 0
    second = kith("serve", "--dir", str(pod.dir), check=False)
    assert one_error(second) == (
        f"kith: error: {pod.dir} is in use by another kith process (pid {pid}), a running"
        f" `kith serve`? Stop the other node first (Ctrl-C where it runs, or `kill {pid}`),"
        " then run this again"
    )
    migrate = kith("migrate", "--dir", str(pod.dir), check=False)
    assert one_error(migrate) == second.stderr.strip()

    other = tmp_path / "other"
    kith("init", "--dir", str(other), "--name", "Oak", "--port", str(pod.port))
    taken = kith("serve", "--dir", str(other), check=False)
    assert one_error(taken) == (
        f"kith: error: port {pod.port} on 127.0.0.1 is already in use (another kith node, or"
        " another program): pick another with `kith serve --port N` (or `make run PORT=N`)"
    )

    # Online: no --url, and the node of --dir answers (an offline write would find it locked).
    kith("key", "new", "--out", str(tmp_path / "bo.key"))
    added = kith("member", "add", "--dir", str(pod.dir), "--key-file", str(tmp_path / "bo.key"))
    assert added.stdout.startswith("member.added recorded (member added): ")
    url = kith("calendar", "url", "--dir", str(pod.dir))
    assert url.stdout == f"http://127.0.0.1:{pod.port}/v1/calendar.ics\n"
    assert kith("calendar", "url", "--dir", str(tmp_path / "nowhere")).stdout == (
        "http://127.0.0.1:8470/v1/calendar.ics\n"
    )


def test_kith_serve_starts_without_a_warning(pod: Pod) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "serve", "--dir", str(pod.dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert first.startswith("Kith node for pod ") and first.endswith(
        f" listening on http://127.0.0.1:{pod.port}\n"
    )
    assert "Warning" not in err and err == ""


# --- kith tail ----------------------------------------------------------------------------


def test_tail_of_a_node_that_is_down_says_how_to_start_it(pod: Pod) -> None:
    proc = kith("tail", "--dir", str(pod.dir), check=False)
    assert one_error(proc) == (
        f"kith: error: no Kith node answers at {pod.url} (connection refused): start it with"
        f" `kith serve --dir {pod.dir}` (or point at another node with --url)"
    )


def test_tail_says_when_the_node_goes_away_and_comes_back(pod: Pod) -> None:
    pod.start()
    tail = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "tail", "--dir", str(pod.dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert tail.stdout is not None and tail.stderr is not None
        while not tail.stdout.readline().startswith("-- live after"):
            pass
        pod.stop()
        assert tail.stderr.readline() == (
            "-- the node went away (connection closed); retrying in 0.5s (Ctrl-C to stop) --\n"
        )
        pod.start()
        line = tail.stderr.readline()
        while line.startswith("-- still down"):
            line = tail.stderr.readline()
        assert line == "-- the node is back; resuming --\n"
    finally:
        tail.send_signal(signal.SIGINT)
        tail.communicate(timeout=30)
    assert tail.returncode == 0


# --- kith demo ----------------------------------------------------------------------------


def test_demo_does_not_say_to_start_itself_and_cleans_up(tmp_path: Path) -> None:
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert demo.stdout is not None
    out = []
    while not (line := demo.stdout.readline()).startswith("Kith node for pod"):
        assert line, "kith demo ended before serving"
        out.append(line)
    (folder,) = re.findall(r"hours in (\S+)\n", "".join(out))
    assert Path(folder).parent == tmp_path and Path(folder).is_dir()
    assert not any(line.startswith("Start the node") for line in out)
    assert out[-1] == (
        "Ctrl-C stops the demo and removes its folder (keep one with kith demo --dir).\n"
    )
    demo.send_signal(signal.SIGTERM)
    _, err = demo.communicate(timeout=30)
    assert err == ""
    assert list(tmp_path.iterdir()) == []
