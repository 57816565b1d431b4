"""Console views: the case list, one case, triage forms and the sealed JSON calls.

Thin: every decision is in service/domain/cases.py and service/domain/workflow.py. The server
renders
plaintext facts and hands the browser ciphertext; case.js and cases.js decrypt it there.

Who may do what (besides seeing the case at all: its channel in the user's scope or received,
or holder of one of its key slots; service/domain/cases.py):

| route                                   | reviewer | approver | auditor | admin only |
|-----------------------------------------|----------|----------|---------|------------|
| GET  /cases (list)                      | yes      | read     | read    | empty list |
| GET  /cases/{id} (page), file chunks    | yes      | read     | read    | 403        |
| POST /cases/{id}/identity (key holders) | yes      | no       | no      | 403        |
| POST /cases/{id}/actions/{action}       | yes (1)  | (2)      | no      | no         |
| POST /cases/{id}/messages, notes, grants| yes      | no       | no      | no         |
| POST /cases/{id}/reslot (key holders)   | yes      | no       | no      | no         |

(1) every triage action but close and reopen_refusal; (2) close and reopen_refusal (by an
approver other than the one who refused, within ``reopen_days``). The rectification moves
are not case actions: rectification records make them (service/domain/rectification.py). A refused
action redirects to the case page, which shows why (post/redirect/get).

A case outside the user's channels answers 404, as an unknown id does, and is audited.
Approvers and auditors read the plaintext facts and timeline from their scope; they never
receive new reports and decrypt nothing (only reviewers hold key slots). The identity is not
on the page: POST /cases/{id}/identity hands it to a key holder and records the look.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

import crypto
from reviewer import auth
from reviewer.auth import current_user, require_roles
from reviewer.views.refused import refused
from service.domain import audit, cases, feed, followup, labels, reportform, reslot, workflow
from service.domain.models import (
    Case,
    CaseEvent,
    Channel,
    HazardCriterion,
    SealedItem,
    User,
    utcnow,
)
from service.platform import localtime
from service.platform.db import get_session
from service.platform.errors import ChuishaoError, Malformed
from service.platform.i18n import N_
from service.platform.templating import render, translator

CASE_ROLES = cases.CASE_ROLES
# Internal (reviewer-only) timeline entries; reporter-visible ones use service/domain/feed.py texts.
INTERNAL_EVENTS = {
    "assigned": N_("Assignment changed"),
    "graded": N_("Grade set"),
    "facts_changed": N_("Category, unit or location changed"),
    "duplicate_linked": N_("Linked as a duplicate"),
    "note": N_("Internal note added"),
    "reporter_activity": N_("The reporter replied or added evidence"),
    "first_valid_decided": N_("First valid report decided"),
}
DONE = {
    "accept": N_("The case was accepted."),
    "not_accept": N_("The case was marked as not accepted."),
    "start_verification": N_("Verification started."),
    "extend": N_("Verification was extended."),
    "verify": N_("The verification result was recorded."),
    "close": N_("The case was closed."),
    "assign": N_("The assignment was saved."),
    "grade": N_("The grade was saved."),
    "facts": N_("Category, unit and location were saved."),
    "link_duplicate": N_("The duplicate link was saved."),
    "decide_first_valid": N_("The decision on the first valid report was recorded."),
    "reopen_refusal": N_("The refusal was reopened; the case waits for acceptance again."),
}


def _database(request: Request) -> Any:
    return request.app.state.database


def _case(request: Request) -> Case:
    return cases.get_case(get_session(request), _database(request), current_user(request),
                          str(request.path_params["case_id"]))


def _b64(data: bytes | None) -> str:
    return crypto.b64u_encode(data) if data else ""


# ---------------------------------------------------------------------------- list


@require_roles()
async def case_list(request: Request) -> Response:
    session = get_session(request)
    settings = request.app.state.settings
    user = current_user(request)
    filters = cases.Filters.parse(request.query_params)
    now = utcnow()
    page = cases.list_cases(session, settings, user, filters, now)
    ids = [case.id for case in page.cases]
    slots = cases.slots_for_cases(session, ids, user)
    reports = cases.report_items(session, ids)
    replies = _reply_counts(session, ids)
    channels = {c.id: c for c in cases.visible_channels(
        session, user, {case.channel_id for case in page.cases})}
    rows = [{
        "case": case,
        "channel": channels.get(case.channel_id),
        "due": workflow.due_at(case, settings),
        "due_kind": workflow.due_kind(case),
        "overdue": workflow.is_overdue(case, settings, now),
        **cases.slot_fields(slots.get(case.id, {})),
        "report": reports.get(case.id),
        "report_blob": _b64(reports[case.id].blob) if case.id in reports else "",
        "replies": replies.get(case.id, 0),
    } for case in page.cases]
    return render(request, "reviewer/cases.html", {
        "rows": rows, "filters": filters, "channels": list(channels.values()),
        "next_url": ("/console/cases?" + filters.query_string(after=page.next_cursor))
        if page.next_cursor else None,
        "first_url": "/console/cases?" + filters.query_string(after=None)
        if filters.after else None,
        "statuses": workflow.STATUS_LABELS, "grades": workflow.GRADES,
        "has_case_role": user.has_role(*CASE_ROLES),
    })


# ---------------------------------------------------------------------------- one case


def _timeline(request: Request, case: Case) -> list[dict[str, Any]]:
    session = get_session(request)
    translate = translator(request)
    events = followup.event_order(list(session.scalars(
        select(CaseEvent).where(CaseEvent.case_id == case.id))), request.app.state.settings)
    names = {u.id: u.display_name or u.username for u in session.scalars(
        select(User).where(User.id.in_({e.user_id for e in events if e.user_id})))}
    timeline = []
    for event in events:
        text = labels.staff_event_text(event.kind, event.data, translate)
        if text is None and event.visible_to_reporter:
            text = feed.event_text(event.kind, event.data, translate)
        if text is None:
            text = translate(INTERNAL_EVENTS.get(event.kind, event.kind))
        # Events without a staff author are the reporter's (or intake's): coarse times.
        timeline.append({"when": event.created_at, "text": text,
                         "coarse": event.user_id is None,
                         "who": names.get(event.user_id or 0, ""),
                         "visible": event.visible_to_reporter})
    return timeline


def case_context(request: Request, case: Case) -> dict[str, Any]:
    session = get_session(request)
    settings = request.app.state.settings
    user = current_user(request)
    reviewers = cases.channel_reviewers(session, case.channel_id)
    data = cases.case_page_data(session, settings, case, user)
    # v1 slots this user's page can make v2 (a classical-only case, keys held).
    data["reslot"] = [target.as_json() for target in reslot.targets(session, case, user)] \
        if case.classical_only and data["can_write"] else []
    criterion = session.get(HazardCriterion, case.criterion_id) if case.criterion_id else None
    group = workflow.group_of(session, case) if case.duplicate_of or session.scalar(
        select(Case.id).where(Case.duplicate_of == case.id).limit(1)) else []
    deciders = {u.id: u.display_name or u.username for u in session.scalars(
        select(User).where(User.id.in_({m.first_valid_decided_by for m in group
                                        if m.first_valid_decided_by})))} if group else {}
    return {
        "case": case,
        "channel": session.get(Channel, case.channel_id),
        "status_label": workflow.STATUS_LABELS[case.status],
        "due": workflow.due_at(case, settings),
        "due_kind": workflow.due_kind(case),
        "overdue": workflow.is_overdue(case, settings),
        "actions": workflow.allowed_actions(case, user),
        "reopen_until": workflow.reopen_until(session, settings, case),
        "reopen_days": settings.reopen_days,
        "now": utcnow(),
        "reviewers": reviewers,
        "assignee": session.get(User, case.assigned_to) if case.assigned_to else None,
        "criteria": list(session.scalars(select(HazardCriterion)
                                         .where(HazardCriterion.active.is_(True))
                                         .order_by(HazardCriterion.article,
                                                   HazardCriterion.item_no))),
        "criterion": criterion,
        "duplicate_candidates": cases.same_channel_cases(session, case),
        "group": group, "group_deciders": deciders,
        "first_valid_choices": workflow.first_valid_choices(group),
        "timeline": _timeline(request, case),
        "reasons": workflow.NOT_ACCEPTED_REASONS, "results": workflow.RESULTS,
        "grades": workflow.GRADES, "categories": reportform.CATEGORIES,
        "statuses": workflow.STATUS_LABELS,
        "page_data": data,
        "can_write": data["can_write"],
        "reporter_classical": case.classical_only and reslot.reporter_classical(session, case),
        "extension_days": settings.extension_days,
        "done": DONE.get(str(request.query_params.get("done", ""))),
        "error": _failure(request, case),
    }


# A refused action redirects to the case page (post/redirect/get: a reload never re-posts);
# the reason travels in the address, signed for this user and case so nobody can put words
# of their own on someone else's console.


def _failure_sig(request: Request, case: Case, payload: str) -> str:
    return auth.csrf_token_for(request.app.state.secret_key,
                               f"case-failure:{current_user(request).id}:{case.id}:{payload}")


def _failure_url(request: Request, case: Case, exc: ChuishaoError) -> str:
    raw = json.dumps({"m": exc.message, "p": {k: str(v)[:200] for k, v in exc.params.items()}},
                     ensure_ascii=False, separators=(",", ":"))
    payload = crypto.b64u_encode(raw.encode())
    return (f"/console/cases/{case.id}?failed={payload}"
            f"&sig={_failure_sig(request, case, payload)}#triage")


def _failure(request: Request, case: Case) -> str | None:
    payload = str(request.query_params.get("failed", ""))[:4000]
    given = str(request.query_params.get("sig", ""))
    if not payload or not hmac.compare_digest(given.encode(),
                                              _failure_sig(request, case, payload).encode()):
        return None
    try:
        data = json.loads(crypto.b64u_decode(payload))
        message, params = str(data["m"]), dict(data["p"])
    except (ValueError, KeyError, TypeError):
        return None
    try:
        return translator(request)(message, **params)
    except (KeyError, IndexError):
        return None


@require_roles(*CASE_ROLES)
async def case_page(request: Request) -> Response:
    case = _case(request)
    return render(request, "reviewer/case.html", case_context(request, case))


@require_roles("reviewer", "approver")
async def case_action(request: Request) -> Response:
    session = get_session(request)
    user = current_user(request)
    case = _case(request)
    action = str(request.path_params["action"])
    form = await request.form(max_files=0, max_fields=20)
    params = {key: str(value) for key, value in form.items() if key != "csrf_token"}
    try:
        workflow.perform(session, request.app.state.settings, case, user, action,
                         version=params.pop("version", None), params=params)
    except ChuishaoError as exc:
        # Nothing of the attempt stays; the page is shown again with the reason (carried in
        # the address, see above), and the refusal goes on the record in its own transaction.
        refused(request, f"case.{action}", case.id, exc)
        return RedirectResponse(_failure_url(request, case, exc), status_code=303)
    return RedirectResponse(f"/console/cases/{case.id}?done={action}#triage", status_code=303)


@require_roles("reviewer")
async def identity(request: Request) -> Response:
    case = _case(request)
    user = current_user(request)
    try:
        items = cases.identity_items(get_session(request), case, user)
    except ChuishaoError as exc:
        audit.record_refusal(_database(request), "case.identity_viewed", actor_id=user.id,
                             target=case.id, details={"reason": exc.code})
        raise
    return JSONResponse({"items": [{"id": i.id, "kind": i.kind, "blob": _b64(i.blob)}
                                   for i in items]},
                        headers={"Cache-Control": "no-store"})


@require_roles(*CASE_ROLES)
async def file_chunk(request: Request) -> Response:
    case = _case(request)
    index = request.path_params["index"]
    data = cases.file_chunk(get_session(request), case, str(request.path_params["file_id"]),
                            int(index))
    return Response(data, media_type="application/octet-stream",
                    headers={"Cache-Control": "no-store"})


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise Malformed("json") from None


@require_roles("reviewer")
async def post_message(request: Request) -> Response:
    case = _case(request)
    item = cases.add_message(get_session(request), case, current_user(request),
                             await _json(request))
    return JSONResponse({"id": item.id, "created": item.created_at.isoformat(),
                         "shown": localtime.show(item.created_at)}, status_code=201)


@require_roles("reviewer")
async def post_note(request: Request) -> Response:
    case = _case(request)
    item = cases.add_note(get_session(request), case, current_user(request),
                          await _json(request),
                          v2_only=request.app.state.settings.require_v2)
    return JSONResponse({"id": item.id, "created": item.created_at.isoformat(),
                         "shown": localtime.show(item.created_at)}, status_code=201)


@require_roles("reviewer")
async def post_reslot(request: Request) -> Response:
    case = _case(request)
    slots = reslot.reslot(get_session(request), case, current_user(request),
                          await _json(request))
    return JSONResponse({"replaced": len(slots), "classical_only": case.classical_only})


@require_roles("reviewer")
async def post_grant(request: Request) -> Response:
    case = _case(request)
    slots = cases.add_grant(get_session(request), case, current_user(request),
                            await _json(request),
                            v2_only=request.app.state.settings.require_v2)
    return JSONResponse({"granted": [s.purpose for s in slots]}, status_code=201)


# ---------------------------------------------------------------------------- replies


def _reply_counts(session: Any, ids: list[str]) -> dict[str, int]:
    """How many replies the reporter sent on each case: the list marks the ones this
    browser has not shown yet (case.js keeps what it showed, per case, in this browser)."""
    if not ids:
        return {}
    return {case_id: count for case_id, count in session.execute(
        select(SealedItem.case_id, func.count()).where(
            SealedItem.case_id.in_(ids), SealedItem.author == "reporter",
            SealedItem.kind == "reply").group_by(SealedItem.case_id))}


@require_roles(*CASE_ROLES)
async def replies(request: Request) -> Response:
    """The reporter's replies, sealed, for the open case page to add without a reload.

    Polled by case.js; reading ciphertext the page already may read is not audited (the
    case page itself is).
    """
    case = _case(request)
    found = get_session(request).scalars(
        select(SealedItem).where(SealedItem.case_id == case.id,
                                 SealedItem.author == "reporter", SealedItem.kind == "reply")
        .order_by(SealedItem.created_at, SealedItem.id).limit(500))
    return JSONResponse({"items": [{"id": i.id, "kind": i.kind, "author": i.author, "name": "",
                                    "created": i.created_at.isoformat(), "blob": _b64(i.blob)}
                                   for i in found]},
                        headers={"Cache-Control": "no-store"})


ROUTES: list[BaseRoute] = [
    Route("/cases", case_list, name="cases"),
    Route("/cases/{case_id}", case_page, name="case"),
    Route("/cases/{case_id}/actions/{action}", case_action, methods=["POST"],
          name="case_action"),
    Route("/cases/{case_id}/identity", identity, methods=["POST"]),
    Route("/cases/{case_id}/replies", replies),
    Route("/cases/{case_id}/files/{file_id}/chunks/{index:int}", file_chunk),
    Route("/cases/{case_id}/messages", post_message, methods=["POST"]),
    Route("/cases/{case_id}/notes", post_note, methods=["POST"]),
    Route("/cases/{case_id}/grants", post_grant, methods=["POST"]),
    Route("/cases/{case_id}/reslot", post_reslot, methods=["POST"]),
]
