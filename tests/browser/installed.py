"""A fresh installation for browser tests, set up only as its administrator sets one up.

The database is migrated and the installation initialised with the command line
(``chuishao migrate``, ``chuishao init``); the first administrator's one-time link comes from
``chuishao invite --role admin``. Nothing else is written to the database: channels, accounts,
recipients and scope are left for the console. The app is served by uvicorn in a thread, with
the cheap derivation costs of tests/browser/live.py.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from service import cli
from service.app import create_app
from service.platform.db import Database
from service.platform.settings import Settings
from tests.browser.live import live_settings
from tests.serverproc import free_port, serve_in_thread


@dataclass
class Installed:
    base_url: str
    settings: Settings
    database: Database
    admin_link: str  # the path of the first administrator's invitation
    init_output: str

    def session(self) -> contextlib.AbstractContextManager[Session]:
        """A session for reading what the pages did (never for setting anything up)."""
        return self.database.session()


def run_cli(settings: Settings, *argv: str) -> str:
    """One `chuishao` command in this process; returns what it printed (it must succeed)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(list(argv), settings)
    assert code == 0, (argv, out.getvalue())
    return out.getvalue()


@contextlib.contextmanager
def installed(directory: Path, **overrides: object) -> Iterator[Installed]:
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    settings = live_settings(directory / "var", f"sqlite:///{directory / 'live.sqlite3'}",
                             port, **overrides)
    run_cli(settings, "migrate")
    init_output = run_cli(settings, "init")
    printed = run_cli(settings, "invite", "--role", "admin")
    link = next(line.strip() for line in printed.splitlines() if "/console/invite/" in line)
    assert link.startswith(settings.base_url)
    database = Database.from_url(settings.database)
    try:
        with serve_in_thread(create_app(settings), port, name="installed-chuishao"):
            yield Installed(settings.base_url.rstrip("/"), settings, database,
                            link[len(settings.base_url.rstrip("/")):], init_output)
    finally:
        database.dispose()
