"""The reviewer console: a sub-app mounted at /console with its own middleware."""

from __future__ import annotations

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reviewer import invitations
from service.bodylimit import BodyLimit
from service.db import get_session
from service.errors import ChuishaoError, handle_domain_error, handle_http_exception
from service.i18n import Catalogs
from service.settings import Settings
from service.templating import render


async def home(request: Request) -> Response:
    return render(request, "reviewer/home.html")


async def invitation(request: Request) -> Response:
    found = invitations.find_invitation(get_session(request), request.path_params["token"])
    return render(request, "reviewer/invitation.html", {"invitation": found})


def create_console_app(settings: Settings, *, secret_key: str, catalogs: Catalogs,
                       templates: jinja2.Environment) -> Starlette:
    routes = [
        Route("/", home, name="home"),
        Route("/invite/{token}", invitation, name="invitation"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            ChuishaoError: handle_domain_error,
            HTTPException: handle_http_exception,
        },
        middleware=[Middleware(BodyLimit, limit=settings.max_form_bytes)],
    )
    app.state.settings = settings
    app.state.secret_key = secret_key
    app.state.catalogs = catalogs
    app.state.templates = templates
    return app
