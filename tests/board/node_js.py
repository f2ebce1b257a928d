"""Running the board's modules under Node, as the browser would load them (for byte checks)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from node.board_routes import BOARD_DIR


def run_board_js(
    tmp_path: Path, runner: str, cases: object, *, noble: tuple[str, ...], files: tuple[str, ...]
) -> Any:
    """Run ``runner`` (an ES module reading ``cases`` as JSON on stdin) under Node, beside the
    board's ``files`` and the vendored noble packages ``noble`` as ``@noble/<name>``; its JSON
    output."""
    modules = tmp_path / "node_modules" / "@noble"
    modules.mkdir(parents=True)
    for name in noble:
        shutil.copytree(BOARD_DIR / "vendor" / f"noble-{name}", modules / name)
    for name in files:
        shutil.copy(BOARD_DIR / name, tmp_path / name)
    (tmp_path / "package.json").write_text('{"type": "module"}')
    (tmp_path / "run.js").write_text(runner)
    proc = subprocess.run(
        ["node", "run.js"],
        cwd=tmp_path,
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
