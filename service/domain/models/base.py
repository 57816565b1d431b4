"""The schema's foundations: the declarative base, its naming rules, UTC datetimes and
random row ids. Every table module builds on this one."""

from __future__ import annotations

import datetime as dt
import math
import secrets
from typing import Any, cast

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, Table, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite has no time zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused; use timezone-aware UTC")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        moment: dt.datetime = value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def table_of(model: type[Base]) -> Table:
    """A model's table, for Core statements on the hot paths (inserts without the ORM)."""
    return cast(Table, model.__table__)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def floor_time(moment: dt.datetime, step: int) -> dt.datetime:
    """``moment`` rounded down to a multiple of ``step`` seconds (UTC)."""
    return dt.datetime.fromtimestamp(int(moment.timestamp()) // step * step, dt.UTC)


def ceil_time(moment: dt.datetime, step: int) -> dt.datetime:
    """``moment`` rounded up to a multiple of ``step`` seconds: for expiries, never earlier."""
    return dt.datetime.fromtimestamp(-(-math.ceil(moment.timestamp()) // step) * step, dt.UTC)


# Row ids of tables a reporter's action writes into are random, not handed out in order:
# an id between two reviewer rows stamped to the microsecond would date the reporter's
# action to the second (docs/THREAT-MODEL.md, "Time of a reporter's action"). 63 bits, so
# they fit PostgreSQL's bigint and SQLite's rowid, where the id *is* the rowid.
RANDOM_ID = BigInteger().with_variant(Integer(), "sqlite")


def random_row_id() -> int:
    return secrets.randbelow(2**63 - 1) + 1
