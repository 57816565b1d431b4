"""Engine and the one database session per request.

The lifespan owns the engine. ``DatabaseSessionMiddleware`` opens exactly one session per
request and decides its fate in one place: committed just before a successful response starts,
rolled back on an error status or an exception. Committing before the response starts means a
client is never told "stored" for something that was not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.platform import offload
from service.platform.bodylimit import replaying
from service.platform.errors import ChuishaoError, render_error, storage_cause

T = TypeVar("T")
IMMEDIATE = "chuishao_immediate"
# Writes that must outlive the request's own transaction (refusals in the audit trail, spent
# anti-abuse stamps). They run in a transaction of their own once the request's has ended:
# on SQLite the request holds the write lock until then, so writing earlier would deadlock.
Work = Callable[[Session], None]
_after_request: ContextVar[list[tuple[Work, bool]] | None] = ContextVar(
    "chuishao_after_request", default=None)


def run_after_request(database: Database, work: Work, *, only_if_refused: bool = False) -> None:
    """Run ``work`` in its own transaction: after the current request's, or now if none.

    ``only_if_refused``: skip it when the request succeeded (its own commit already did it).
    """
    pending = _after_request.get()
    if pending is not None:
        pending.append((work, only_if_refused))
        return
    with database.session() as session:
        work(session)

def insert_new(session: Session, table: Table, values: dict[str, Any]) -> bool:
    """Insert one row unless its primary key is taken; True if it was inserted. One
    statement, no savepoint: a duplicate neither raises nor spoils the transaction."""
    connection = session.connection()
    key = (table.name, connection.dialect.name)
    statement = _insert_new.get(key)
    if statement is None:  # built once per table: on the hot path, building costs most
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        # RETURNING, not rowcount: psycopg's insert results report no row count.
        statement = _insert_new[key] = (dialect.insert(table).on_conflict_do_nothing()
                                        .returning(*table.primary_key.columns))
    return connection.execute(statement, values).first() is not None


_insert_new: dict[tuple[str, str], Any] = {}


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Paths that never touch the database, so never wait for its gate: the health check must
# answer while every connection is busy.
NO_DATABASE = frozenset({"/healthz", "/favicon.ico"})


POOL_SIZE = 10
POOL_OVERFLOW = 5
# Short reads of their own (Database.read) at once on SQLite.
READERS = 4


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, open transactions, so SAVEPOINTs work as written.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            # First: the pragmas below wait for a lock too (a checkpoint truncating the log, a
            # writer's commit), and a connection opened under load must wait, not fail.
            cursor.execute("PRAGMA busy_timeout=10000")
            # Before anything else touches a new file: freed pages can then be given back
            # (service/domain/housekeeping.py). No effect on an existing file until it is converted.
            cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
            # WAL and full sync: an acknowledged report survives a crash.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            # A checkpoint every 16 MiB of log rather than every 4 MiB: one 4 MiB batch of file
            # chunks no longer pays a copy into the database and its fsync in each commit. The
            # log is durable either way; housekeeping truncates it.
            cursor.execute("PRAGMA wal_autocheckpoint=4096")
            cursor.execute("PRAGMA foreign_keys=ON")
            # What a deleted or moved row leaves in its page is zeroed: a row moved to its
            # random rowid (migration "timing") leaves no trace of the ordered one it had.
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Connection) -> None:
            # A writer takes the write lock up front: a deferred transaction that reads and
            # then writes can fail outright when another writer committed in between.
            if connection.get_execution_options().get(IMMEDIATE):
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                connection.exec_driver_sql("BEGIN")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    kwargs.setdefault("pool_size", POOL_SIZE)
    kwargs.setdefault("max_overflow", POOL_OVERFLOW)
    # No server-side prepared statements: after a few runs PostgreSQL switches a prepared
    # query to a generic plan, which for the case list's slot lookup walks every slot a
    # reviewer holds (hundreds of ms instead of one).
    connect_args = {"prepare_threshold": None, **kwargs.pop("connect_args", {})}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)


class Database:
    """Holds the session factory; built by the lifespan, or by tests around a transaction."""

    def __init__(self, bind: Engine | Connection, *, owns_engine: bool = True) -> None:
        self.bind = bind
        self.owns_engine = owns_engine and isinstance(bind, Engine)
        extra: dict[str, Any] = {}
        if isinstance(bind, Connection):
            # Tests: app commits become savepoint releases inside the test's transaction.
            extra["join_transaction_mode"] = "create_savepoint"
        self.sessionmaker = sessionmaker(bind=bind, expire_on_commit=False, **extra)
        self._gate: anyio.Semaphore | None = None
        # Told when a deferred write fails because storage is full or read-only (the app's
        # storage watch, which says so once instead of once per request).
        self.storage_failed: Callable[[str], None] | None = None
        self._readers: anyio.Semaphore | None = None

    @classmethod
    def from_url(cls, url: str) -> Database:
        return cls(make_engine(url))

    @property
    def dialect(self) -> str:
        return self.bind.dialect.name

    def gate(self) -> anyio.Semaphore | None:
        """An async gate in front of the database, so no request ever blocks the event loop
        waiting for it: SQLite has one writer at a time, PostgreSQL a pool of connections.
        Waiting happens here, asynchronously, instead of in a thread or on the loop."""
        if not isinstance(self.bind, Engine):
            return None  # tests: one shared connection, nothing to wait for
        if self._gate is None:
            size = 1 if self.dialect == "sqlite" else POOL_SIZE + POOL_OVERFLOW
            self._gate = anyio.Semaphore(size)
        return self._gate

    def _reader_gate(self) -> anyio.Semaphore | None:
        # SQLite readers need no writer's gate, but a flood of them must wait here, on the
        # loop, not in worker threads (each would hold one of the pool's and anyio's slots).
        if not isinstance(self.bind, Engine):
            return None
        if self._readers is None:
            self._readers = anyio.Semaphore(READERS)
        return self._readers

    async def read(self, work: Callable[[Session], T]) -> T:
        """``work`` in a short read-only session of its own, off the event loop; on
        PostgreSQL behind the gate (a pool connection), on SQLite beside the writer (WAL)."""
        gate = self.gate() if self.dialect != "sqlite" else self._reader_gate()

        def run() -> T:
            with self.sessionmaker() as session:
                try:
                    return work(session)
                finally:
                    session.rollback()

        if gate is None:
            return await anyio.to_thread.run_sync(run)
        async with gate:
            return await anyio.to_thread.run_sync(run)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session outside a request (command line, background work)."""
        session = self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """A session outside a request that reads then writes (background work, command
        line). On SQLite it takes the write lock up front, as a request does: a deferred
        transaction that reads and then writes fails at once ("database is locked", whatever
        busy_timeout says) when another writer committed in between."""
        with self.session() as session:
            if isinstance(self.bind, Engine) and self.dialect == "sqlite":
                session.connection(execution_options={IMMEDIATE: True})
            yield session

    @contextmanager
    def turn(self) -> Iterator[None]:
        """From a worker thread of the app's event loop: wait for the SQLite writers' gate
        before taking the write lock, and give it back after, so background writes queue
        with requests instead of holding the lock a request's thread is waiting for.
        Nothing to wait for on PostgreSQL (row locks) or outside an engine."""
        gate = self.gate() if self.dialect == "sqlite" else None
        if gate is None:
            yield
            return
        anyio.from_thread.run(_acquire_shielded, gate)
        try:
            yield
        finally:
            anyio.from_thread.run_sync(gate.release)

    def dispose(self) -> None:
        if self.owns_engine and isinstance(self.bind, Engine):
            self.bind.dispose()


class DatabaseSessionMiddleware:
    """Plain ASGI: one session per HTTP request, committed or rolled back here only."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["path"].startswith("/static/")
                or scope["path"] in NO_DATABASE):
            await self.app(scope, receive, send)
            return
        database: Database = scope["app"].state.database
        sqlite = database.dialect == "sqlite"
        writes = scope["method"] not in SAFE_METHODS or scope["path"].startswith("/console")
        # The body is already in (service.platform.bodylimit reads it whole, bounded and with
        # timeouts, before this layer; a streamed one is read by prepare, before the gate), so
        # no gate is ever held waiting on the network.
        with offload.request_memo():
            prepare = scope.get("chuishao.prepare")
            if prepare is not None:
                # CPU-heavy work (key derivations) before any gate: while it runs, other
                # requests keep the database, and it keeps no write lock.
                try:
                    # A streamed body (bodylimit.limited) is read by prepare as it arrives.
                    await prepare(Request(scope, receive if scope.get("chuishao.streamed")
                                          else replaying(scope.get("chuishao.body", b""),
                                                         receive)))
                except ChuishaoError as exc:
                    await _respond_error(scope, exc, send)
                    return
                except ClientDisconnect:
                    return  # gone mid-body: nobody to answer, and nothing was stored
            await self._with_session(scope, receive, send, database, sqlite, writes)

    async def _with_session(self, scope: Scope, receive: Receive, send: Send,
                            database: Database, sqlite: bool, writes: bool) -> None:
        # SQLite readers need no gate (WAL lets them run beside the writer).
        gate = database.gate() if (writes or not sqlite) else None
        held = False
        if gate is not None:
            await gate.acquire()
            held = True

        def release() -> None:
            nonlocal held
            if held and gate is not None:
                held = False
                gate.release()

        session = database.sessionmaker()
        pending: list[tuple[Work, bool]] = []
        token = _after_request.set(pending)
        finished = False
        try:
            if gate is not None:
                # Take the connection (and on SQLite the write lock) off the event loop.
                options = {IMMEDIATE: True} if writes and sqlite else {}
                await anyio.to_thread.run_sync(
                    lambda: session.connection(execution_options=options))
            scope.setdefault("state", {})["db"] = session

            async def send_wrapper(message: Message) -> None:
                nonlocal finished
                if message["type"] == "http.response.start" and not finished:
                    finished = True
                    # Off the event loop: a commit waits for the disk (synchronous=FULL).
                    if message["status"] < 400:
                        await anyio.to_thread.run_sync(session.commit)
                    else:
                        await anyio.to_thread.run_sync(session.rollback)
                    # Recorded before the client hears the answer, so a throttle or a spent
                    # stamp is in force for its very next request.
                    await _drain(session, database, pending, message["status"] >= 400)
                    if sqlite:
                        release()  # the write lock is free once committed
                await send(message)

            await self.app(scope, receive, send_wrapper)
        except BaseException:
            if not finished:
                await anyio.to_thread.run_sync(session.rollback)
            raise
        finally:
            _after_request.reset(token)
            try:
                await _drain(session, database, pending, True)
            finally:
                session.close()
                release()


async def _acquire_shielded(gate: anyio.Semaphore) -> None:
    # A worker thread's call back into the loop joins its host task's cancel scope. Once the
    # app is stopping that scope is cancelled, and an unshielded acquire never returns (the
    # thread, and with it the shutdown, would wait for ever); shielded, the round finishes
    # its turn and the task stops at its next await.
    with anyio.CancelScope(shield=True):
        await gate.acquire()


async def _drain(session: Session, database: Database, pending: list[tuple[Work, bool]],
                 refused: bool) -> None:
    """Deferred writes, each in its own transaction on the request's own connection (no
    second connection, so no second wait for the gate or the pool)."""
    work = [item for item, only_if_refused in pending if refused or not only_if_refused]
    pending.clear()
    if not work:
        return
    immediate = database.dialect == "sqlite" and isinstance(database.bind, Engine)
    await anyio.to_thread.run_sync(_run_pending, session, immediate, work,
                                   database.storage_failed)


def _run_pending(session: Session, immediate: bool, pending: list[Work],
                 storage_failed: Callable[[str], None] | None = None) -> None:
    if session.in_transaction():
        # The request's commit failed (disk full, connection lost) and left its transaction
        # half-finished ("prepared"): end it, so the deferred writes get a fresh one.
        session.rollback()
    for work in pending:
        try:
            if immediate:
                session.connection(execution_options={IMMEDIATE: True})
            work(session)
            session.commit()
        except Exception as exc:
            session.rollback()
            cause = storage_cause(exc)
            if cause is not None and storage_failed is not None:
                storage_failed(cause)
            else:
                logging.getLogger("chuishao.db").exception("a deferred write failed")


def get_session(request: Request) -> Session:
    session: Session = request.state.db
    return session


async def _respond_error(scope: Scope, exc: ChuishaoError, send: Send) -> None:

    response = render_error(Request(scope), exc.status, exc.code, exc.message, exc.params)

    async def no_receive() -> Message:
        return {"type": "http.disconnect"}

    await response(scope, no_receive, send)
