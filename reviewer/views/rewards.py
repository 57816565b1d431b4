"""Console views: reward records, approval, claims and payment, the ledger, exports, policies
and the audit trail. Thin: every decision is in the service/domain/reward_*.py modules
(reward_states.py has the record's life) and service/domain/exports.py.

| route                                       | reviewer | approver | finance | auditor | admin |
|---------------------------------------------|----------|----------|---------|---------|-------|
| GET  /rewards (ledger)                      | own lines| own lines| all     | all     | -     |
| GET  /rewards/{id}                          | own lines| own lines| all     | all     | -     |
| GET  /cases/{id}/reward                     | yes      | read     | -       | read    | -     |
| POST /cases/{id}/reward (preview, propose)  | yes      | -        | -       | -       | -     |
| POST /rewards/{id}/approve, reject          | -        | yes, not own proposal | - | -  | -     |
| POST /rewards/{id}/claim, verify-code, pay        | -  | -        | yes     | -       | -     |
| POST /rewards/export, GET manifests          | -        | -        | -       | yes     | -     |
| GET  /audit                                 | -        | -        | -       | yes     | -     |
| GET/POST /reward-policies...                | -        | -        | -       | -       | yes   |

"Own lines": records of cases in the user's channels (service/domain/cases.py visibility). A record
outside them answers 404 like an unknown id, and is audited. Every refusal is audited.

Longer than 500 lines because the reward pages share the one route table above and its
roles; each view is a few lines over the domain.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

import crypto
from reviewer import auditview
from reviewer.auth import current_user, require_roles
from reviewer.views.refused import refusal_text, refused
from service.domain import (
    audit,
    cases,
    exports,
    reward_claims,
    reward_ledger,
    reward_policies,
    reward_records,
    reward_states,
    workflow,
)
from service.domain.installation import (
    get_installation,
    load_signing_key,
    public_key_file_text,
    signing_public_key,
)
from service.domain.models import Case
from service.domain.models.rewards import RewardExport, RewardPolicyVersion, RewardRecord
from service.domain.rewards import GRADES, format_yuan
from service.platform.db import get_session
from service.platform.errors import ChuishaoError, InvalidInput, NotFound
from service.platform.i18n import N_
from service.platform.templating import language, translator
from service.platform.templating import render as render_page

LEDGER_ROLES = ("reviewer", "approver", "finance", "auditor")
DONE = {
    "proposed": N_("The reward was proposed. Another person with the approver role must "
                   "approve it."),
    "approved": N_("The reward was approved. The reporter sees the amount and can claim it."),
    "rejected": N_("The reward was rejected."),
    "verified": N_("The claim code matches this reward."),
    "paid": N_("The payment was recorded. The claim code cannot be used again."),
    "uploaded": N_("The policy was stored, inactive. Preview it, then activate it."),
    "activated": N_("The policy version is active."),
    "deactivated": N_("The policy version is inactive."),
}
PERIOD_LABELS = {"day": N_("per day"), "week": N_("per week"), "month": N_("per month"),
                 "quarter": N_("per quarter"), "year": N_("per year")}
GRADE_LABELS = {"general": N_("General (一般)"), "larger": N_("Larger (较大)"),
                "major": N_("Major (重大)"), "especially_major": N_("Especially major (特别重大)")}


def _database(request: Request) -> Any:
    return request.app.state.database


def _explain(request: Request, calc: Any) -> str:
    """The calculation's steps in the page's language only (the stored record and the
    command line keep both)."""
    english = language(request) == "en"
    translate = translator(request)
    lines = [translate(POLICY_LINE, policy=calc.policy_id, version=calc.policy_version), ""]
    lines += [f"{i}. {step.en if english else step.zh}"
              for i, step in enumerate(calc.steps, start=1)]
    if len(calc.shares_fen) > 1:
        lines.append(translate(SHARES_LINE, shares=" + ".join(
            format_yuan(share) for share in calc.shares_fen)))
    lines.append(translate(RESULT_LINE, amount=format_yuan(calc.amount_fen)))
    return "\n".join(lines)


POLICY_LINE = N_("Policy {policy}, version {version}")
SHARES_LINE = N_("Shares: {shares} yuan")
RESULT_LINE = N_("Reward: {amount} yuan")


def _record(request: Request) -> RewardRecord:
    return reward_ledger.get_record(get_session(request), _database(request), current_user(request),
                                    str(request.path_params["reward_id"]))


async def _form(request: Request) -> dict[str, str]:
    form = await request.form(max_files=0, max_fields=30)
    return {key: str(value) for key, value in form.items() if key != "csrf_token"}


def _base_context(request: Request) -> dict[str, Any]:
    return {"statuses": reward_states.STATUS_LABELS, "yuan": format_yuan,
            "methods": reward_claims.METHODS,
            "case_types": reward_policies.CASE_TYPES, "grade_labels": GRADE_LABELS,
            "done": DONE.get(str(request.query_params.get("done", ""))), "error": None}


# ---------------------------------------------------------------------------- the ledger


@require_roles(*LEDGER_ROLES)
async def ledger(request: Request) -> Response:
    session = get_session(request)
    user = current_user(request)
    filters = reward_ledger.LedgerFilters.parse(request.query_params)
    rows, cursor = reward_ledger.ledger_page(session, user, filters)
    reward_ledger.ledger_viewed(session, user, filters)
    channels = reward_ledger.channels_by_id(session)
    return render_page(request, "reviewer/rewards.html", {
        **_base_context(request), "rows": rows, "filters": filters, "channels": channels,
        "display_status": reward_states.display_status,
        "policies": sorted({row.policy_id for row in reward_policies.policy_rows(session)}),
        "next_url": "/console/rewards?" + filters.query_string(after=cursor) if cursor else None,
        "awaiting": reward_ledger.cases_awaiting(session, user),
        "exports": exports.recent_exports(session, user) if user.has_role("auditor") else [],
        "can_export": user.has_role("auditor"),
        "fingerprint": crypto.signing_fingerprint(signing_public_key(
            request.app.state.settings)) if user.has_role("auditor") else "",
    })


@require_roles(*LEDGER_ROLES)
async def record_page(request: Request) -> Response:
    record = _record(request)
    return render_page(request, "reviewer/reward.html", _record_context(request, record))


def _record_context(request: Request, record: RewardRecord) -> dict[str, Any]:
    session = get_session(request)
    user = current_user(request)
    calc = reward_records.calculation_of(record)
    case = session.get(Case, record.case_id)
    # The claim and its slot are not on the page: POST .../claim serves them, audited.
    page_data = {"reward_id": record.id}
    return {
        **_base_context(request), "record": record, "calc": calc,
        "explanation": _explain(request, calc),
        "status": reward_states.display_status(record),
        "names": reward_ledger.people(session, {record.proposed_by, record.decided_by,
                                                record.paid_by}),
        "policy": session.get(RewardPolicyVersion, record.policy_row_id),
        "case": case,
        # A link to the case only for who may open it: finance and auditors outside its
        # channels would meet a refusal (and an entry in the audit trail) behind it.
        "case_opens": case is not None and session.scalar(
            select(Case.id).where(Case.id == case.id, cases.visible_clause(session, user)))
        is not None,
        "basis": workflow.first_valid_basis(session, case) if case is not None else None,
        "title_moved": reward_records.title_moved(session, record),
        "classical_claim": reward_claims.classical_claim(session, record),
        "actions": reward_states.allowed(record, user),
        "own_proposal": user.id == record.proposed_by,
        "cap_excess": reward_records.period_cap_excess(session, record),
        "period_labels": PERIOD_LABELS,
        "is_finance": user.has_role("finance"),
        "page_data": json.dumps(page_data).replace("</", "<\\/"),
    }


async def _decide(request: Request, action: str) -> Response:
    session = get_session(request)
    user = current_user(request)
    record = _record(request)
    form = await _form(request)
    try:
        if action == "approve":
            reward_records.approve(session, record, user, form.get("version"))
        else:
            reward_records.reject(session, record, user, form.get("version"), form.get("reason"))
    except ChuishaoError as exc:
        return _refused(request, f"reward.{action}", record.id, exc)
    done = "approved" if action == "approve" else "rejected"
    return RedirectResponse(f"/console/rewards/{record.id}?done={done}", status_code=303)


def _refused(request: Request, action: str, record_id: str, exc: ChuishaoError) -> Response:
    """The record page again, with the refusal's message; the refusal is audited."""
    error = refused(request, action, record_id, exc)
    context = _record_context(request, _record(request))
    context.update(error=error, done=None)
    return render_page(request, "reviewer/reward.html", context, status=exc.status)


@require_roles("approver")
async def approve(request: Request) -> Response:
    return await _decide(request, "approve")


@require_roles("approver")
async def reject(request: Request) -> Response:
    return await _decide(request, "reject")


# ---------------------------------------------------------------------------- finance


@require_roles("finance")
async def claim(request: Request) -> Response:
    record = _record(request)
    try:
        slots = reward_claims.claim_for(get_session(request), record, current_user(request))
    except ChuishaoError as exc:
        refused(request, "reward.claim_viewed", record.id, exc)
        raise
    assert record.claim_blob is not None
    # As for cases (PROTOCOL 17.7): the v1 slot and the v2 slot, each "" where absent.
    by_suite = {slot.suite: crypto.b64u_encode(slot.slot) for slot in slots}
    return JSONResponse({"item_id": record.claim_item_id,
                         "blob": crypto.b64u_encode(record.claim_blob),
                         "slot": by_suite.get(crypto.SUITE, ""),
                         "slot_v2": by_suite.get(crypto.SUITE_V2, "")},
                        headers={"Cache-Control": "no-store"})


async def _finance(request: Request, action: str) -> Response:
    session = get_session(request)
    user = current_user(request)
    record = _record(request)
    form = await _form(request)
    try:
        if action == "verify":
            reward_claims.verify_code(session, record, user, form.get("code"))
        else:
            reward_claims.record_payment(session, record, user, form.get("code"),
                                         form.get("reference"), form.get("version"))
    except ChuishaoError as exc:
        return _refused(request, "reward.code_verified" if action == "verify" else "reward.pay",
                        record.id, exc)
    done = "verified" if action == "verify" else "paid"
    return RedirectResponse(f"/console/rewards/{record.id}?done={done}#claim", status_code=303)


@require_roles("finance")
async def verify_code(request: Request) -> Response:
    return await _finance(request, "verify")


@require_roles("finance")
async def pay(request: Request) -> Response:
    return await _finance(request, "pay")


# ---------------------------------------------------------------------------- one case


def _case(request: Request) -> Case:
    return cases.get_case(get_session(request), _database(request), current_user(request),
                          str(request.path_params["case_id"]))


def _case_context(request: Request, case: Case) -> dict[str, Any]:
    session = get_session(request)
    records = reward_records.case_records(session, case)
    policies = reward_policies.policy_rows(session, active_only=True)
    return {
        **_base_context(request), "case": case, "records": records,
        "display_status": reward_states.display_status,
        "names": reward_ledger.people(session, {*(r.proposed_by for r in records),
                                                *(r.decided_by for r in records)}),
        "policies": policies, "flags": reward_policies.declared_flags(policies),
        "grades": GRADES, "rewardable": reward_records.rewardable(case),
        "basis": workflow.first_valid_basis(session, case),
        "active": reward_records.active_record(session, case),
        "can_propose": current_user(request).has_role("reviewer"),
        "status_label": workflow.STATUS_LABELS.get(case.status, case.status),
        "form": {"case_type": reward_policies.default_case_type(case), "grade": case.grade or "",
                 "joint_reporters": "1"},
        "preview": None,
    }


@require_roles(*cases.CASE_ROLES)
async def case_reward(request: Request) -> Response:
    case = _case(request)
    return render_page(request, "reviewer/reward_case.html", _case_context(request, case))


@require_roles("reviewer")
async def case_reward_post(request: Request) -> Response:
    session = get_session(request)
    user = current_user(request)
    case = _case(request)
    form = await _form(request)
    action = form.get("action", "preview")
    try:
        if action == "propose":
            record = reward_records.propose(session, case, user, form.get("policy"), form)
            return RedirectResponse(f"/console/rewards/{record.id}?done=proposed",
                                    status_code=303)
        row, calc = reward_records.preview(session, case, user, form.get("policy"), form)
    except ChuishaoError as exc:
        error = refused(request, "reward.propose" if action == "propose" else "reward.preview",
                        case.id, exc)
        case = _case(request)
        context = _case_context(request, case)
        context.update(error=error, form=form)
        return render_page(request, "reviewer/reward_case.html", context, status=exc.status)
    context = _case_context(request, case)
    context.update(form=form, preview={"row": row, "calc": calc,
                                       "text": _explain(request, calc)})
    return render_page(request, "reviewer/reward_case.html", context)


# ---------------------------------------------------------------------------- exports


@require_roles("auditor")
async def export(request: Request) -> Response:
    session = get_session(request)
    user = current_user(request)
    form = await _form(request)
    fmt = form.get("format", "")
    try:
        filters = reward_ledger.LedgerFilters.parse(form)
        started = exports.start_export(session, user, fmt, filters)
    except ChuishaoError as exc:
        refused(request, "export.rewards", "rewards", exc)
        raise
    # The request's transaction (the export row, its audit entry) commits as the response
    # starts; the rows are then read in a transaction of the stream's own.
    body = exports.stream_export(_database(request), request.app.state.settings, started.id,
                                 user.id)
    name = exports.file_name(started)
    return StreamingResponse(body, media_type=exports.FORMATS[fmt], headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "no-store", "X-Chuishao-Export": started.id})


@require_roles("auditor")
async def manifest(request: Request) -> Response:
    session = get_session(request)
    export_id = str(request.path_params["export_id"])
    found = session.get(RewardExport, export_id) if len(export_id) == 32 else None
    if found is None or found.manifest is None or found.user_id != current_user(request).id:
        raise NotFound()
    name = exports.file_name(found) + ".manifest.json"
    return Response(found.manifest + "\n", media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


# ---------------------------------------------------------------------------- audit trail


@require_roles("auditor")
async def audit_trail(request: Request) -> Response:
    session = get_session(request)
    user = current_user(request)
    translate = translator(request)
    filters = auditview.AuditFilters.parse(request.query_params)
    before_text = str(request.query_params.get("before", ""))
    before = int(before_text) if before_text.isdigit() and len(before_text) < 12 else None
    report = audit.verify_chain(session) if request.query_params.get("verify") == "1" else None
    # The head and the count are read before this view's own entry is appended, so both
    # describe the same chain (this view's entry is the next one).
    head = audit.head(session)
    rows, next_before, total = auditview.page(session, filters, before, translate)
    audit.append(session, "audit.viewed", actor=user,
                 details={**filters.as_dict(), "verify": report is not None})
    next_url = ("/console/audit?" + urlencode({**filters.as_dict(), "before": next_before})
                if next_before is not None else None)
    # The fingerprint of the key the service signs with (its key file): the auditor compares
    # it with the signing.pub they keep. The database's copy is only compared, never shown
    # as the truth: whoever can write the database can replace it.
    public = signing_public_key(request.app.state.settings)
    installation = get_installation(session)
    return render_page(request, "reviewer/audit.html", {
        "rows": rows, "report": report, "filters": filters.as_dict(), "total": total,
        "next_url": next_url, "head": head, "actors": auditview.actors(session),
        "groups": auditview.GROUPS, "sentences": auditview.SENTENCES,
        "outcomes": auditview.OUTCOMES, "query": urlencode(filters.as_dict()),
        "fingerprint": crypto.signing_fingerprint(public),
        "key_replaced": installation is not None and installation.signing_public_key != public})


@require_roles("auditor")
async def audit_export(request: Request) -> Response:
    """The filtered trail as CSV or XLSX, in the page's language; the download is audited."""
    session = get_session(request)
    fmt = str(request.path_params["fmt"])
    if fmt not in auditview.FORMATS:
        raise NotFound()
    filters = auditview.AuditFilters.parse(request.query_params)
    translate = translator(request)
    audit.append(session, "audit.exported", actor=current_user(request),
                 details={**filters.as_dict(), "format": fmt})
    body = (auditview.as_csv(session, filters, translate) if fmt == "csv"
            else auditview.as_xlsx(session, filters, translate))
    name = f"audit-{audit.head(session)[0]}.{fmt}"
    return Response(body, media_type=auditview.FORMATS[fmt], headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


@require_roles("auditor")
async def signed_head(request: Request) -> Response:
    """The chain's head signed with the installation's key, for the auditor to keep."""
    session = get_session(request)
    document = audit.signed_head(session, load_signing_key(request.app.state.settings))
    audit.append(session, "audit.head_signed", actor=current_user(request),
                 details={"entry": document["entry"], "head": document["head"]})
    body = json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    name = f"audit-head-{document['entry']}.json"
    return Response(body, media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


@require_roles("auditor")
async def public_key_file(request: Request) -> Response:
    public = signing_public_key(request.app.state.settings)
    return Response(public_key_file_text(public), media_type="text/plain; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="signing.pub"',
                             "Cache-Control": "no-store"})


# ---------------------------------------------------------------------------- policies


def _policies_context(request: Request) -> dict[str, Any]:
    session = get_session(request)
    rows = reward_policies.policy_rows(session)
    return {**_base_context(request), "rows": rows,
            "row_flags": {row.id: list(reward_policies.parsed(row).flags.values()) for row in rows},
            "grades": GRADES, "preview": None, "preview_row": None, "form": {}}


@require_roles("admin")
async def policies(request: Request) -> Response:
    return render_page(request, "reviewer/reward_policies.html", _policies_context(request))


@require_roles("admin")
async def upload_policy(request: Request) -> Response:
    session = get_session(request)
    user = current_user(request)
    form = await request.form(max_files=1, max_fields=10)
    upload = form.get("file")
    text = str(form.get("text") or "")
    try:
        if upload is not None and not isinstance(upload, str):
            raw = await upload.read(reward_policies.MAX_POLICY_BYTES + 1)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(N_("The policy file must be UTF-8 text.")) from None
        if not text.strip():
            raise InvalidInput(N_("Choose a policy file (TOML)."), code="policy_missing")
        reward_policies.upload_policy(session, user, text,
                                      identity_required=form.get("identity_required") == "1")
    except ChuishaoError as exc:
        error = refused(request, "reward.policy_upload", "policies", exc)
        context = _policies_context(request)
        context["error"] = error
        return render_page(request, "reviewer/reward_policies.html", context,
                           status=exc.status)
    return RedirectResponse("/console/reward-policies?done=uploaded", status_code=303)


async def _set_active(request: Request, active: bool) -> Response:
    session = get_session(request)
    row = reward_policies.get_policy_row(session, request.path_params["row_id"])
    reward_policies.set_policy_active(session, current_user(request), row, active)
    done = "activated" if active else "deactivated"
    return RedirectResponse(f"/console/reward-policies?done={done}", status_code=303)


@require_roles("admin")
async def activate_policy(request: Request) -> Response:
    return await _set_active(request, True)


@require_roles("admin")
async def deactivate_policy(request: Request) -> Response:
    return await _set_active(request, False)


@require_roles("admin")
async def preview_policy(request: Request) -> Response:
    session = get_session(request)
    row = reward_policies.get_policy_row(session, request.path_params["row_id"])
    form = await _form(request)
    context = _policies_context(request)
    context.update(form=form, preview_row=row)
    try:
        calc = reward_policies.preview_policy(row, form)
    except ChuishaoError as exc:
        context["error"] = refusal_text(request, exc)
        return render_page(request, "reviewer/reward_policies.html", context,
                           status=exc.status)
    audit.append(session, "reward.policy_preview", actor=current_user(request),
                 target=f"policy:{row.policy_id}:{row.version}",
                 details={"amount_fen": calc.amount_fen})
    context["preview"] = {"calc": calc, "text": _explain(request, calc)}
    return render_page(request, "reviewer/reward_policies.html", context)


ROUTES: list[BaseRoute] = [
    Route("/rewards", ledger, name="rewards"),
    Route("/rewards/export", export, methods=["POST"]),
    Route("/rewards/exports/{export_id}/manifest.json", manifest),
    Route("/rewards/{reward_id}", record_page, name="reward"),
    Route("/rewards/{reward_id}/approve", approve, methods=["POST"]),
    Route("/rewards/{reward_id}/reject", reject, methods=["POST"]),
    Route("/rewards/{reward_id}/claim", claim, methods=["POST"]),
    Route("/rewards/{reward_id}/verify-code", verify_code, methods=["POST"]),
    Route("/rewards/{reward_id}/pay", pay, methods=["POST"]),
    Route("/cases/{case_id}/reward", case_reward, name="case_reward"),
    Route("/cases/{case_id}/reward", case_reward_post, methods=["POST"]),
    Route("/audit", audit_trail, name="audit"),
    Route("/audit/head.json", signed_head),
    Route("/audit/export.{fmt}", audit_export),
    Route("/audit/signing.pub", public_key_file),
    Route("/reward-policies", policies, name="reward_policies"),
    Route("/reward-policies", upload_policy, methods=["POST"]),
    Route("/reward-policies/{row_id:int}/activate", activate_policy, methods=["POST"]),
    Route("/reward-policies/{row_id:int}/deactivate", deactivate_policy, methods=["POST"]),
    Route("/reward-policies/{row_id:int}/preview", preview_policy, methods=["POST"]),
]
