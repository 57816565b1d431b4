"""timing: random ids in notify_outbox, random SQLite rowids in followup_quotas, audit_deferred

Revision ID: timing_outbox
Revises: secret_key_check
Create Date: 2026-12-01

The same rule as migration `timing`, for two tables that came later
(docs/THREAT-MODEL.md, "Time of a reporter's action"). A new report, a reply and a reward
claim write notification rows, and so do staff actions (a reward proposed, a deadline
announced): ids handed out in order placed a reporter's row between two staff rows stamped
to the microsecond. Nothing references these ids but the retry button of a failed row, so
they are simply replaced, in a shuffled order. A follow-up session's quota row has a text
key, so on SQLite its rowid was handed out in order too: an insider following up their own
probe report before and after brackets a reporter's session. A claim's held audit entry
(text key) is given a random rowid for the same reason while it waits for its hour to end.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = 'timing_outbox'
down_revision = 'secret_key_check'
branch_labels = None
depends_on = None

TABLE = "notify_outbox"
ROWID_TABLES = ("followup_quotas", "audit_deferred")
TRIGGER = ("CREATE TRIGGER random_rowid_{table} AFTER INSERT ON {table} "
           "BEGIN UPDATE {table} SET rowid = random() WHERE rowid = NEW.rowid; END")


def _new_id(taken: set[int]) -> int:
    # Above every id handed out so far (they are small), so no new id meets an old one.
    while True:
        value = secrets.randbelow(2**63 - 2**32) + 2**32
        if value not in taken:
            taken.add(value)
            return value


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        for table in ROWID_TABLES:
            op.execute(f"UPDATE {table} SET rowid = random()")  # noqa: S608 - our names
            op.execute(TRIGGER.format(table=table))
    else:
        # bigint (random 63-bit ids), and no sequence any more.
        op.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id DROP DEFAULT")
        op.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id TYPE BIGINT")
        op.execute(f"DROP SEQUENCE IF EXISTS {TABLE}_id_seq")
    rows = sa.table(TABLE, sa.column("id", sa.BigInteger()))
    ids = list(conn.scalars(sa.select(rows.c.id)))
    taken: set[int] = set()
    order = sorted(ids, key=lambda _: secrets.randbits(64))
    if order:
        conn.execute(rows.update().where(rows.c.id == sa.bindparam("old"))
                     .values(id=sa.bindparam("new")),
                     [{"old": old, "new": _new_id(taken)} for old in order])


def downgrade() -> None:
    conn = op.get_bind()
    rows = sa.table(TABLE, sa.column("id", sa.BigInteger()))
    ids = list(conn.scalars(sa.select(rows.c.id).order_by(rows.c.id)))
    if ids:
        conn.execute(rows.update().where(rows.c.id == sa.bindparam("old"))
                     .values(id=sa.bindparam("new")),
                     [{"old": old, "new": new} for new, old in enumerate(ids, start=1)])
    if conn.dialect.name == "sqlite":
        for table in ROWID_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS random_rowid_{table}")
        return
    op.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id TYPE INTEGER")
    op.execute(f"CREATE SEQUENCE {TABLE}_id_seq OWNED BY {TABLE}.id")
    op.execute(f"SELECT setval('{TABLE}_id_seq', {len(ids) + 1}, false)")
    op.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{TABLE}_id_seq')")
