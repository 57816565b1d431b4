"""Each reliability test gets its own database: a file in its data dir on SQLite, or a fresh
PostgreSQL database with ``--db=postgres`` (on the server of CHUISHAO_TEST_POSTGRES_URL)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.pgutil import temporary_database


@pytest.fixture
def server_database(db_backend: str) -> Iterator[str | None]:
    """None: the server's default SQLite file in its data dir. Else a PostgreSQL URL."""
    if db_backend != "postgres":
        yield None
        return
    server = os.environ.get("CHUISHAO_TEST_POSTGRES_URL")
    if not server:
        pytest.fail("--db=postgres needs CHUISHAO_TEST_POSTGRES_URL")
    with temporary_database(server) as url:
        yield url
