"""Throwaway PostgreSQL databases for tests: created fresh, dropped afterwards."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@contextmanager
def temporary_database(server_url: str) -> Iterator[str]:
    name = "chuishao_test_" + secrets.token_hex(6)
    admin = _with_database(server_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(server_url, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "check":
        print("usage: python -m tests.pgutil check POSTGRES_URL", file=sys.stderr)
        return 2
    from service.platform import migrate

    with temporary_database(argv[1]) as url:
        migrate.upgrade(url)
        migrate.check(url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
