"""Alembic environment: SQLite and PostgreSQL, URL from the project's settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from service.domain.models import Base
from service.platform.db import make_engine
from service.platform.settings import Settings

config = context.config
target_metadata = Base.metadata


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    # Callers (the command line, tests) may hand over an open connection.
    connection = config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    url = config.attributes.get("url") or Settings.from_environ().database
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run against a database")
main()
