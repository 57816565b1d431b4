"""A live Chuishao server for browser tests: the real app under uvicorn, on a migrated
temporary SQLite database, with an initialised installation, one channel and two reviewers
holding real key pairs.

Use the ``live`` fixture (default fast settings) or ``live_factory(**overrides)`` for other
settings. Both are function-scoped: every test gets its own database and server.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.datastructures import Secret

from service.app import create_app
from service.platform import migrate
from service.platform.db import Database
from service.platform.settings import Settings
from tests.factories import World, make_world
from tests.serverproc import free_port, serve_in_thread


@dataclass
class LiveServer:
    base_url: str
    settings: Settings
    database_url: str
    database: Database
    channel_slug: str
    reviewer_keys: list[bytes]
    recovery_private: bytes
    world: World

    def session(self) -> contextlib.AbstractContextManager[Any]:
        """A committed session on the server's database (for checks and test data). It takes
        SQLite's write lock up front, as the server's own writers do: a read-then-write
        transaction beside a running server is otherwise refused at once."""
        return self.database.write_session()


def live_settings(data_dir: Path, database_url: str, port: int, **overrides: object) -> Settings:
    """Production code paths with cheap derivation costs, over plain HTTP on loopback."""
    values: dict[str, object] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "secret_key": Secret("live-test-secret-key-not-for-production"),
        "base_url": f"http://127.0.0.1:{port}",
        "host": "127.0.0.1",
        "port": port,
        "secure_cookies": False,
        "receipt_iterations": 1000,
        "password_iterations": 1000,
        "scrypt_n": 2**10,
        "pow_difficulty": 8,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@contextlib.contextmanager
def running_server(directory: Path, *, reviewers: int = 2,
                   **overrides: object) -> Iterator[LiveServer]:
    """Migrate a fresh database, set up the installation, serve the app until the end."""
    directory.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{directory / 'live.sqlite3'}"
    migrate.upgrade(url)
    port = free_port()
    settings = live_settings(directory / "var", url, port, **overrides)
    database = Database.from_url(url)
    with database.session() as session:
        world = make_world(session, settings, reviewers=reviewers)
        reviewer_keys = [r.private_key for r in world.reviewers]
    try:
        with serve_in_thread(create_app(settings), port) as base:
            yield LiveServer(base, settings, url, database, world.channel.slug,
                             reviewer_keys, world.recovery_private, world)
    finally:
        database.dispose()


@pytest.fixture
def live_factory(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """live_factory(**settings_overrides) starts a server; it stops at the end of the test."""
    stack = contextlib.ExitStack()
    count = 0

    def start(**overrides: object) -> LiveServer:
        nonlocal count
        count += 1
        return stack.enter_context(running_server(tmp_path / f"live{count}", **overrides))

    with stack:
        yield start


@pytest.fixture
def live(live_factory: Callable[..., LiveServer]) -> LiveServer:
    return live_factory()
