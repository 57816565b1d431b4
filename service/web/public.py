"""Public pages a reporter sees. Thin: domain work lives in services."""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

import crypto
from service.domain import (
    feed,
    followup,
    formtoken,
    intake,
    metadata,
    reportform,
    reward_claims,
    sealing,
    serverseal,
)
from service.domain.installation import get_installation
from service.domain.models import Case
from service.domain.rewards import format_yuan
from service.platform import offload
from service.platform.db import get_session
from service.platform.errors import (
    ChuishaoError,
    InvalidInput,
    NotFound,
    RateLimited,
    wants_json,
)
from service.platform.i18n import LANGUAGES, N_
from service.platform.middleware import cookie_name
from service.platform.templating import language, render, translator
from service.web import upload


def _form_context(request: Request) -> dict[str, object]:
    session = get_session(request)
    open_channels = intake.list_open_channels(session)
    # The same words as the line's posters, so a reporter can check the page is the real one.
    v2_only = request.app.state.settings.require_v2
    fingerprints = ({c.slug: intake.fingerprint_words(session, c, v2_only=v2_only)
                     for c in open_channels}
                    if get_installation(session) is not None else {})
    return {
        "channels": open_channels,
        "fingerprints": fingerprints,
        # A poster's QR code names its line: /?channel=<slug> preselects it.
        "preselected": str(request.query_params.get("channel", ""))[:64],
        "categories": reportform.CATEGORIES,
        "insider_choices": reportform.INSIDER,
        "limits": reportform.LIMITS,
        "settings": request.app.state.settings,
        "values": {}, "form_error": None, "form_error_code": "",
        "storage_down": _storage_down(request),
        # A fresh one-time token with every form, also a refused one (service.domain.formtoken).
        "receipt_minutes": formtoken.RECEIPT_MINUTES,
        "form_token": formtoken.issue(request.app.state.secret_key,
                                      request.app.state.settings.time_granularity_seconds),
    }


def _storage_down(request: Request) -> bool:
    # The last storage check failed: say so before the reporter types in vain.
    return request.app.state.storage.failing is not None


def _followup_form(request: Request, form_error: str | None = None, typed: str = "",
                   status: int = 200) -> Response:
    return render(request, "public/followup.html", {
        "form_error": form_error, "typed_receipt": typed, "storage_down": _storage_down(request),
        "require_v2": request.app.state.settings.require_v2},
        status=status)


async def index(request: Request) -> Response:
    return render(request, "public/index.html", _form_context(request))


def _refusal_text(request: Request, error: ChuishaoError) -> str:
    translate = translator(request)
    reasons = getattr(error, "reasons", ())
    return " ".join([translate(error.message, **error.params),
                     *(translate(reason) for reason in reasons)])


def _refused_form(request: Request, form: FormData, error: ChuishaoError) -> Response:
    """The form again, with what the reporter typed and why nothing was sent (never stored)."""
    if wants_json(request):
        raise error
    context = _form_context(request)
    context.update({"values": reportform.refill(form),
                    "form_error": _refusal_text(request, error),
                    "form_error_code": error.code})
    return render(request, "public/index.html", context, status=error.status)


async def submit_report(request: Request) -> Response:
    """The no-JavaScript submission: sealed on the server at once."""
    settings = request.app.state.settings
    posted = upload.received(request)
    form = posted.fields
    try:
        # Before anything else: plaintext from a page whose script should have encrypted it
        # is dropped here, unparsed and uncounted.
        sealing_mode = reportform.server_sealing(form)
    except reportform.ScriptDidNotRun as refused:
        return _refused_form(request, form, refused)
    try:
        parsed = reportform.parse_report(form, language(request))
    except InvalidInput as refused:
        return _refused_form(request, form, refused)
    granularity = settings.time_granularity_seconds
    try:
        digest, expires = formtoken.check(request.app.state.secret_key,
                                          form.get(formtoken.FIELD), granularity)
    except formtoken.FormTokenInvalid as refused:
        return _refused_form(request, form, refused)
    session = get_session(request)
    if formtoken.is_spent(session, digest):
        return _already_sent(request)
    try:
        request.app.state.nojs_submissions.take()
    except RateLimited as refused:
        return _refused_form(request, form, refused)
    try:
        # Spent first, in the transaction that files the case: committed with it or not at
        # all (a refusal below rolls it back, so the form can be sent again).
        formtoken.spend(session, digest, expires, granularity_seconds=granularity)
    except formtoken.AlreadySent:
        return _already_sent(request)
    try:
        if posted.refused is not None:
            raise posted.refused
        # Stripping, key derivation and sealing are CPU work: in the files lane, off the loop.
        cleaned, left_out = await offload.run(
            "files", functools.partial(
                serverseal.clean_uploads, first_number=1, keep_names=reportform.keep_names(form),
                unclean=reportform.unclean_choice(form), translate=translator(request),
                settings=settings), posted.files)
    except InvalidInput as refused:
        # Files that cannot be cleaned (named), a damaged or odd picture, a file too large:
        # the form comes back with what was typed; files must be attached again.
        return _refused_form(request, form, refused)
    files = [sealing.PlainFile(name=f.name, type=f.type, size=f.size, read=f.read,
                               removed=f.removed, cleaned=f.cleaned) for f in cleaned]
    receipt = await offload.run("files", serverseal.seal_on_server, session,
                                settings, parsed.channel, parsed.report, parsed.identity, files,
                                request.scope.get("chuishao.new_receipt"))
    # Post/redirect/get: the receipt page is a GET, so reload, Back and Forward never post
    # the report again; the receipt travels sealed in a cookie, never in a URL.
    page = formtoken.seal_page(request.app.state.secret_key, {
        "receipt": receipt, "sealed_on_server": sealing_mode,
        "unclean": [f.original for f in cleaned if not f.cleaned], "left_out": left_out,
        "removed": [(f.original, f.removed) for f in cleaned if f.removed]})
    response = RedirectResponse(formtoken.RECEIPT_PATH, status_code=303)
    _receipt_cookie(request, response, page)
    return response


def _receipt_cookie(request: Request, response: Response, value: str | None) -> None:
    settings = request.app.state.settings
    name = cookie_name(formtoken.RECEIPT_COOKIE, settings.secure_cookies)
    if value is None:
        response.delete_cookie(name, path="/", secure=settings.secure_cookies, httponly=True,
                               samesite="strict")
    else:
        response.set_cookie(name, value, max_age=formtoken.RECEIPT_MINUTES * 60, path="/",
                            secure=settings.secure_cookies, httponly=True, samesite="strict")


def _already_sent(request: Request) -> Response:
    """A repeat post of a form whose report was filed: nothing is filed again."""
    if _receipt_page(request) is not None:
        # The first answer's receipt is still on this phone: show it again.
        return RedirectResponse(formtoken.RECEIPT_PATH, status_code=303)
    return render(request, "public/already_sent.html", {"shown": False}, status=409)


def _receipt_page(request: Request) -> dict[str, Any] | None:
    settings = request.app.state.settings
    return formtoken.open_page(
        request.app.state.secret_key,
        request.cookies.get(cookie_name(formtoken.RECEIPT_COOKIE, settings.secure_cookies)))


async def receipt_page(request: Request) -> Response:
    page = _receipt_page(request)
    if page is None:
        return render(request, "public/already_sent.html", {"shown": True})
    return render(request, "public/receipt.html", {
        "receipt": crypto.format_receipt(page["receipt"]),
        "unclean": page["unclean"], "left_out": page["left_out"],
        "removed": _removed_lines(request, page["removed"]),
        "sealed_on_server": page["sealed_on_server"],
        "receipt_minutes": formtoken.RECEIPT_MINUTES,
    })


def _removed_lines(request: Request, removed: list[list[Any]]) -> list[str]:
    translate = translator(request)
    return [translate(N_("{name}: hidden data removed: {what}"), name=name,
                      what=metadata.plain_removed(labels, translate))
            for name, labels in removed]


async def receipt_done(request: Request) -> Response:
    """The reporter wrote the receipt down: it leaves this phone's cookies."""
    response = RedirectResponse("/", status_code=303)
    _receipt_cookie(request, response, None)
    return response


async def followup_form(request: Request) -> Response:
    return _followup_form(request)


def _case_page(request: Request, opened: serverseal.OpenedCase, sealing_mode: str, *,
               notice: str | None = None, reply_error: str | None = None,
               reply_text: str = "", status: int = 200) -> Response:
    settings = request.app.state.settings
    translate = translator(request)
    session = get_session(request)
    events = []
    for event in followup.visible_events(session, settings, opened.case):
        text = feed.event_text(event.kind, event.data, translate)
        if text:
            events.append((event.created_at, text))
    capability = serverseal.issue_capability(request.app.state.secret_key, opened.case.id,
                                             opened.case_key, settings.followup_minutes)
    return render(request, "public/case.html", {
        "opened": opened, "status_text": feed.status_text(opened.case.status, translate),
        "events": events, "capability": capability, "notice": notice,
        "sealing": sealing_mode, "reply_error": reply_error, "reply_text": reply_text,
        "report": next((i.content for i in opened.items if i.kind == "report"), {}),
        # What was removed from each file, in the receipt's plain words (as the JS page says).
        "removed_words": {stored.id: translate(N_("{name}: hidden data removed: {what}"),
                                               name=meta.get("name") or translate(N_("file")),
                                               what=metadata.plain_removed(removed, translate))
                          for stored, meta in opened.files
                          if isinstance(removed := meta.get("removed"), list) and removed},
        "categories": dict(reportform.CATEGORIES),
        "rewards": reward_claims.reporter_rewards(session, opened.case),
        "claim_methods": reward_claims.METHODS,
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


async def prepare_report(request: Request) -> None:
    """Before the database gate: the form read as it arrives (files streamed), then the
    new report's receipt."""
    await upload.read_form(request, request.app.state.settings)
    await prepare_new_receipt(request)


async def prepare_reply(request: Request) -> None:
    """Before the database gate: the no-JavaScript reply read as it arrives."""
    await upload.read_form(request, request.app.state.settings)


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
    try:
        # The receipt reaches the server only from a page that ran no script (or whose
        # script asked): otherwise it is not looked at.
        sealing_mode = reportform.server_sealing(form)
    except reportform.ScriptDidNotRun as refused:
        return _followup_form(request, translator(request)(refused.message),
                              status=refused.status)
    typed = str(form.get("receipt", ""))[:100]
    try:
        opened = serverseal.open_with_receipt(get_session(request), request.app.state.settings,
                                              typed)
    except (InvalidInput, followup.ReceiptUnknown) as refused:
        if wants_json(request):
            raise
        # What was typed comes back (this page is never cached), so one wrong digit does
        # not mean typing all twenty again.
        return _followup_form(request, _refusal_text(request, refused), typed[:40],
                              status=refused.status)
    return _case_page(request, opened, sealing_mode)


async def followup_claim(request: Request) -> Response:
    """The no-JavaScript claim: the receipt is typed again so the server can derive the code."""
    form = await request.form(max_files=0, max_fields=20)
    reportform.server_sealing(form)
    fields = {key: str(value) for key, value in form.items()
              if key not in ("receipt", "sealing")}
    record, code = reward_claims.claim_on_server(
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
    return serverseal.open_case(session, request.app.state.settings, case, key)


async def followup_reply(request: Request) -> Response:
    settings = request.app.state.settings
    posted = upload.received(request)
    form = posted.fields
    sealing_mode = reportform.server_sealing(form)
    opened = _opened_from_capability(request, str(form.get("case", "")),
                                     str(form.get("capability", "")))
    text = reportform.clean_text(form.get("text"), reportform.LIMITS["description"])
    uploads = posted.files
    if posted.refused is not None:
        return _case_page(request, opened, sealing_mode, status=posted.refused.status,
                          reply_error=_refusal_text(request, posted.refused), reply_text=text)
    if not text and not uploads:
        raise InvalidInput(N_("Write a reply or attach a file."))
    # The case's quota before any file is parsed: a full case costs the stripper nothing.
    followup.check_reply_room(get_session(request), settings, opened.case, text=bool(text),
                              file_sizes=[f.size for f in uploads])
    try:
        cleaned, left_out = await offload.run(
            "files", functools.partial(
                serverseal.clean_uploads, first_number=len(opened.files) + 1,
                keep_names=reportform.keep_names(form), unclean=reportform.unclean_choice(form),
                translate=translator(request), settings=settings), uploads)
    except reportform.UncleanNotChosen as refused:
        return _case_page(request, opened, sealing_mode, status=refused.status,
                          reply_error=_refusal_text(request, refused),
                          reply_text=text)
    session = get_session(request)
    if text:
        in_reply_to = str(form.get("in_reply_to", ""))
        body = {"v": 1, "text": text}
        if intake.ID.match(in_reply_to):
            body["in_reply_to"] = in_reply_to
        item = sealing.seal_item_for_case(opened.case_key, opened.case.id, "reply", body)
        followup.add_reply(session, settings, opened.case, item)
    for cleaned_file in cleaned:
        await offload.run("files", serverseal.add_file_on_server, session, settings, opened,
                          cleaned_file)
    session.flush()
    opened = serverseal.open_case(session, settings, opened.case, opened.case_key)
    translate = translator(request)
    notice = translate(N_("Your reply was sealed and sent."))
    if left_out:
        notice += " " + translate(N_("Left out, as you chose: {names}."),
                                  names=", ".join(left_out))
    return _case_page(request, opened, sealing_mode, notice=notice)


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
    """Liveness: the process answers. Restarting it would not free a disk, so storage never
    fails this one; the last storage check is reported for whoever reads the body."""
    last = request.app.state.storage.last
    body: dict[str, object] = {"status": "ok"}
    if last is not None:
        body["ready"] = last.ready
    return JSONResponse(body)


async def ready(request: Request) -> Response:
    """Readiness: the database can be read and written, free space is above the minimum,
    the schema is current (docs/OPERATIONS.md)."""
    watch, database = request.app.state.storage, request.app.state.database
    report = await anyio.to_thread.run_sync(watch.check, database)
    return JSONResponse(report.as_json(), status_code=200 if report.ready else 503,
                        headers={"Cache-Control": "no-store"})
