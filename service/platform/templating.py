"""Jinja2 rendering with the request's language, CSRF token and asset URLs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from service.platform import assets, localtime, resources
from service.platform.i18n import HTML_LANG, Catalogs

TEMPLATE_DIR = resources.shipped("templates")


@jinja2.pass_context
def _localtime(context: Any, moment: dt.datetime | None, precision: str = "minute") -> str:
    """``{{ when | localtime }}``: in the installation's zone, labelled with its offset;
    ``localtime("date")`` the day only; ``localtime("coarse")`` a reporter's time, stored
    only to the installation's granularity, as the span it stands for."""
    if precision == "coarse":
        request = context.get("request")
        step = request.app.state.settings.time_granularity_seconds if request is not None \
            else 3600
        return localtime.show(moment, "minute", granularity=step)
    return localtime.show(moment, precision)


# (translate, page) -> the JSON island of a page's script texts; page None gives them all.
Messages = Callable[[Callable[..., str], str | None], str]


def _no_messages(translate: Callable[..., str], page: str | None = None) -> str:
    return "{}"


def make_environment(messages: Messages | None = None) -> jinja2.Environment:
    """``messages`` turns a translator into the JSON island of strings the page scripts
    show; the web layer supplies it, so this layer need not know the domain's words."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # One way to show a time everywhere (templates never call strftime on a stored time).
    environment.filters["localtime"] = _localtime
    environment.filters["isotime"] = localtime.iso
    # Templates name static files only through asset(): a content-hashed, long-cached URL.
    environment.globals["asset"] = assets.url
    environment.globals["_ui_messages"] = messages or _no_messages
    return environment


def language(request: Request) -> str:
    lang: str = request.scope.get("language") or request.app.state.settings.default_language
    return lang


def translator(request: Request) -> Callable[..., str]:
    catalogs: Catalogs = request.app.state.catalogs
    return catalogs.gettext(language(request))


def render(request: Request, name: str, context: dict[str, Any] | None = None,
           *, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    environment: jinja2.Environment = request.app.state.templates
    lang = language(request)
    translate = translator(request)
    messages: Messages = environment.globals["_ui_messages"]  # type: ignore[assignment]
    full = {
        "request": request,
        "_": translate,
        "lang": lang,
        "html_lang": HTML_LANG[lang],
        "other_lang": "en" if lang == "zh_CN" else "zh_CN",
        "csrf_token": request.scope.get("csrf_token", ""),
        "key_handle": request.scope.get("key_handle", ""),
        "user": request.scope.get("user"),
        "current_path": request.url.path,
        "js_messages": lambda page=None: messages(translate, page),
        **(context or {}),
    }
    body = environment.get_template(name).render(full)
    return HTMLResponse(body, status_code=status, headers=headers)
