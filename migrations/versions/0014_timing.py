"""nothing stored dates a reporter's action finer than the time granularity

Random row ids where reporters write (no sequence, no order), random SQLite rowids for the
tables with text keys, item positions counted per author, transient expiries rounded up.
See docs/THREAT-MODEL.md, "Time of a reporter's action".

Revision ID: timing
Revises: dos_quota
Create Date: 2026-12-01
"""

from __future__ import annotations

import datetime as dt
import secrets

import sqlalchemy as sa
from alembic import op

from service.domain.models import UTCDateTime, ceil_time
from service.platform.settings import Settings

revision = 'timing'
down_revision = 'dos_quota'
branch_labels = None
depends_on = None

# Integer ids handed out in order until now. None of them is referenced by another row or
# bound into any ciphertext (PROTOCOL.md binds case, item, file and reward ids, all random
# already), so they are simply replaced.
RANDOM_ID_TABLES = ("key_slots", "case_events", "reward_claim_slots")
# Tables with text keys that reporters write into: on SQLite every row also has a rowid,
# handed out in order, which would order a reporter's row among reviewers' rows.
ROWID_TABLES = ("cases", "sealed_items", "files", "file_chunks", "spent_stamps")
# Expiries of drafts, uploads and spent stamps are kept rounded up to this many seconds
# (the installation's granularity when known; at least an hour). Kept longer, never shorter.
TRIGGER = ("CREATE TRIGGER random_rowid_{table} AFTER INSERT ON {table} "
           "BEGIN UPDATE {table} SET rowid = random() WHERE rowid = NEW.rowid; END")
EXPIRIES = (("cases", "id", "draft_expires_at"), ("files", "id", "upload_expires_at"),
            ("spent_stamps", "digest", "expires_at"))


def _granularity() -> int:
    try:
        return max(3600, Settings.from_environ().time_granularity_seconds)
    except Exception:  # noqa: BLE001 - an unreadable environment falls back to the default
        return 3600


def _new_id(taken: set[int]) -> int:
    # Above every id handed out so far (they are small), so no new id meets an old one.
    while True:
        value = secrets.randbelow(2**63 - 2**32) + 2**32
        if value not in taken:
            taken.add(value)
            return value


def upgrade() -> None:
    conn = op.get_bind()
    sqlite = conn.dialect.name == "sqlite"
    for table in RANDOM_ID_TABLES:
        if not sqlite:
            # bigint (random 63-bit ids), and no sequence any more.
            op.execute(f"ALTER TABLE {table} ALTER COLUMN id DROP DEFAULT")
            op.execute(f"ALTER TABLE {table} ALTER COLUMN id TYPE BIGINT")
            op.execute(f"DROP SEQUENCE IF EXISTS {table}_id_seq")
        rows = sa.table(table, sa.column("id", sa.BigInteger()))
        ids = list(conn.scalars(sa.select(rows.c.id)))
        taken: set[int] = set()
        # Shuffled first, so not even the order of the updates follows the old order.
        order = sorted(ids, key=lambda _: secrets.randbits(64))
        if order:
            conn.execute(rows.update().where(rows.c.id == sa.bindparam("old"))
                         .values(id=sa.bindparam("new")),
                         [{"old": old, "new": _new_id(taken)} for old in order])

    # Positions were counted per case, so a reply's number sat between two reviewer
    # messages'. Now per author, in the same order as before.
    rows = conn.execute(sa.text(
        "SELECT id, case_id, author FROM sealed_items ORDER BY case_id, author, position, id"))
    updates, last, number = [], None, 0
    for item_id, case_id, author in rows:
        number = number + 1 if (case_id, author) == last else 1
        last = (case_id, author)
        updates.append({"id": item_id, "position": number})
    if updates:
        conn.execute(sa.text("UPDATE sealed_items SET position = :position WHERE id = :id"),
                     updates)

    step = _granularity()
    stamps = sa.table("spent_stamps", sa.column("expires_at", UTCDateTime()))
    conn.execute(stamps.delete().where(stamps.c.expires_at < dt.datetime.now(dt.UTC)))
    for table, key, column in EXPIRIES:
        rows = sa.table(table, sa.column(key, sa.String()), sa.column(column, UTCDateTime()))
        found = conn.execute(sa.select(rows.c[key], rows.c[column])
                             .where(rows.c[column].is_not(None))).all()
        if found:
            conn.execute(rows.update().where(rows.c[key] == sa.bindparam("row_key"))
                         .values({column: sa.bindparam("rounded")}),
                         [{"row_key": row_key, "rounded": ceil_time(moment, step)}
                          for row_key, moment in found])

    # A reporter's activity used to set `updated_at` back to its period's start over a
    # reviewer's exact time in that period, which showed it came after that reviewer. Now it
    # never moves back: put back the latest reviewer time where it had been replaced.
    cases = sa.table("cases", sa.column("id", sa.String()), sa.column("updated_at", UTCDateTime()))
    events = sa.table("case_events", sa.column("case_id", sa.String()),
                      sa.column("user_id", sa.Integer()), sa.column("created_at", UTCDateTime()))
    latest = (sa.select(events.c.case_id, sa.func.max(events.c.created_at).label("latest"))
              .where(events.c.user_id.is_not(None)).group_by(events.c.case_id).subquery())
    behind = conn.execute(sa.select(cases.c.id, latest.c.latest)
                          .join(latest, latest.c.case_id == cases.c.id)
                          .where(latest.c.latest > cases.c.updated_at)).all()
    if behind:
        conn.execute(cases.update().where(cases.c.id == sa.bindparam("case"))
                     .values(updated_at=sa.bindparam("latest")),
                     [{"case": case_id, "latest": moment} for case_id, moment in behind])

    if sqlite:
        for table in ROWID_TABLES:
            # Existing rows get random rowids; every new row is moved to one as it is
            # inserted (the key columns, which other rows reference, do not change).
            op.execute(f"UPDATE {table} SET rowid = random()")  # noqa: S608 - our names
            op.execute(TRIGGER.format(table=table))


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        for table in ROWID_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS random_rowid_{table}")
        return
    for table in RANDOM_ID_TABLES:
        # Back to an integer sequence: ids are renumbered (nothing references them).
        rows = sa.table(table, sa.column("id", sa.BigInteger()))
        ids = list(conn.scalars(sa.select(rows.c.id).order_by(rows.c.id)))
        if ids:
            conn.execute(rows.update().where(rows.c.id == sa.bindparam("old"))
                         .values(id=sa.bindparam("new")),
                         [{"old": old, "new": new} for new, old in enumerate(ids, start=1)])
        op.execute(f"ALTER TABLE {table} ALTER COLUMN id TYPE INTEGER")
        op.execute(f"CREATE SEQUENCE {table}_id_seq OWNED BY {table}.id")
        op.execute(f"SELECT setval('{table}_id_seq', {len(ids) + 1}, false)")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN id SET DEFAULT nextval('{table}_id_seq')")
