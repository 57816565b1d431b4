"""Console pages for staff notifications: each person's choice on their account page, and
the administrators' defaults, group robots and failed deliveries."""

from __future__ import annotations

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from reviewer.auth import current_user, require_roles
from reviewer.views.admin import _int, _page, action
from service.domain import audit, notify
from service.domain.models import User
from service.platform.db import get_session


@require_roles()
async def save_own(request: Request) -> Response:
    session = get_session(request)
    user = current_user(request)
    form = await request.form()
    pref = notify.save_preference(session, user, form,
                                  [str(v) for v in form.getlist("kinds")])
    audit.append(session, "notify.preferences", actor=user,
                 details={"via": pref.via, "kinds": pref.kinds, "digest": pref.digest})
    return RedirectResponse("/console/account?notify=1", status_code=303)


@require_roles("admin")
async def admin_page(request: Request) -> Response:
    session = get_session(request)
    return _page(request, "reviewer/admin_notifications.html", {
        "defaults": notify.defaults(session), "labels": notify.LABELS,
        "webhooks": notify.webhooks(session), "webhook_kinds": notify.WEBHOOK_KINDS,
        "problems": notify.problems(session), "unreachable": notify.unreachable_users(session),
        "people": {u.id: u.username for u in session.scalars(select(User))},
    })


@action("notify.defaults")
async def save_defaults(request: Request) -> Response:
    session = get_session(request)
    form = await request.form()
    row = notify.save_defaults(session, [str(v) for v in form.getlist("kinds")],
                               form.get("digest") == "yes")
    audit.append(session, "notify.defaults", actor=current_user(request),
                 details={"kinds": row.kinds, "digest": row.digest})
    return RedirectResponse("/console/admin/notifications", status_code=303)


@action("notify.webhook.add")
async def add_webhook(request: Request) -> Response:
    session = get_session(request)
    form = await request.form()
    hook = notify.add_webhook(session, str(form.get("name") or ""), str(form.get("kind") or ""),
                              str(form.get("url") or ""), str(form.get("secret") or ""))
    audit.append(session, "notify.webhook.add", actor=current_user(request),
                 target=str(hook.id), details={"kind": hook.kind, "name": hook.name})
    return RedirectResponse("/console/admin/notifications", status_code=303)


@action("notify.webhook.remove")
async def remove_webhook(request: Request) -> Response:
    session = get_session(request)
    hook_id = _int(request.path_params["hook_id"])
    notify.remove_webhook(session, hook_id)
    audit.append(session, "notify.webhook.remove", actor=current_user(request),
                 target=str(hook_id))
    return RedirectResponse("/console/admin/notifications", status_code=303)


@action("notify.retry")
async def retry(request: Request) -> Response:
    session = get_session(request)
    row_id = _int(request.path_params["row_id"])
    if notify.retry(session, row_id):
        audit.append(session, "notify.retry", actor=current_user(request), target=str(row_id))
    return RedirectResponse("/console/admin/notifications", status_code=303)


ROUTES: list[BaseRoute] = [
    Route("/account/notifications", save_own, methods=["POST"]),
    Route("/admin/notifications", admin_page, name="admin_notifications"),
    Route("/admin/notifications/defaults", save_defaults, methods=["POST"]),
    Route("/admin/notifications/webhooks", add_webhook, methods=["POST"]),
    Route("/admin/notifications/webhooks/{hook_id:int}/remove", remove_webhook, methods=["POST"]),
    Route("/admin/notifications/{row_id:int}/retry", retry, methods=["POST"]),
]
