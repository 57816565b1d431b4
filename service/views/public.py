"""Public pages a reporter sees. Thin: domain work lives in services."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

import crypto
from reviewer import rewardflow
from reviewer.rewards import format_yuan
from service import feed, followup, intake, offload, reportform, sealing, serverseal
from service.db import get_session
from service.errors import InvalidInput, NotFound
from service.i18n import LANGUAGES, N_
from service.installation import get_installation
from service.middleware import cookie_name
from service.models import Case
from service.settings import Settings
from service.templating import language, render, translator


def _form_context(request: Request) -> dict[str, object]:
    session = get_session(request)
    return {
        "channels": intake.list_open_channels(session),
        "categories": reportform.CATEGORIES,
        "insider_choices": reportform.INSIDER,
        "limits": reportform.LIMITS,
        "settings": request.app.state.settings,
    }


async def index(request: Request) -> Response:
    return render(request, "public/index.html", _form_context(request))


def _reader(content: bytes) -> Callable[[], list[bytes]]:
    return lambda: [content]


async def submit_report(request: Request) -> Response:
    """The no-JavaScript submission: sealed on the server at once."""
    settings = request.app.state.settings
    form = await reportform.read_multipart(request, max_files=settings.max_files)
    parsed = reportform.parse_report(form, language(request))
    request.app.state.nojs_submissions.take()
    uploads = [(reportform.clean_text(upload.filename, 200) or "file",
                upload.content_type or "", await upload.read())
               for upload in reportform.uploaded_files(form)]
    session = get_session(request)
    # Stripping, key derivation and sealing are CPU work: in the files lane, off the loop.
    receipt, unclean = await offload.run("files", _seal_nojs_report, session, settings,
                                         parsed, uploads,
                                         request.scope.get("chuishao.new_receipt"))
    # The receipt is the body of this POST response: never in a URL, never in history.
    return render(request, "public/receipt.html", {
        "receipt": crypto.format_receipt(receipt), "unclean": unclean, "sealed_on_server": True,
    }, status=201)


def _seal_nojs_report(session: Session, settings: Settings, parsed: reportform.ReportInput,
                      uploads: list[tuple[str, str, bytes]],
                      receipt: str | None) -> tuple[str, list[str]]:
    files = []
    unclean = []
    for name, content_type, data in uploads:
        result = serverseal.strip_or_refuse(data, name, content_type, settings)
        if not result.cleaned:
            unclean.append(name)
        content = result.data
        files.append(sealing.PlainFile(
            name=name, type=(content_type or "application/octet-stream")[:100],
            size=len(content), read=_reader(content),
            removed=tuple(result.removed), cleaned=result.cleaned))
    return serverseal.seal_on_server(session, settings, parsed.channel, parsed.report,
                                     parsed.identity, files, receipt), unclean


async def followup_form(request: Request) -> Response:
    return render(request, "public/followup.html", {})


def _case_page(request: Request, opened: serverseal.OpenedCase, *,
               notice: str | None = None, status: int = 200) -> Response:
    settings = request.app.state.settings
    translate = translator(request)
    session = get_session(request)
    events = []
    for event in followup.visible_events(session, opened.case):
        text = feed.event_text(event.kind, event.data, translate)
        if text:
            events.append((event.created_at, text))
    capability = serverseal.issue_capability(request.app.state.secret_key, opened.case.id,
                                             opened.case_key, settings.followup_minutes)
    return render(request, "public/case.html", {
        "opened": opened, "status_text": feed.status_text(opened.case.status, translate),
        "events": events, "capability": capability, "notice": notice,
        "report": next((i.content for i in opened.items if i.kind == "report"), {}),
        "categories": dict(reportform.CATEGORIES),
        "rewards": rewardflow.reporter_rewards(session, opened.case),
        "claim_methods": rewardflow.METHODS,
    }, status=status)


def _installation_salt(session: Session) -> bytes | None:
    installation = get_installation(session)
    return installation.salt if installation is not None else None


async def prepare_receipt(request: Request) -> None:
    """Before the database gate: the typed receipt's key derivation, in the receipt lane.

    No count limit: guesses (anonymous, no stamp possible without JavaScript) wait their turn
    in the lane with everyone else, so they slow look-ups in proportion to how many the
    guesser keeps going, use one thread, and lock nobody out.
    """
    try:
        form = await request.form(max_files=0, max_fields=20)
    except (HTTPException, ValueError):
        return  # the view refuses it
    try:
        receipt = crypto.normalize_receipt(str(form.get("receipt", ""))[:100])
    except ValueError:
        return
    salt = await request.app.state.database.read(_installation_salt)
    if salt is not None:
        await offload.run("receipt", crypto.derive_receipt, receipt, salt,
                          request.app.state.settings.receipt_iterations, remember=True)


async def prepare_new_receipt(request: Request) -> None:
    """Before the database gate: a new report's receipt and its key derivation, in the
    receipt lane, so the write lock is not held through it."""
    salt = await request.app.state.database.read(_installation_salt)
    if salt is not None:
        receipt = crypto.new_receipt()
        await offload.run("receipt", crypto.derive_receipt, receipt, salt,
                          request.app.state.settings.receipt_iterations, remember=True)
        request.scope["chuishao.new_receipt"] = receipt


async def followup_open(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=10)
    opened = serverseal.open_with_receipt(get_session(request), request.app.state.settings,
                                          str(form.get("receipt", ""))[:100])
    return _case_page(request, opened)


async def followup_claim(request: Request) -> Response:
    """The no-JavaScript claim: the receipt is typed again so the server can derive the code."""
    form = await request.form(max_files=0, max_fields=20)
    fields = {key: str(value) for key, value in form.items() if key != "receipt"}
    record, code = rewardflow.claim_on_server(
        get_session(request), request.app.state.settings, str(form.get("receipt", ""))[:100],
        fields.get("reward", ""), fields)
    # The code is the body of this POST response: never in a URL, never stored.
    return render(request, "public/claim.html", {
        "code": crypto.format_claim_code(code), "amount": format_yuan(record.amount_fen),
        "paid": record.status == "paid"})


def _opened_from_capability(request: Request, case_id: str,
                            capability: str) -> serverseal.OpenedCase:
    session = get_session(request)
    case = session.get(Case, case_id) if intake.ID.match(case_id) else None
    if case is None or not case.ready:
        raise serverseal.CapabilityInvalid()
    key = serverseal.open_capability(request.app.state.secret_key, case.id, capability)
    return serverseal.open_case(session, case, key)


async def followup_reply(request: Request) -> Response:
    settings = request.app.state.settings
    form = await reportform.read_multipart(request, max_files=settings.max_files)
    opened = _opened_from_capability(request, str(form.get("case", "")),
                                     str(form.get("capability", "")))
    text = reportform.clean_text(form.get("text"), reportform.LIMITS["description"])
    uploads = reportform.uploaded_files(form)
    if not text and not uploads:
        raise InvalidInput(N_("Write a reply or attach a file."))
    session = get_session(request)
    if text:
        in_reply_to = str(form.get("in_reply_to", ""))
        body = {"v": 1, "text": text}
        if intake.ID.match(in_reply_to):
            body["in_reply_to"] = in_reply_to
        item = sealing.seal_item_for_case(opened.case_key, opened.case.id, "reply", body)
        followup.add_reply(session, settings, opened.case, item)
    for upload in uploads:
        await offload.run("files", serverseal.add_file_on_server, session, settings, opened,
                          upload.filename or "file", upload.content_type or "",
                          await upload.read())
    session.flush()
    opened = serverseal.open_case(session, opened.case, opened.case_key)
    notice = translator(request)(N_("Your reply was sealed and sent."))
    return _case_page(request, opened, notice=notice)


async def followup_download(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=10)
    opened = _opened_from_capability(request, str(form.get("case", "")),
                                     str(form.get("capability", "")))
    wanted = str(form.get("file", ""))
    for stored, meta in opened.files:
        if stored.id == wanted:
            return StreamingResponse(
                serverseal.decrypt_file(get_session(request), opened, stored, meta),
                media_type="application/octet-stream",
                headers={"Content-Disposition": serverseal.attachment_header(meta)})
    raise NotFound()


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
