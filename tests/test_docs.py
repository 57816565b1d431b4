"""Every file and test the documentation names exists: the docs say "shown by" a test, and a
move of the code must not leave them pointing at nothing."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMED = re.compile(r"`((?:tests|service|reviewer|crypto|bench|scripts|migrations|deploy|"
                   r"templates|docs)/[\w/.\-]+?)(?:::(\w+))?`")
# Browser modules are named as the pages import them, relative to the static folder.
STATIC_JS = ROOT / "service" / "static" / "js"


def _documents() -> list[Path]:
    return [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md", ROOT / "bench" / "README.md"]


def test_named_files_and_tests_exist() -> None:
    missing = []
    for document in _documents():
        for found in NAMED.finditer(document.read_text(encoding="utf-8")):
            name, function = found.group(1), found.group(2)
            if "/ID." in name:  # a placeholder: policies/ID.toml
                continue
            path = ROOT / name.rstrip("/")
            if not path.exists() and (STATIC_JS / name).exists():
                path = STATIC_JS / name
            if not path.exists():
                missing.append(f"{document.name}: {name}")
            elif function and f"def {function}(" not in path.read_text(encoding="utf-8"):
                missing.append(f"{document.name}: {name}::{function}")
    assert not missing, "\n".join(missing)
