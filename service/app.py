"""The application factory: every route, middleware and exception handler, listed here."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import anyio
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Mount, Route

from reviewer.app import create_console_app
from service.domain import (
    degraded,
    housekeeping,
    installation,
    intake,
    notify,
    sharedlimit,
    storage,
)
from service.domain.ratelimit import TokenBucket
from service.platform import assets, localtime, logs
from service.platform.bodylimit import RequestBody, limited
from service.platform.db import Database, DatabaseSessionMiddleware
from service.platform.errors import (
    ChuishaoError,
    ServerErrorPageMiddleware,
    handle_domain_error,
    handle_http_exception,
)
from service.platform.i18n import Catalogs
from service.platform.middleware import (
    AccessLogMiddleware,
    LanguageMiddleware,
    NoClientAddressMiddleware,
    SecurityHeadersMiddleware,
)
from service.platform.settings import Settings, resolve_secret_key
from service.platform.templating import make_environment
from service.web import api, board, jsmessages, public

log = logging.getLogger("chuishao.app")


def pin_secret_key(database: Database, secret_key: str) -> None:
    """On PostgreSQL, where several instances share one database, refuse to start with a
    secret key other than theirs (installation.pin_secret_key). SQLite has one process."""
    if database.dialect != "postgresql":
        return
    try:
        with database.session() as session:
            installation.pin_secret_key(session, secret_key)
    except installation.SecretKeyMismatch as refused:
        log.error("%s", refused)
        raise
    except DBAPIError:
        # Not migrated yet: /readyz says so; the check runs at the next start.
        log.warning("the secret key was not checked: the database is not at the newest schema")


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> Starlette:
    """Build the ASGI app. ``database`` lets tests run every request inside one transaction."""
    settings = settings or Settings.from_environ()
    localtime.install(settings.time_zone)
    secret_key = resolve_secret_key(settings)
    catalogs = Catalogs.load()
    templates = make_environment(jsmessages.as_json)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = database is None
        app.state.database = database or Database.from_url(settings.database)
        console.state.database = app.state.database
        app.state.database.storage_failed = app.state.storage.failed
        if owned:
            pin_secret_key(app.state.database, secret_key)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(logs.release_periodically, settings.time_granularity_seconds)
            if owned and settings.purge_minutes > 0:
                tasks.start_soon(housekeeping.run_forever, app.state.database,
                                 settings.purge_minutes * 60, settings)
            if owned and settings.notify_seconds > 0:
                tasks.start_soon(notify.run_forever, app.state.database, settings)
            if owned:
                tasks.start_soon(storage.watch_forever, app.state.storage, app.state.database,
                                 storage.WATCH_SECONDS)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()
                if owned:
                    app.state.database.dispose()

    console = create_console_app(
        settings, secret_key=secret_key, catalogs=catalogs, templates=templates
    )

    form, nojs, chunk = settings.max_form_bytes, settings.max_nojs_bytes, settings.max_chunk_bytes
    # A batch of chunks: at most BATCH_CHUNKS stored chunks, with the same slack as one chunk.
    batch = intake.BATCH_CHUNKS * intake.STORED_CHUNK + (chunk - intake.STORED_CHUNK)
    routes = [
        # Reporter pages (work without JavaScript).
        Route("/", public.index, name="index"),
        # The no-JavaScript form streams in (service/web/upload.py): files wait sealed on disk.
        Route("/report", limited(public.submit_report, nojs, prepare=public.prepare_report,
                                 streamed=True), methods=["POST"]),
        Route("/report/sent", public.receipt_page, name="receipt"),
        Route("/report/sent", limited(public.receipt_done, form), methods=["POST"]),
        Route("/followup", public.followup_form, name="followup"),
        Route("/followup", limited(public.followup_open, form, prepare=public.prepare_receipt),
              methods=["POST"]),
        Route("/followup/reply", limited(public.followup_reply, nojs,
                                         prepare=public.prepare_reply, streamed=True),
              methods=["POST"]),
        Route("/followup/file", limited(public.followup_download, form), methods=["POST"]),
        Route("/followup/claim",
              limited(public.followup_claim, form, prepare=public.prepare_receipt),
              methods=["POST"]),
        Route("/language", public.switch_language, name="language"),
        Route("/healthz", public.health, name="health"),
        Route("/readyz", public.ready, name="ready"),
        Route("/board", board.board_page, name="board"),
        # The public JSON API (docs/API.md).
        Route("/api/v1/channels", api.channels),
        Route("/api/v1/pow", api.pow_challenge),
        Route("/api/v1/submissions",
              limited(api.create_submission, form, prepare=api.prepare_submission),
              methods=["POST"]),
        Route("/api/v1/submissions/{case_id}", api.submission_status),
        Route("/api/v1/submissions/{case_id}", api.discard_submission, methods=["DELETE"]),
        Route("/api/v1/submissions/{case_id}/finish", api.finish_submission, methods=["POST"]),
        Route(
            "/api/v1/submissions/{case_id}/files/{file_id}/chunks/{index}",
            limited(api.put_submission_chunk, chunk),
            methods=["PUT"],
        ),
        Route(
            "/api/v1/submissions/{case_id}/files/{file_id}/batch/{first}/{count}",
            limited(api.put_submission_batch, batch),
            methods=["PUT"],
        ),
        Route("/api/v1/followup/session", limited(api.followup_session, form), methods=["POST"]),
        Route("/api/v1/followup", api.followup_feed),
        Route("/api/v1/followup/items", limited(api.followup_reply, form), methods=["POST"]),
        Route("/api/v1/followup/files", limited(api.followup_new_file, form), methods=["POST"]),
        Route(
            "/api/v1/followup/files/{file_id}/chunks/{index}",
            limited(api.followup_put_chunk, chunk),
            methods=["PUT"],
        ),
        Route("/api/v1/followup/files/{file_id}/chunks/{index}", api.followup_get_chunk),
        Route(
            "/api/v1/followup/files/{file_id}/batch/{first}/{count}",
            limited(api.followup_put_batch, batch),
            methods=["PUT"],
        ),
        Route("/api/v1/followup/files/{file_id}", api.followup_file_status),
        Route("/api/v1/followup/rewards", api.followup_rewards),
        Route("/api/v1/followup/rewards/{reward_id}/claim", limited(api.followup_claim, form),
              methods=["POST"]),
        Route(
            "/api/v1/followup/files/{file_id}/finish", api.followup_finish_file, methods=["POST"]
        ),
        Route("/static/{path:path}", assets.static, methods=["GET", "HEAD"], name="static"),
        Route("/favicon.ico", assets.favicon, methods=["GET", "HEAD"], name="favicon"),
        Mount("/console", console, name="console"),
    ]
    middleware = [
        Middleware(NoClientAddressMiddleware),
        Middleware(AccessLogMiddleware),
        Middleware(SecurityHeadersMiddleware, hsts=settings.secure_cookies),
        Middleware(assets.PageCompression),
        Middleware(
            LanguageMiddleware, default=settings.default_language, secure=settings.secure_cookies
        ),
        # Before the database layer: no body is read for an unknown route, none beyond its
        # route's limit, and none while holding a database gate.
        Middleware(RequestBody, default_limit=settings.max_form_bytes,
                   budget=settings.max_held_body_bytes, idle_seconds=settings.body_idle_seconds,
                   min_rate=settings.body_min_bytes_per_second),
        Middleware(ServerErrorPageMiddleware),
        Middleware(DatabaseSessionMiddleware),
    ]
    exception_handlers = {
        ChuishaoError: handle_domain_error,
        HTTPException: handle_http_exception,
    }
    app = Starlette(
        debug=False,  # tracebacks never reach a page
        routes=routes,
        middleware=middleware,
        exception_handlers=exception_handlers,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.secret_key = secret_key
    app.state.catalogs = catalogs
    app.state.templates = templates
    # Shared by every instance on PostgreSQL (service/domain/sharedlimit.py).
    dialect = database.dialect if database is not None else \
        make_url(settings.database).get_backend_name()
    app.state.nojs_submissions = sharedlimit.nojs_limit(settings, dialect,
                                                        lambda: app.state.database)
    # Sessions opened on a stamp held in memory while storage refuses writes (degraded.py):
    # a global budget, since such a stamp cannot be recorded as spent yet.
    app.state.held_sessions = TokenBucket(degraded.HELD_SESSIONS_PER_HOUR)
    app.state.storage = console.state.storage = storage.Watch(settings)
    app.state.held_stamps = console.state.held_stamps = degraded.HeldStamps(
        settings.time_granularity_seconds)
    app.state.storage.on_writable.append(app.state.held_stamps.flush)
    if database is not None:
        app.state.database = database
        console.state.database = database
    return app


def create_worker_app() -> Starlette:
    """One process of ``chuishao serve --workers N``: settings from the same environment."""
    settings = Settings.from_environ()
    logs.configure(settings.log_level)
    return create_app(settings)
