"""The reviewer console: a sub-app mounted at /console with its own middleware."""

from __future__ import annotations

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from reviewer.auth import ConsoleAuthMiddleware, NotSignedIn
from reviewer.views import accounts, admin, cases, notifications, posters, rectification, rewards
from service.platform.bodylimit import BodyLimit
from service.platform.errors import (
    ChuishaoError,
    handle_domain_error,
    handle_http_exception,
    handle_server_error,
    wants_json,
)
from service.platform.i18n import Catalogs
from service.platform.settings import Settings


async def home(request: Request) -> Response:
    if request.scope.get("user") is None:
        return RedirectResponse("/console/login", status_code=303)
    return RedirectResponse("/console/cases", status_code=303)


async def handle_not_signed_in(request: Request, exc: Exception) -> Response:
    # Pages send the visitor to the sign-in form; the console's JSON calls get a 401.
    if request.method == "GET" and not wants_json(request):
        return RedirectResponse("/console/login", status_code=303)
    return await handle_domain_error(request, exc)


def create_console_app(settings: Settings, *, secret_key: str, catalogs: Catalogs,
                       templates: jinja2.Environment) -> Starlette:
    routes = [
        Route("/", home, name="home"),
        *accounts.ROUTES,
        *cases.ROUTES,
        *admin.ROUTES,
        *notifications.ROUTES,
        *posters.ROUTES,
        *rewards.ROUTES,
        *rectification.ROUTES,
    ]
    middleware = [
        Middleware(BodyLimit, limit=settings.max_form_bytes),
        Middleware(ConsoleAuthMiddleware),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            NotSignedIn: handle_not_signed_in,
            ChuishaoError: handle_domain_error,
            HTTPException: handle_http_exception,
            # The sub-app has its own outermost error middleware: give it our translated page.
            Exception: handle_server_error,
        },
    )
    app.state.settings = settings
    app.state.secret_key = secret_key
    app.state.catalogs = catalogs
    app.state.templates = templates
    return app
