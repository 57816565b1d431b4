"""The report page carries only the texts its scripts show; none they show is missing."""

from __future__ import annotations

import json
import re
from pathlib import Path

from starlette.testclient import TestClient

from service.platform.assets import STATIC_DIR
from service.web import jsmessages

IMPORT = re.compile(r'(?:from|import)\s*\(?\s*"(\.[^"]+\.js)"')
LITERAL = re.compile(r'"([a-z_][a-z0-9_.]*)"|\'([a-z_][a-z0-9_.]*)\'')
PREFIX = re.compile(r"`([a-z_]+\.)\$\{")
# Literals that are values in the scripts and happen to equal a text's key.
NOT_TEXTS = {"send"}  # ui.js: choice("send", "unclean_send"), the radio button's value


def _modules(entry: str) -> set[Path]:
    seen: set[Path] = set()
    todo = [STATIC_DIR / "js" / entry]
    while todo:
        path = todo.pop().resolve()
        if path not in seen:
            seen.add(path)
            todo.extend(path.parent / name for name in IMPORT.findall(path.read_text()))
    return seen


def test_report_page_island_has_every_text_its_scripts_use() -> None:
    everything = jsmessages.as_json(lambda text: text)
    keys = set(json.loads(everything))
    chosen = set(json.loads(jsmessages.as_json(lambda text: text, "intake")))
    modules = _modules("intake.js")
    assert len(modules) > 10, "the import graph was not followed"
    used: set[str] = set()
    prefixes: set[str] = set()
    for path in modules:
        code = "\n".join(line for line in path.read_text().splitlines()
                         if not line.lstrip().startswith("//"))
        used |= ({a or b for a, b in LITERAL.findall(code)} & keys) - NOT_TEXTS
        prefixes |= set(PREFIX.findall(code))
    assert used, "no text keys found in the report page's scripts"
    assert used <= chosen, f"missing from the report page: {sorted(used - chosen)}"
    for prefix in prefixes:
        family = {key for key in keys if key.startswith(prefix)}
        assert family <= chosen, f"missing from the report page: {sorted(family - chosen)}"
    assert len(chosen) < len(keys) / 2, "the report page should not carry the follow-up texts"


def test_pages_embed_their_island(client: TestClient) -> None:
    island = re.compile(r'<script type="application/json" id="ui-messages">(.*?)</script>', re.S)
    intake = json.loads(island.search(client.get("/").text).group(1))  # type: ignore[union-attr]
    followup = json.loads(island.search(client.get("/followup").text).group(1))  # type: ignore[union-attr]
    assert "preparing" in intake and "claim_send" not in intake
    assert "claim_send" in followup and set(intake) < set(followup)
