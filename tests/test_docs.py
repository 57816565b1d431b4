"""Every file and test the documentation names exists: the docs say "shown by" a test, and a
move of the code must not leave them pointing at nothing."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from service.platform.settings import PREFIX, Settings

ROOT = Path(__file__).resolve().parents[1]
NAMED = re.compile(r"`((?:tests|service|reviewer|crypto|bench|scripts|migrations|deploy|"
                   r"templates|docs)/[\w/.\-]+?)(?:::(\w+))?`")
# Browser modules are named as the pages import them, relative to the static folder.
STATIC_JS = ROOT / "service" / "static" / "js"
SETTING = re.compile(r"\bCHUISHAO_[A-Z0-9_]*[A-Z0-9]")


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


def test_named_settings_exist() -> None:
    """A `CHUISHAO_*` variable the documentation names is a setting, or one the scripts and
    tests read: a setting that was removed must not stay documented."""
    settings = {PREFIX + f.name.upper() for f in fields(Settings)}
    sources = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in [
        *ROOT.glob("**/*.py"), *ROOT.glob("scripts/*"), ROOT / "Makefile", ROOT / ".ci" / "run"]
        if p.is_file() and ".venv" not in p.parts)
    unknown = sorted({f"{document.name}: {name}" for document in _documents()
                      for name in SETTING.findall(document.read_text(encoding="utf-8"))
                      if name not in settings and name not in sources})
    assert not unknown, "\n".join(unknown)
