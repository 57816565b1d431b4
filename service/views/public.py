"""Public pages a reporter sees. Thin: domain work lives in services."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from service import channels
from service.db import get_session
from service.i18n import LANGUAGES
from service.middleware import cookie_name
from service.templating import render


async def index(request: Request) -> Response:
    active = channels.list_channels(get_session(request), active_only=True)
    return render(request, "public/index.html", {"channels": active})


def _safe_next(target: str | None) -> str:
    # Only same-site relative paths: the switch must not become an open redirect.
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


async def switch_language(request: Request) -> Response:
    chosen = request.query_params.get("lang", "")
    response = RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
    if chosen in LANGUAGES:
        settings = request.app.state.settings
        response.set_cookie(
            cookie_name("lang", settings.secure_cookies), chosen, max_age=365 * 24 * 3600,
            path="/", secure=settings.secure_cookies, httponly=True, samesite="strict",
        )
    return response


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})
