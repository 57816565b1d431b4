"""Console views: administration of users, invitations and channels (role ``admin`` only).

Nothing here opens a report: an administrator manages accounts, who receives new cases (active
reviewers only) and each account's scope (whose plaintext records it may see, any role).
Every action is recorded in the audit trail in the request's own transaction; a refused one
through ``audit.record_refusal``, since that transaction is rolled back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from reviewer.auth import current_user, require_roles
from reviewer.views.accounts import script_messages
from reviewer.views.refused import refused
from service.domain import (
    accounts,
    audit,
    channels,
    invitations,
    labels,
    recipients,
    refusals,
    storage,
)
from service.domain.installation import get_installation
from service.domain.models import ROLES, utcnow
from service.platform.db import get_session
from service.platform.errors import ChuishaoError, InvalidInput
from service.platform.i18n import N_
from service.platform.settings import Settings
from service.platform.templating import language, render

View = Callable[[Request], Awaitable[Response]]


def _page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    lang = language(request)
    names = {channel.id: (channel.name_en if lang == "en" and channel.name_en
                          else channel.name_zh) or channel.slug
             for channel in channels.list_channels(get_session(request))}
    return render(request, name, {"script_messages": script_messages(request), "roles": ROLES,
                                  "role_labels": labels.ROLE_LABELS,
                                  "kind_labels": labels.CHANNEL_KIND_LABELS,
                                  "role_names": labels.role_names, "channel_names": names,
                                  "error": None, "form": None, "done": None, **context},
                  status=status)


def _refused(request: Request, name: str, error: ChuishaoError) -> str:
    # The administration pages record the path as the target and the code as the "reason".
    return refused(request, name, request.url.path, error, key="reason")


def action(name: str) -> Callable[[View], View]:
    """An admin-only state change; a refusal is recorded before it is answered."""

    def decorate(view: View) -> View:
        @require_roles("admin")
        @wraps(view)
        async def wrapped(request: Request) -> Response:
            try:
                return await view(request)
            except ChuishaoError as error:
                audit.record_refusal(request.app.state.database, name,
                                     actor_id=current_user(request).id,
                                     target=request.url.path[:100],
                                     details={"reason": error.code})
                raise

        return wrapped

    return decorate


def _int(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise InvalidInput() from None


# ---------------------------------------------------------------------------- users


@require_roles("admin")
async def users_page(request: Request) -> Response:
    return _users(request, {})


def _users(request: Request, extra: dict[str, Any], status: int = 200) -> Response:
    session = get_session(request)
    settings: Settings = request.app.state.settings
    rows = recipients.user_rows(session, v2_only=settings.require_v2)
    now = utcnow()
    # Free space is read now; the database checks come from the last background round (a
    # probe write from inside this request would wait for the write lock it holds).
    last = request.app.state.storage.last
    problems = [name for name, check in last.checks.items() if not check["ok"]] if last else []
    done = request.query_params.get("done")
    shown = str(request.query_params.get("user") or "")
    return _page(request, "reviewer/admin.html", {
        "done": done if done in ("roles",) else None,
        "done_user": int(shown) if shown.isdigit() and len(shown) < 10 else 0,
        "rows": rows, "me": current_user(request),
        "classical_count": recipients.classical_count(rows), "require_v2": settings.require_v2,
        "disk": storage.disk(settings), "storage_problems": problems,
        "remote_database": request.app.state.database.dialect != "sqlite",
        "channels": channels.list_channels(session),
        # Failed sign-ins per account since its last sign-in (administrators are told), and
        # the anonymous refusals of the last two days, counted per hour.
        "failures": accounts.failures_by_user(session, settings, request.app.state.secret_key,
                                              [row.user for row in rows], now),
        "refusal_counts": refusals.recent(session, now - dt.timedelta(days=2)),
        "failure_hours": settings.sign_in_failure_hours, "error_user": 0, **extra},
        status=status)


@action("admin.roles")
async def change_roles(request: Request) -> Response:
    session = get_session(request)
    form = await request.form()
    user = accounts.get_user(session, _int(request.path_params["user_id"]))
    roles = [str(value) for value in form.getlist("roles")]
    try:
        accounts.set_roles(session, current_user(request), user, roles)
    except ChuishaoError as error:
        # Refused beside the row: the page again, the reason where the roles are.
        message = _refused(request, "admin.roles", error)
        return _users(request, {"error_user": user.id, "error": message}, status=error.status)
    # Back to the same row, with a confirmation beside it.
    return RedirectResponse(f"/console/admin?done=roles&user={user.id}#user-{user.id}",
                            status_code=303)


@action("admin.deactivate")
async def deactivate(request: Request) -> Response:
    session = get_session(request)
    user = accounts.get_user(session, _int(request.path_params["user_id"]))
    accounts.set_active(session, current_user(request), user, False)
    return RedirectResponse("/console/admin", status_code=303)


@action("admin.reactivate")
async def reactivate(request: Request) -> Response:
    session = get_session(request)
    user = accounts.get_user(session, _int(request.path_params["user_id"]))
    accounts.set_active(session, current_user(request), user, True)
    return RedirectResponse("/console/admin", status_code=303)


@action("admin.scope.add")
async def add_scope(request: Request) -> Response:
    session = get_session(request)
    form = await request.form()
    user = accounts.get_user(session, _int(request.path_params["user_id"]))
    channel = channels.get_channel(session, _int(form.get("channel_id")))
    recipients.add_scope(session, current_user(request), user, channel)
    return RedirectResponse("/console/admin", status_code=303)


@action("admin.scope.remove")
async def remove_scope(request: Request) -> Response:
    session = get_session(request)
    user = accounts.get_user(session, _int(request.path_params["user_id"]))
    channel = channels.get_channel(session, _int(request.path_params["channel_id"]))
    recipients.remove_scope(session, current_user(request), user, channel)
    return RedirectResponse("/console/admin", status_code=303)


# ---------------------------------------------------------------------------- invitations


@require_roles("admin")
async def invitations_page(request: Request) -> Response:
    session = get_session(request)
    settings: Settings = request.app.state.settings
    return _page(request, "reviewer/admin_invitations.html", {
        "open": invitations.open_invitations(session),
        "channels": channels.list_channels(session, active_only=True),
        "default_hours": settings.invitation_hours, "link": None,
    })


@action("admin.invite")
async def create_invitation(request: Request) -> Response:
    session = get_session(request)
    settings: Settings = request.app.state.settings
    form = await request.form()
    typed = {"roles": [str(v) for v in form.getlist("roles")],
             "channel": str(form.get("channel") or ""),
             "scope": [str(v) for v in form.getlist("scope")],
             "hours": str(form.get("hours") or "")}
    try:
        roles = accounts.parse_roles(typed["roles"])
        hours = _int(typed["hours"] or settings.invitation_hours)
        if not 1 <= hours <= 24 * 30:
            raise InvalidInput(N_("An invitation is valid for 1 to 720 hours."),
                               code="hours")
        channel = None
        if typed["channel"]:
            channel = channels.get_channel(session, _int(typed["channel"]))
        scope = [channels.get_channel(session, _int(value)) for value in typed["scope"]]
        invitation, token = invitations.create_invitation(session, roles=roles, hours=hours,
                                                          channel=channel, scope=scope)
    except ChuishaoError as error:
        # The form comes back as it was typed, the reason beside it; nothing was made.
        message = _refused(request, "admin.invite", error)
        return _page(request, "reviewer/admin_invitations.html", {
            "open": invitations.open_invitations(session),
            "channels": channels.list_channels(session, active_only=True),
            "default_hours": settings.invitation_hours, "link": None,
            "error": message, "form": typed,
        }, status=error.status)
    audit.append(session, "admin.invite", actor=current_user(request),
                 target=f"invitation:{invitation.id}",
                 details={"roles": invitation.roles, "channel_id": invitation.channel_id,
                          "scope": invitation.scope, "hours": hours})
    # Shown once, on this response only: the database keeps just the token's hash.
    link = f"{settings.base_url.rstrip('/')}/console/invite/{token}"
    return _page(request, "reviewer/admin_invitations.html", {
        "open": invitations.open_invitations(session),
        "channels": channels.list_channels(session, active_only=True),
        "default_hours": settings.invitation_hours, "link": link,
    })


# ---------------------------------------------------------------------------- channels


@require_roles("admin")
async def channels_page(request: Request) -> Response:
    return _channels(request, {})


def _channels(request: Request, extra: dict[str, Any], status: int = 200) -> Response:
    session = get_session(request)
    v2_only = request.app.state.settings.require_v2
    reviewers = [row.user for row in recipients.user_rows(session, v2_only=v2_only)
                 if row.may_receive]
    installation = get_installation(session)
    return _page(request, "reviewer/admin_channels.html", {
        "rows": recipients.channel_rows(session, v2_only=v2_only), "reviewers": reviewers,
        "require_v2": v2_only,
        # Every case has a recovery slot: without its X-Wing part no case can be all v2.
        "recovery_classical": installation is not None
        and installation.recovery_xwing_key_id is None,
        "kinds": channels.KINDS, **extra}, status=status)


@action("admin.channel.add")
async def add_channel(request: Request) -> Response:
    session = get_session(request)
    form = await request.form()
    typed = {name: str(form.get(name) or "") for name in ("slug", "kind", "name_zh", "name_en")}
    try:
        channel = channels.add_channel(
            session, slug=typed["slug"].strip(), kind=typed["kind"], name_zh=typed["name_zh"],
            name_en=typed["name_en"])
    except ChuishaoError as error:
        # Refused in place: the form as typed, the reason above it.
        message = _refused(request, "admin.channel.add", error)
        return _channels(request, {"form": typed, "error": message}, status=error.status)
    audit.append(session, "admin.channel.add", actor=current_user(request),
                 target=f"channel:{channel.id}", details={"slug": channel.slug})
    return RedirectResponse("/console/admin/channels", status_code=303)


@action("admin.channel.deactivate")
async def deactivate_channel(request: Request) -> Response:
    session = get_session(request)
    channel = channels.get_channel(session, _int(request.path_params["channel_id"]))
    channels.set_channel_active(session, current_user(request), channel, False)
    return RedirectResponse("/console/admin/channels", status_code=303)


@action("admin.channel.reactivate")
async def reactivate_channel(request: Request) -> Response:
    session = get_session(request)
    channel = channels.get_channel(session, _int(request.path_params["channel_id"]))
    channels.set_channel_active(session, current_user(request), channel, True)
    return RedirectResponse("/console/admin/channels", status_code=303)


@action("admin.recipient.add")
async def add_recipient(request: Request) -> Response:
    session = get_session(request)
    form = await request.form()
    channel = channels.get_channel(session, _int(request.path_params["channel_id"]))
    user = accounts.get_user(session, _int(form.get("user_id")))
    recipients.add_recipient(session, current_user(request), channel, user)
    return RedirectResponse("/console/admin/channels", status_code=303)


@action("admin.recipient.remove")
async def remove_recipient(request: Request) -> Response:
    session = get_session(request)
    channel = channels.get_channel(session, _int(request.path_params["channel_id"]))
    user = accounts.get_user(session, _int(request.path_params["user_id"]))
    recipients.remove_recipient(session, current_user(request), channel, user)
    return RedirectResponse("/console/admin/channels", status_code=303)


ROUTES: list[BaseRoute] = [
    Route("/admin", users_page, name="admin"),
    Route("/admin/users/{user_id:int}/roles", change_roles, methods=["POST"]),
    Route("/admin/users/{user_id:int}/deactivate", deactivate, methods=["POST"]),
    Route("/admin/users/{user_id:int}/reactivate", reactivate, methods=["POST"]),
    Route("/admin/users/{user_id:int}/scope", add_scope, methods=["POST"]),
    Route("/admin/users/{user_id:int}/scope/{channel_id:int}/remove", remove_scope,
          methods=["POST"]),
    Route("/admin/invitations", invitations_page, name="admin_invitations"),
    Route("/admin/invitations", create_invitation, methods=["POST"]),
    Route("/admin/channels", channels_page, name="admin_channels"),
    Route("/admin/channels", add_channel, methods=["POST"]),
    Route("/admin/channels/{channel_id:int}/deactivate", deactivate_channel, methods=["POST"]),
    Route("/admin/channels/{channel_id:int}/reactivate", reactivate_channel, methods=["POST"]),
    Route("/admin/channels/{channel_id:int}/recipients", add_recipient, methods=["POST"]),
    Route("/admin/channels/{channel_id:int}/recipients/{user_id:int}/remove", remove_recipient,
          methods=["POST"]),
]
