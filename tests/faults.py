"""Real faults for tests: a small filesystem that can be filled, a commit that fails.

A tmpfs of a few MB is mounted for the data directory (this needs root; where mounting is
not allowed the test is skipped, never faked). Filling it makes SQLite fail exactly as on a
full disk. On PostgreSQL a commit fails for real when the server ends the backend under it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Connection, Engine, event


@contextlib.contextmanager
def small_filesystem(path: Path, size_mb: int = 8) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(path)],
        capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"a small filesystem cannot be mounted here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


class Filler:
    """Takes every free byte of a filesystem, and gives it back."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "filler.bin"

    def fill(self) -> None:
        block = b"\0" * 65536
        with open(self.path, "ab", buffering=0) as handle:
            for size in (65536, 4096, 512, 1):
                while True:
                    try:
                        handle.write(block[:size])
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break

    def free(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class FailingCommit:
    """Makes the next commit on ``engine`` fail for real, once; then the fault is gone.

    SQLite: the data directory's filesystem fills just before COMMIT writes the log, and is
    emptied again once the failure has been raised (a disk full for one moment).
    PostgreSQL: the server ends the request's backend just before COMMIT.
    """

    def __init__(self, engine: Engine, filler: Filler | None = None,
                 server_url: str | None = None) -> None:
        self.engine, self.filler, self.server_url = engine, filler, server_url
        self.armed = False
        self.fired = 0
        event.listen(engine, "commit", self._before_commit)
        event.listen(engine, "handle_error", self._after_failure)

    def arm(self) -> None:
        self.armed = True

    def remove(self) -> None:
        event.remove(self.engine, "commit", self._before_commit)
        event.remove(self.engine, "handle_error", self._after_failure)

    def _before_commit(self, connection: Connection) -> None:
        if not self.armed:
            return
        self.armed = False
        self.fired += 1
        if self.filler is not None:
            self.filler.fill()
            return
        assert self.server_url is not None
        pid = connection.connection.driver_connection.info.backend_pid  # type: ignore[union-attr]
        with psycopg.connect(self.server_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    def _after_failure(self, _context: object) -> None:
        if self.filler is not None:
            self.filler.free()


def free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


class ReadOnlyDatabase:
    """PostgreSQL: the database turns read-only for every new transaction (as a replica
    promoted back, or an operator's emergency switch), then writable again."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.name = database_url.rsplit("/", 1)[1]

    def _set(self, value: str) -> None:
        admin = self.url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{self.name}" SET default_transaction_read_only = {value}')
            # The setting applies to new sessions: end the ones open now (the pool reconnects).
            conn.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                         "WHERE datname = %s AND pid <> pg_backend_pid()", (self.name,))

    def fill(self) -> None:
        self._set("on")

    def free(self) -> None:
        self._set("off")
