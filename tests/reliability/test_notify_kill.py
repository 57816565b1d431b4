"""A notification in flight when `chuishao serve` is killed with SIGKILL is not lost: its rows
stay leased in the outbox, and the restarted server's worker sends them once the lease ends.

The kill comes while the mail server holds the whole message but has not answered: it drops
the transaction, and the message arrives once after the restart. Had it answered just before
the kill, the message would arrive twice with the same Message-ID (docs/OPERATIONS.md,
"Notifications"): at least once, never zero times.

On PostgreSQL, two workers running at the same time deliver every row once
(``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from service.domain import notify
from service.domain.models import User, utcnow
from service.domain.models.notify import NotifyOutbox
from service.platform.db import Database
from service.platform.settings import Settings
from tests.domain.test_notify import Mailbox, start
from tests.factories import make_reviewer
from tests.reliability.live import deploy, make_report
from tests.serverproc import run_cli


def _wait(condition, seconds: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _choose_email(database: Database, usernames: list[str]) -> None:
    with database.session() as session:
        for name in usernames:
            user = session.scalar(select(User).where(User.username == name))
            assert user is not None
            notify.save_preference(session, user, {"via": "email", "email": f"{name}@example.org",
                                                   "kinds_default": "1"}, [])


def _states(database: Database) -> list[str]:
    with database.session() as session:
        return sorted(session.scalars(select(NotifyOutbox.state)))


def test_sigkill_mid_delivery_loses_nothing(tmp_path: Path, server_database: str | None) -> None:
    box = Mailbox(hold=threading.Event())
    controller, port = start({}, box)
    try:
        deployment = deploy(tmp_path, server_database, CHUISHAO_TIME_GRANULARITY_SECONDS="1",
                            CHUISHAO_SMTP_HOST="127.0.0.1", CHUISHAO_SMTP_PORT=str(port),
                            CHUISHAO_SMTP_SECURITY="none", CHUISHAO_NOTIFY_SECONDS="1",
                            CHUISHAO_NOTIFY_LEASE_SECONDS="3")
        database = deployment.database()
        try:
            _choose_email(database, ["reviewer0", "reviewer1"])
            server = deployment.server()
            server.start()
            try:
                deployment.learn_channel(server.base)
                deployment.client(server.base).submit("acme", make_report(1))
                # The worker is inside DATA for the first person: the message is whole at the
                # mail server, the row not yet marked sent. Kill it there.
                assert box.in_data.wait(30), server.log_tail()
                server.kill9()
            finally:
                server.stop()
            assert _states(database) == ["sending", "sending"]
            # The mail server drops the transaction whose client died before its answer.
            box.hold.set()  # type: ignore[union-attr]
            time.sleep(0.5)
            assert box.messages == []
            # Restarted: the lease runs out, the rows are taken again and sent.
            again = deployment.server("server2.log")
            again.start()
            try:
                _wait(lambda: _states(database) == ["sent", "sent"])
            finally:
                again.stop()
            recipients = sorted({m["To"] for m in box.messages})
            assert recipients == ["reviewer0@example.org", "reviewer1@example.org"]
            assert len(box.messages) == 2  # each exactly once
            # And the command line finds nothing left to do.
            done = run_cli(deployment.env, "notify", "run-once")
            assert done.returncode == 0 and "sent 0" in done.stdout, done.stderr
        finally:
            database.dispose()
    finally:
        controller.stop()


def _counted(texts: list[str]) -> int:
    return sum(int(n) for text in texts for n in re.findall(r"(?:New reports: |新举报：)(\d+)", text))


@pytest.mark.postgres
def test_two_workers_deliver_each_row_once(db_backend: str, tmp_path: Path,
                                           server_database: str | None) -> None:
    if db_backend != "postgres":
        pytest.skip("row locks are PostgreSQL's; SQLite has one writer at a time")
    box = Mailbox(delay=0.02)  # a send takes a moment, as a real one does
    controller, port = start({}, box)
    try:
        deployment = deploy(tmp_path, server_database)
        database = deployment.database()
        try:
            names = [f"reviewer{i}" for i in range(2)]
            with database.session() as session:
                from service.domain.models import Channel
                channel = session.scalar(select(Channel).where(Channel.slug == "acme"))
                names += [make_reviewer(session, f"extra{i}", channel).user.username
                          for i in range(10)]
                for name in names:
                    user = session.scalar(select(User).where(User.username == name))
                    notify.save_preference(session, user, {
                        "via": "email", "email": f"{name}@example.org", "kinds_default": "1"},
                        [])
                ids = [u for u in session.scalars(select(User.id))]
                for _ in range(5):
                    notify.enqueue(session, "new_case", ids, not_before=utcnow())
            rows = 5 * len(names)
            settings = Settings(database_url=deployment.database_url, smtp_host="127.0.0.1",
                                smtp_port=port, smtp_security="none", base_url="https://x")
            later = utcnow() + dt.timedelta(minutes=1)
            sent = [0, 0]

            def work(index: int) -> None:
                deadline = time.monotonic() + 60
                while set(_states(database)) != {"sent"} and time.monotonic() < deadline:
                    done, failed = notify.deliver_once(database, settings, now=later, limit=3)
                    assert not failed
                    sent[index] += done
                    if not done:
                        time.sleep(0.02)

            workers = [threading.Thread(target=work, args=(i,)) for i in range(2)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(120)
            assert all(sent), sent  # both took part
            texts = [m.get_payload(decode=True).decode() for m in box.messages]
            assert _counted(texts) == rows
            assert len({m["Message-ID"] for m in box.messages}) == len(box.messages)
            assert _states(database) == ["sent"] * rows
        finally:
            database.dispose()
    finally:
        controller.stop()
