"""Console views: rectification records, the ledger, statistics and the public board switch.

Thin: every decision is in service/domain/rectification.py (and its rectification_facts.py,
rectification_cases.py and rectification_records.py), service/domain/hazard_ledger.py and
service/domain/board.py.

Who may do what (besides holding a case role and having the record's channel in scope, or
receiving it as a reviewer; a record of another channel answers 404, as an unknown one does,
and is audited):

| route                                          | reviewer | approver | auditor | admin |
|------------------------------------------------|----------|----------|---------|-------|
| GET  /rectifications, /rectifications/{id}     | yes      | read     | read    | no    |
| GET  /cases/{id}/rectifications                | yes      | read     | read    | no    |
| POST /cases/{id}/rectifications (open)         | yes      | no       | no      | no    |
| POST /rectifications/{id}/actions/{action}     | (1)      | (2)      | no      | no    |
| POST/PUT /rectifications/{id}/files... (proof) | yes      | no       | no      | no    |
| GET  /ledger, /ledger/export, /stats           | yes      | yes      | yes     | no    |
| GET/POST /admin/board                          | no       | no       | no      | yes   |

(1) every action but write_off; (2) write_off, publish and unpublish.

Acceptance (``accept``) is refused to the user who opened or handles the record.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

import crypto
from reviewer.auth import current_user, require_roles
from reviewer.views import cases as case_views
from reviewer.views.refused import refused
from service.domain import (
    audit,
    board,
    cases,
    rectification,
    rectification_cases,
    rectification_facts,
    rectification_records,
    workflow,
)
from service.domain import channels as channel_service
from service.domain import (
    hazard_ledger as ledger,
)
from service.domain.models import Case, Channel, SealedItem, User
from service.domain.models.rectification import Rectification
from service.domain.rewards.money import format_yuan, plain_yuan
from service.platform.db import get_session
from service.platform.errors import ChuishaoError, InvalidInput, Malformed, NotFound
from service.platform.i18n import N_
from service.platform.templating import language, render, translator

CASE_ROLES = cases.CASE_ROLES
# The case page's timeline names internal events from this table; ours join it here.
case_views.INTERNAL_EVENTS.update(rectification.INTERNAL_EVENTS)
DONE = {
    "open": N_("The rectification record was opened."),
    "edit": N_("The record was saved."),
    "decide": N_("The measures were decided; the reporter sees the deadline."),
    "progress": N_("The progress was recorded."),
    "extend": N_("The deadline was extended."),
    "explain_overdue": N_("The explanation was recorded."),
    "request_acceptance": N_("Acceptance was requested."),
    "accept": N_("The acceptance check was recorded."),
    "write_off": N_("The record was written off."),
    "publish": N_("The text was published on the public board."),
    "unpublish": N_("The record was taken off the public board."),
    "link_case": N_("The case was linked."),
    "fixed_on_spot": N_("The fix on the spot was recorded; a second person does the "
                        "acceptance check."),
}
FORM_LIMITS = {"max_files": 40, "max_fields": 80}


def _database(request: Request) -> Any:
    return request.app.state.database


def _case(request: Request) -> Case:
    return cases.get_case(get_session(request), _database(request), current_user(request),
                          str(request.path_params["case_id"]))


def _record(request: Request) -> Rectification:
    return rectification_records.get_record(get_session(request), _database(request),
                                            current_user(request), request.path_params["record_id"])


def _params(form: FormData) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key in form:
        if key == "csrf_token":
            continue
        values = [str(v) for v in form.getlist(key)]
        params[key] = values if key in ("files", "phases") else values[-1]
    return params


def _b64(data: bytes | None) -> str:
    return crypto.b64u_encode(data) if data else ""


def _name(user: User | None) -> str:
    return (user.display_name or user.username) if user else ""


# ---------------------------------------------------------------------------- list


@require_roles(*CASE_ROLES)
async def record_list(request: Request) -> Response:
    session = get_session(request)
    user = current_user(request)
    filters = rectification_records.ListFilters.parse(request.query_params)
    on = rectification_facts.today()
    records = rectification_records.list_records(session, user, filters, on)
    channels = {c.id: c for c in cases.visible_channels(session, user)}
    return render(request, "reviewer/rectification_list.html", {
        "records": records, "filters": filters, "channels": channels, "today": on,
        "states": rectification_facts.STATE_LABELS,
        "counts": rectification_records.counts(session, user, on),
        "overdue": {r.id for r in records if rectification_facts.is_overdue(r, on)},
        "unexplained": {r.id for r in records if rectification_facts.needs_explanation(r, on)},
    })


# ---------------------------------------------------------------------------- opening


def _case_records_context(request: Request, case: Case) -> dict[str, Any]:
    session = get_session(request)
    user = current_user(request)
    return {
        "case": case, "records": rectification_cases.records_of_case(session, case),
        "states": rectification_facts.STATE_LABELS,
        "can_open": user.has_role("reviewer") and rectification_cases.can_open(case)
        and case.channel_id in cases.case_channels(session, user),
        "reviewers": cases.channel_reviewers(session, case.channel_id),
        "values": {"location": case.location, "owner": str(user.id)},
        "status_label": workflow.STATUS_LABELS[case.status],
        "error": None, "today": rectification_facts.today(),
    }


@require_roles(*CASE_ROLES)
async def case_records(request: Request) -> Response:
    case = _case(request)
    return render(request, "reviewer/rectification_case.html",
                  _case_records_context(request, case))


@require_roles("reviewer")
async def open_record(request: Request) -> Response:
    session = get_session(request)
    user = current_user(request)
    case = _case(request)
    form = await request.form(max_files=0, max_fields=FORM_LIMITS["max_fields"])
    params = _params(form)
    try:
        record = rectification_cases.open_record(session, request.app.state.settings, case, user,
                                                 params)
    except ChuishaoError as exc:
        error = refused(request, "rectification.open", case.id, exc)
        case = _case(request)
        context = _case_records_context(request, case)
        context["values"] = params  # nothing typed is lost
        context["error"] = error
        return render(request, "reviewer/rectification_case.html", context, status=exc.status)
    return RedirectResponse(f"/console/rectifications/{record.id}?done=open", status_code=303)


# ---------------------------------------------------------------------------- one record


def _values(record: Rectification) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(record, name)
                              for name in rectification_facts.TEXT_FIELDS}
    values.update(funds=plain_yuan(record.funds_fen),
                  deadline=record.deadline.isoformat() if record.deadline else "",
                  work_stopped=record.work_stopped, listed_supervision=record.listed_supervision,
                  owner=str(record.owner_id or ""))
    return values


def record_context(request: Request, record: Rectification) -> dict[str, Any]:
    session = get_session(request)
    user = current_user(request)
    settings = request.app.state.settings
    on = rectification_facts.today()
    linked = rectification_cases.linked_cases(session, record)
    origin = session.get(Case, record.case_id)
    entries = rectification_records.entries(session, record)
    evidence = rectification_records.evidence(session, record)
    metas = {item.id: item for item in session.scalars(select(SealedItem).where(
        SealedItem.id.in_([stored.meta_item_id for _, stored in evidence])))} \
        if evidence else {}
    people = rectification_records.users_by_id(
        session, [record.opened_by, record.owner_id, record.accepted_by, record.closed_by,
                  record.published_by, *[e.user_id for e in entries]])
    slots = {case.id: cases.slots_of(session, case, user) for case in linked}
    candidates = [c for c in cases.same_channel_cases(session, origin) if c.id not in
                  {x.id for x in linked} and rectification_cases.can_open(c)] if origin else []
    data = {
        "record_id": record.id,
        "can_upload": user.has_role("reviewer") and record.state in rectification_facts.OPEN_STATES,
        "max_file_bytes": settings.max_file_bytes,
        "max_files": settings.max_files,
        "cases": [{"case_id": case.id, **cases.slot_fields(slots[case.id])} for case in linked],
        "files": [{"id": stored.id, "case_id": stored.case_id, "phase": link.phase,
                   "entry_id": link.entry_id, "meta_item_id": stored.meta_item_id,
                   "meta_blob": _b64(metas[stored.meta_item_id].blob)
                   if stored.meta_item_id in metas else "",
                   "chunk_count": stored.chunk_count}
                  for link, stored in evidence],
    }
    files_by_entry: dict[int, list[dict[str, Any]]] = {}
    for entry_data in data["files"]:
        files_by_entry.setdefault(entry_data["entry_id"], []).append(entry_data)
    return {
        "record": record, "number": rectification_facts.number(record),
        "channel": session.get(Channel, record.channel_id),
        "origin": origin, "linked": linked, "entries": entries, "people": people,
        "files_by_entry": files_by_entry,
        "state_label": rectification_facts.STATE_LABELS[record.state],
        "states": rectification_facts.STATE_LABELS, "entry_labels": rectification.ENTRY_LABELS,
        "phases": rectification_facts.PHASES, "results": rectification.RESULTS,
        "grades": workflow.GRADES,
        "overdue": rectification_facts.is_overdue(record, on),
        "unexplained": rectification_facts.needs_explanation(record, on),
        "actions": rectification.allowed_actions(record, user),
        "may_accept": user.id not in {record.opened_by, record.owner_id} | {
            e.user_id for e in entries if e.kind == "on_the_spot"},
        "reviewers": cases.channel_reviewers(session, record.channel_id),
        "candidates": candidates, "values": _values(record), "form_action": None,
        "funds": format_yuan(record.funds_fen),
        "page_data": data, "today": on, "name": _name,
        "done": DONE.get(str(request.query_params.get("done", ""))),
        "error": None, "yuan": format_yuan,
    }


@require_roles(*CASE_ROLES)
async def record_page(request: Request) -> Response:
    record = _record(request)
    return render(request, "reviewer/rectification.html", record_context(request, record))


@require_roles("reviewer", "approver")
async def record_action(request: Request) -> Response:
    session = get_session(request)
    user = current_user(request)
    record = _record(request)
    action = str(request.path_params["action"])
    form = await request.form(max_files=0, max_fields=FORM_LIMITS["max_fields"])
    params = _params(form)
    try:
        rectification.perform(session, request.app.state.settings, record, user, action,
                              version=params.pop("version", None), params=params)
    except ChuishaoError as exc:
        # Nothing of the attempt stays; the page comes back with the reason and with what was
        # typed, so a conflict loses nothing. The refusal is recorded on its own.
        error = refused(request, f"rectification.{action}", str(record.id), exc)
        record = _record(request)
        context = record_context(request, record)
        context["error"] = error
        context["form_action"] = action
        if action in ("edit", "decide"):
            context["values"] = {**context["values"], **params,
                                 "work_stopped": bool(params.get("work_stopped")),
                                 "listed_supervision": bool(params.get("listed_supervision"))}
        context["submitted"] = params
        return render(request, "reviewer/rectification.html", context, status=exc.status)
    return RedirectResponse(f"/console/rectifications/{record.id}?done={action}",
                            status_code=303)


# ---------------------------------------------------------------------------- evidence


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise Malformed("json") from None


@require_roles("reviewer")
async def post_file(request: Request) -> Response:
    record = _record(request)
    file = rectification_records.register_file(get_session(request), request.app.state.settings,
                                               record, current_user(request), await _json(request))
    return JSONResponse({"id": file.id, "chunk_count": file.chunk_count}, status_code=201)


@require_roles("reviewer")
async def put_chunk(request: Request) -> Response:
    record = _record(request)
    data = await request.body()
    rectification_records.store_chunk(get_session(request), record, current_user(request),
                                      str(request.path_params["file_id"]),
                                      int(request.path_params["index"]), data)
    return JSONResponse({"ok": True})


@require_roles("reviewer")
async def finish_file(request: Request) -> Response:
    record = _record(request)
    rectification_records.finish_file(get_session(request), record, current_user(request),
                                      str(request.path_params["file_id"]))
    return JSONResponse({"ok": True})


# ---------------------------------------------------------------------------- ledger, stats


def _channel_of(request: Request, raw: Any) -> tuple[list[Channel], Channel | None]:
    session = get_session(request)
    user = current_user(request)
    mine = [c for c in cases.visible_channels(session, user)]
    wanted = str(raw or "")
    chosen = next((c for c in mine if str(c.id) == wanted), None)
    if chosen is None and len(mine) == 1 and not wanted:
        chosen = mine[0]
    if wanted and chosen is None:
        audit.record_refusal(_database(request), "ledger.channel", actor_id=user.id,
                             target=wanted[:100])
        raise NotFound()
    return mine, chosen


@require_roles(*CASE_ROLES)
async def ledger_page(request: Request) -> Response:
    mine, chosen = _channel_of(request, request.query_params.get("channel"))
    on = rectification_facts.today()
    return render(request, "reviewer/ledger.html", {
        "channels": mine, "chosen": chosen, "periods": ledger.period_choices(on),
        "period": str(request.query_params.get("period") or on.year),
    })


@require_roles(*CASE_ROLES)
async def ledger_export(request: Request) -> Response:
    session = get_session(request)
    user = current_user(request)
    query = request.query_params
    _, channel = _channel_of(request, query.get("channel"))
    if channel is None:
        raise InvalidInput(N_("Choose a reporting line."), code="channel")
    period = ledger.parse_period(str(query.get("period") or ""), str(query.get("from") or ""),
                                 str(query.get("to") or ""))
    kind = str(query.get("format") or "csv")
    if kind not in ("csv", "xlsx"):
        raise InvalidInput(N_("Choose CSV or Excel."), code="format")
    translate = translator(request)
    columns = ledger.sheet_columns(translate)
    rows = ledger.ledger_rows(session, channel, period, translate, language=language(request))
    audit.append(session, "ledger.export", actor=user, target=channel.slug,
                 details={"period": period.label, "format": kind})
    stem = translate(N_("hazard-ledger"))
    name = f"{stem}-{channel.slug}-{period.label}.{kind}"
    disposition = f"attachment; filename=\"ledger-{channel.slug}-{period.label}.{kind}\"; " \
                  f"filename*=UTF-8''{quote(name)}"
    headers = {"Content-Disposition": disposition, "Cache-Control": "no-store"}
    if kind == "csv":
        # Read now: the session ends with the response.
        body = list(ledger.csv_chunks(columns, rows))
        return StreamingResponse(iter(body), media_type="text/csv; charset=utf-8",
                                 headers=headers)
    spool = ledger.xlsx_file(columns, rows, translate(N_("Hazard ledger")))
    return StreamingResponse(
        ledger.iter_file(spool), headers=headers,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


@require_roles(*CASE_ROLES)
async def stats_page(request: Request) -> Response:
    session = get_session(request)
    mine, chosen = _channel_of(request, request.query_params.get("channel"))
    on = rectification_facts.today()
    raw_year = str(request.query_params.get("year") or on.year)
    year = int(raw_year) if raw_year.isdigit() and 2000 <= int(raw_year) <= 2100 else on.year
    rows = ledger.yearly(session, chosen.id, year, on) if chosen else []
    return render(request, "reviewer/stats.html", {
        "channels": mine, "chosen": chosen, "year": year, "rows": rows,
        "chart": ledger.chart(rows) if rows else None,
        "years": list(range(on.year, on.year - 5, -1)),
    })


# ---------------------------------------------------------------------------- public board


@require_roles("admin")
async def board_admin(request: Request) -> Response:
    session = get_session(request)
    return render(request, "reviewer/rectification_board_admin.html", {
        "channels": channel_service.list_channels(session)})


@require_roles("admin")
async def board_toggle(request: Request) -> Response:
    session = get_session(request)
    form = await request.form(max_files=0, max_fields=5)
    channel = session.get(Channel, int(request.path_params["channel_id"]))
    if channel is None:
        raise NotFound()
    board.set_public_board(session, current_user(request), channel,
                           str(form.get("public_board") or "") == "1")
    return RedirectResponse("/console/admin/board", status_code=303)


ROUTES: list[BaseRoute] = [
    Route("/rectifications", record_list, name="rectifications"),
    Route("/rectifications/{record_id:int}", record_page, name="rectification"),
    Route("/rectifications/{record_id:int}/actions/{action}", record_action, methods=["POST"]),
    Route("/rectifications/{record_id:int}/files", post_file, methods=["POST"]),
    Route("/rectifications/{record_id:int}/files/{file_id}/chunks/{index:int}", put_chunk,
          methods=["PUT"]),
    Route("/rectifications/{record_id:int}/files/{file_id}/finish", finish_file,
          methods=["POST"]),
    Route("/cases/{case_id}/rectifications", case_records, name="case_rectifications"),
    Route("/cases/{case_id}/rectifications", open_record, methods=["POST"]),
    Route("/ledger", ledger_page, name="ledger"),
    Route("/ledger/export", ledger_export),
    Route("/stats", stats_page, name="stats"),
    Route("/admin/board", board_admin, name="board_admin"),
    Route("/admin/board/{channel_id:int}", board_toggle, methods=["POST"]),
]
