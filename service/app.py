"""The application factory: every route, middleware and exception handler, listed here."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from reviewer.app import create_console_app
from service.db import Database, DatabaseSessionMiddleware
from service.errors import (
    ChuishaoError,
    ServerErrorPageMiddleware,
    handle_domain_error,
    handle_http_exception,
)
from service.i18n import Catalogs
from service.middleware import (
    AccessLogMiddleware,
    LanguageMiddleware,
    NoClientAddressMiddleware,
    SecurityHeadersMiddleware,
)
from service.settings import Settings
from service.templating import make_environment
from service.views import public

STATIC_DIR = Path(__file__).resolve().parent / "static"


def resolve_secret_key(settings: Settings) -> str:
    """The signing secret: from settings, else from data_dir, created once with mode 0600."""
    if str(settings.secret_key):
        return str(settings.secret_key)
    path = settings.secret_key_path
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    with open(path, "x") as handle:
        path.chmod(0o600)
        handle.write(value)
    return value


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> Starlette:
    """Build the ASGI app. ``database`` lets tests run every request inside one transaction."""
    settings = settings or Settings.from_environ()
    secret_key = resolve_secret_key(settings)
    catalogs = Catalogs.load()
    templates = make_environment()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = database is None
        app.state.database = database or Database.from_url(settings.database)
        console.state.database = app.state.database
        try:
            yield
        finally:
            if owned:
                app.state.database.dispose()

    console = create_console_app(settings, secret_key=secret_key, catalogs=catalogs,
                                 templates=templates)

    routes = [
        Route("/", public.index, name="index"),
        Route("/language", public.switch_language, name="language"),
        Route("/healthz", public.health, name="health"),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        Mount("/console", console, name="console"),
    ]
    middleware = [
        Middleware(NoClientAddressMiddleware),
        Middleware(AccessLogMiddleware),
        Middleware(SecurityHeadersMiddleware, hsts=settings.secure_cookies),
        Middleware(LanguageMiddleware, default=settings.default_language,
                   secure=settings.secure_cookies),
        Middleware(ServerErrorPageMiddleware),
        Middleware(DatabaseSessionMiddleware),
    ]
    exception_handlers = {
        ChuishaoError: handle_domain_error,
        HTTPException: handle_http_exception,
    }
    app = Starlette(
        debug=False,  # tracebacks never reach a page, whatever settings.debug says
        routes=routes,
        middleware=middleware,
        exception_handlers=exception_handlers,
        lifespan=lifespan,
        max_body_size=settings.max_file_bytes,
    )
    app.state.settings = settings
    app.state.secret_key = secret_key
    app.state.catalogs = catalogs
    app.state.templates = templates
    if database is not None:
        app.state.database = database
        console.state.database = database
    return app
