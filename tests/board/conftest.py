"""A real node on loopback and the system's Chromium, driven by Playwright."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Pod, free_port, kith

#: Debian's chromium package (installed by .ci/run); never a browser build Playwright downloads.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Screenshots and other artifacts of the last run (gitignored).
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="module")
def board_pod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pod]:
    """A pod named Elm Street, served by a real `kith serve` process."""
    port = free_port()
    data = tmp_path_factory.mktemp("board") / "pod"
    kith("init", "--dir", str(data), "--name", "Elm Street", "--port", str(port))
    pod = Pod(data, port)
    pod.start()
    yield pod
    pod.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless Chromium for the module's tests."""
    from playwright.sync_api import sync_playwright

    assert shutil.which(CHROMIUM), f"{CHROMIUM} is missing: .ci/run installs Debian's chromium"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
