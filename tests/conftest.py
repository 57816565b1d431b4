"""Shared fixtures: a migrated database (SQLite or PostgreSQL), one transaction per test.

``--db=postgres`` runs the suite against a fresh database on the server named by
CHUISHAO_TEST_POSTGRES_URL. Every test runs inside a transaction rolled back at the end;
the app's own commits become savepoint releases inside it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session
from starlette.datastructures import Secret
from starlette.testclient import TestClient

from service.app import create_app
from service.platform import migrate
from service.platform.db import Database, make_engine
from service.platform.settings import Settings
from tests.pgutil import temporary_database

BASE_URL = "https://testserver"


# Whole folders that run real servers for minutes are `slow`: `make test-fast` skips them.
SLOW_FOLDERS = ("reliability", "deploy")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if any(f"/tests/{folder}/" in str(item.path) for folder in SLOW_FOLDERS):
            item.add_marker(pytest.mark.slow)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db", choices=["sqlite", "postgres"], default="sqlite",
                     help="database backend for the tests")


@pytest.fixture(scope="session")
def db_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.config.getoption("--db")
    return backend


@pytest.fixture(scope="session")
def db_url(db_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if db_backend == "postgres":
        server = os.environ.get("CHUISHAO_TEST_POSTGRES_URL")
        if not server:
            pytest.fail("--db=postgres needs CHUISHAO_TEST_POSTGRES_URL")
        with temporary_database(server) as url:
            migrate.upgrade(url)
            yield url
        return
    path = tmp_path_factory.mktemp("db") / "test.sqlite3"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    yield url


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            yield conn
        finally:
            transaction.rollback()


@pytest.fixture
def database(connection: Connection) -> Database:
    return Database(connection, owns_engine=False)


@pytest.fixture
def session(database: Database) -> Iterator[Session]:
    session = database.sessionmaker()
    try:
        yield session
    finally:
        session.close()


# Tables whose rows are seed data, kept when a committing test cleans up after itself.
SEED_TABLES = {"hazard_criteria", "alembic_version"}


@pytest.fixture
def committed_database(engine: Engine) -> Iterator[Database]:
    """A database whose transactions really commit (for tests that need two transactions,
    such as a refusal recorded while the request rolls back, or races). Emptied afterwards."""
    from service.domain.models import Base

    database = Database(engine, owns_engine=False)
    try:
        yield database
    finally:
        with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                if table.name not in SEED_TABLES:
                    conn.execute(table.delete())


def fast_settings(data_dir: Path, **overrides: object) -> Settings:
    """Production code paths with cheap derivation costs."""
    values: dict[str, object] = {
        "data_dir": data_dir,
        "secret_key": Secret("test-secret-key-not-for-production"),
        "base_url": BASE_URL,
        "secure_cookies": True,
        "receipt_iterations": 1000,
        "password_iterations": 1000,
        "scrypt_n": 2**10,
        "pow_difficulty": 4,
        "login_pow_difficulty": 2,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fast_settings(tmp_path / "var")


@pytest.fixture
def app(settings: Settings, database: Database):  # type: ignore[no-untyped-def]
    return create_app(settings, database=database)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, base_url=BASE_URL) as client:
        yield client


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """A headless Debian Chromium driven by Playwright (sync API), one for the whole run:
    Playwright's sync API allows one running instance per thread."""
    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, _require_chromium

    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()
