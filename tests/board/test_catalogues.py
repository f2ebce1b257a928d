"""The board's message catalogues: every language says everything, with the same blanks.

A pod adds a language by adding a catalogue (docs/board.md); these checks are what keeps one
complete: the same keys as English, no key given twice, the same `{placeholders}` in each
message, and every key the board's code names literally present.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from node.board_routes import BOARD_DIR

CATALOGUES = sorted((BOARD_DIR / "i18n").glob("*.json"))
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _load(path: Path) -> dict[str, str]:
    def no_twice(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        assert not twice, f"{path.name} gives these keys twice: {twice}"
        return dict(pairs)

    loaded = json.loads(path.read_text("utf-8"), object_pairs_hook=no_twice)
    assert isinstance(loaded, dict)
    return loaded


def test_there_are_english_and_spanish() -> None:
    assert {p.stem for p in CATALOGUES} >= {"en", "es"}
    assert 'LANGS = ["en", "es"' in (BOARD_DIR / "i18n.js").read_text("utf-8")


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda p: p.stem)
def test_each_catalogue_has_every_message_with_the_same_blanks(path: Path) -> None:
    english = _load(BOARD_DIR / "i18n" / "en.json")
    other = _load(path)
    assert sorted(set(english) - set(other)) == []
    assert sorted(set(other) - set(english)) == []
    for key, text in english.items():
        assert isinstance(other[key], str) and other[key].strip(), (path.stem, key)
        assert set(PLACEHOLDER.findall(other[key])) == set(PLACEHOLDER.findall(text)), key


def _code() -> list[tuple[Path, str]]:
    files = [p for p in BOARD_DIR.rglob("*.js") if "vendor" not in p.parts]
    return [(p, p.read_text("utf-8")) for p in [*files, BOARD_DIR / "index.html"]]


def test_every_key_the_code_names_is_in_the_catalogue() -> None:
    english = _load(BOARD_DIR / "i18n" / "en.json")
    named = re.compile(r"""\bt\(\s*["']([\w.:\-]+)["']|data-i18n(?:-label)?=["']([\w.:\-]+)["']""")
    missing = []
    seen = set()
    for path, text in _code():
        for found in named.finditer(text):
            key = found.group(1) or found.group(2)
            seen.add(key)
            if key not in english:
                missing.append(f"{path.relative_to(BOARD_DIR)}: {key}")
    assert missing == []
    assert len(seen) > 200  # the pattern finds the code's keys (a broken one would pass empty)
