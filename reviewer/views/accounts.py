"""Console views: invitations, TOTP enrolment, sign-in and out, the own account page.

The browser derives every key from the password (static/js/console/); these views only ever
see the authentication secret, public keys and wrapped keys.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

import crypto
from reviewer import auth
from reviewer.auth import current_user, require_roles
from service.domain import (
    accounts,
    audit,
    degraded,
    invitations,
    labels,
    notify,
    pow,
    refusals,
    totp,
    xwing_keys,
)
from service.domain.models import Channel, User, utcnow
from service.platform import localtime, offload, tokens
from service.platform.bodylimit import prepared_first
from service.platform.db import get_session
from service.platform.errors import InvalidInput
from service.platform.i18n import N_
from service.platform.middleware import cookie_name
from service.platform.settings import Settings
from service.platform.templating import render, translator

MIN_PASSWORD = 10
ENROL_MINUTES = 60

# Text the console scripts show, translated here and handed over in a JSON data island.
SCRIPT_MESSAGES = {
    "deriving": N_("Deriving keys from your password…"),
    "generating": N_("Creating your key pair…"),
    "sending": N_("Sending…"),
    "signing_in": N_("Signing in…"),
    "pow": N_("Anti-abuse check before signing in…"),
    "pow_progress": N_("Anti-abuse check before signing in… {percent}%"),
    "mismatch": N_("The two new passwords are not the same."),
    "too_short": N_("A password needs at least {count} characters."),
    "locked": N_("Your private key is not unlocked in this browser, so cases cannot be "
                 "decrypted. Enter your password to unlock it."),
    "unlock": N_("Unlock"),
    "password": N_("Password"),
    "wrong_password": N_("The password is not correct."),
    "network": N_("The server could not be reached. Check your connection and try again."),
    "failed": N_("Something went wrong: {message}"),
    "no_crypto": N_("This browser cannot do the cryptography the console needs (X25519). "
                    "Use a current version of Chrome, Edge, Firefox or Safari."),
    "changed": N_("Your password was changed. Your other sessions were signed out."),
    "no_hybrid": N_("Your account has a post-quantum (X-Wing) key, which this browser cannot "
                    "use. Change the password in an up-to-date Chrome or Edge."),
}


def script_messages(request: Request) -> str:
    translate = translator(request)
    data = {key: translate(text) for key, text in SCRIPT_MESSAGES.items()}
    # "</" escaped so the island cannot end early.
    return json.dumps(data, ensure_ascii=False).replace("</", "<\\/")


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _secret_key(request: Request) -> str:
    key: str = request.app.state.secret_key
    return key


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except (ValueError, RecursionError):
        raise InvalidInput() from None


def _page(request: Request, name: str, context: dict[str, Any] | None = None,
          status: int = 200) -> Response:
    return render(request, name, {"script_messages": script_messages(request),
                                  **(context or {})}, status=status)


# ---------------------------------------------------------------------------- invitations


def _enrol_cookie(settings: Settings) -> str:
    return cookie_name("enrol", settings.secure_cookies)


def _find_invitation(request: Request, *, attempt: str | None = None) -> Any:
    """The invitation named in the path; a refused POST is recorded in the audit trail."""
    try:
        return invitations.find_invitation(get_session(request), request.path_params["token"])
    except invitations.InvitationInvalid:
        if attempt:
            # An unknown link names nobody: counted, not an audit entry per request.
            refusals.record(request.app.state.database, f"{attempt}.invitation_invalid")
        raise


async def invitation_page(request: Request) -> Response:
    invitation = _find_invitation(request)
    channel = None
    if invitation.channel_id is not None:
        channel = get_session(request).get(Channel, invitation.channel_id)
    return _page(request, "reviewer/invitation.html", {
        "invitation": invitation, "channel": channel,
        "iterations": _settings(request).password_iterations,
        "min_password": MIN_PASSWORD,
        "token": request.path_params["token"],
    })


async def create_account(request: Request) -> Response:
    invitation = _find_invitation(request, attempt="account.register")
    session = get_session(request)
    try:
        data = await _json(request)
        account = accounts.NewAccount.from_json(data)
        # None from a browser without the hybrid: the account starts classical.
        xwing = xwing_keys.XWingKey.optional(data)
        # Its scrypt runs in the password lane, off the event loop (service.platform.offload).
        user = await offload.run("password", invitations.create_account, session,
                                 _settings(request), invitation, account, xwing)
    except InvalidInput as error:
        audit.record_refusal(request.app.state.database, "account.register",
                             target=f"invitation:{invitation.id}",
                             details={"reason": error.code})
        raise
    details = {"username": user.username, "key_id": user.key_id}
    if user.xwing_key_id is not None:
        details["xwing_key_id"] = user.xwing_key_id
    audit.append(session, "account.register", target=f"invitation:{invitation.id}",
                 details=details)
    token = request.path_params["token"]
    response = JSONResponse({"next": f"/console/invite/{token}/totp"})
    settings = _settings(request)
    proof = invitations.enrolment_proof(_secret_key(request), invitation, user)
    response.set_cookie(
        _enrol_cookie(settings), proof, max_age=ENROL_MINUTES * 60, path="/", httponly=True,
        secure=settings.secure_cookies, samesite="strict")
    return response


def _enrolling(request: Request, attempt: str | None = None) -> tuple[Any, User] | None:
    invitation = _find_invitation(request, attempt=attempt)
    user = invitations.pending_user(get_session(request), invitation)
    given = request.cookies.get(_enrol_cookie(_settings(request)))
    if user is None or not invitations.check_enrolment_proof(_secret_key(request), invitation,
                                                          user, given):
        return None
    return invitation, user


def _totp_page(request: Request, user: User, error: str = "", status: int = 200) -> Response:
    assert user.totp_secret is not None
    uri = totp.uri(user.username, user.totp_secret)
    secret = totp.secret_text(user.totp_secret)
    size, path = totp.qr_svg_path(uri)
    return _page(request, "reviewer/totp.html", {
        "account": user, "secret": secret,
        "secret_groups": " ".join(secret[i:i + 4] for i in range(0, len(secret), 4)),
        "uri": uri, "qr_size": size, "qr_path": path, "error": error,
        "token": request.path_params["token"],
    }, status=status)


async def totp_page(request: Request) -> Response:
    found = _enrolling(request)
    if found is None:
        # Another browser, or the enrolment proof expired: create the account again.
        return RedirectResponse(f"/console/invite/{request.path_params['token']}",
                                status_code=303)
    return _totp_page(request, found[1])


async def totp_confirm(request: Request) -> Response:
    found = _enrolling(request, attempt="account.totp")
    token = request.path_params["token"]
    if found is None:
        refusals.record(request.app.state.database, "account.totp.no_enrolment")
        return RedirectResponse(f"/console/invite/{token}", status_code=303)
    invitation, user = found
    form = await request.form()
    try:
        invitations.confirm_totp(get_session(request), invitation, user, form.get("code"))
    except totp.WrongCode as error:
        audit.record_refusal(request.app.state.database, "account.totp",
                             actor_id=user.id, target=f"invitation:{invitation.id}",
                             details={"reason": "wrong_code"})
        return _totp_page(request, user, translator(request)(error.message), status=400)
    response = RedirectResponse("/console/login?welcome=1", status_code=303)
    settings = _settings(request)
    response.delete_cookie(_enrol_cookie(settings), path="/", httponly=True,
                           secure=settings.secure_cookies, samesite="strict")
    return response


# ---------------------------------------------------------------------------- sign-in


async def login_page(request: Request) -> Response:
    if request.scope.get("user") is not None:
        return RedirectResponse("/console/cases", status_code=303)
    return _page(request, "reviewer/login.html", {
        "welcome": request.query_params.get("welcome") == "1",
        "signed_out": request.query_params.get("out") == "1",
    })


async def prelogin(request: Request) -> Response:
    data = await _json(request)
    username = data.get("username") if isinstance(data, dict) else None
    return JSONResponse(accounts.prelogin(get_session(request), _settings(request),
                                          _secret_key(request), username))


async def prepare_login(request: Request) -> None:
    """Before the database gate: the attempt's scrypt, off the event loop (see offload).

    Only for an attempt whose stamp is well made and solved at the name's current price (a
    check that needs no write): a stampless flood then costs neither a scrypt nor a place in
    the password lane. The view spends the stamp and refuses the rest."""
    try:
        data = await request.json()
    except (ValueError, RecursionError):
        return  # the view refuses it before any scrypt
    if not isinstance(data, dict):
        data = {}  # as the view: checked like any other attempt, with the same cost
    settings = _settings(request)
    secret_key = _secret_key(request)
    claimed = accounts.normalize_username(data.get("username"))
    now = utcnow()

    def price(session: Any) -> int:
        failures = accounts.recent_failures(session, settings, secret_key, claimed, now)
        return accounts.login_difficulty(settings, failures.count)

    difficulty = await request.app.state.database.read(price)
    try:
        pow.ProofOfWork(secret_key, difficulty).verify(data.get("pow"))  # type: ignore[arg-type]
    except pow.PowInvalid:
        return
    await accounts.prepare_login(request.app.state.database, settings,
                                 data.get("username"), data.get("auth_secret"))


async def login(request: Request) -> Response:
    data = await _json(request)
    if not isinstance(data, dict):
        data = {}
    session = get_session(request)
    settings = _settings(request)
    now = utcnow()
    claimed = accounts.normalize_username(data.get("username"))
    # The stamp first, priced on the claimed name's recent failures: a guess costs the
    # attacker work before it costs the server a scrypt.
    failures = accounts.recent_failures(session, settings, _secret_key(request), claimed, now)
    try:
        degraded.spend_stamp(
            request.app.state.database, session,
            pow.ProofOfWork(_secret_key(request),
                            accounts.login_difficulty(settings, failures.count)),
            request.app.state.held_stamps, data.get("pow"),
            granularity_seconds=settings.time_granularity_seconds)
    except pow.PowInvalid:
        refusals.record(request.app.state.database, "login.pow")
        raise
    result = accounts.check_login(session, settings, data.get("username"),
                                  data.get("auth_secret"), data.get("totp"), now)
    if not result.ok:
        accounts.record_failure(
            request.app.state.database, settings, _secret_key(request), "login",
            user_id=result.user.id if result.user is not None else None,
            claimed=claimed, reason=result.reason, now=now)
        raise accounts.LoginFailed()
    user = result.user
    assert user is not None
    seen = accounts.forget_failures(session, settings, _secret_key(request), user.username,
                                    now)
    # Never adopt a session the browser brings along: a fresh token every time (fixation).
    previous = request.scope.get("console_session")
    if previous is not None:
        auth.revoke_session(session, previous.id, now)
    token = auth.start_session(session, settings, user, now)
    session_id = tokens.digest(token)
    audit.append(session, "login", actor=user, target="login", now=now,
                 details={"failed_before": seen.count} if seen.count else None)
    translate = translator(request)
    response = JSONResponse({
        # The owner hears of failed attempts at once (login.js shows this before going on).
        "failed_attempts": seen.count,
        "failed_notice": translate(N_(
            "Since your last sign-in there were {count} failed sign-in attempts for your "
            "username, the last at {when}. If that was not you, tell an administrator."),
            count=seen.count, when=localtime.show(seen.last_at))
        if seen.count and seen.last_at is not None else "",
        **_wrapped_keys(user),
        "key_handle": auth.csrf_token_for(_secret_key(request), "key-handle:" + session_id),
        # The new session's token: login.js may add the account's X-Wing key before leaving.
        "csrf_token": auth.csrf_token_for(_secret_key(request), "session:" + session_id),
        "next": "/console/cases",
    })
    auth.set_session_cookie(response, settings, token)
    return response


async def logout(request: Request) -> Response:
    row = request.scope.get("console_session")
    user = request.scope.get("user")
    if row is not None:
        auth.revoke_session(get_session(request), row.id)
        audit.append(get_session(request), "logout", actor=user, target="logout")
    response = RedirectResponse("/console/login?out=1", status_code=303)
    auth.clear_session_cookie(response, _settings(request))
    return response


# ---------------------------------------------------------------------------- own account


@require_roles()
async def account_page(request: Request) -> Response:
    user = current_user(request)
    settings = _settings(request)
    current = request.scope["console_session"]
    rows = accounts.own_sessions(get_session(request), user,
                                 idle_minutes=settings.session_idle_minutes)
    return _page(request, "reviewer/account.html", {
        "account": user, "sessions": rows, "current_session": current.id,
        "iterations": settings.password_iterations, "min_password": MIN_PASSWORD,
        "changed": request.query_params.get("changed") == "1",
        **notify.account_view(get_session(request), user),
        "role_names": labels.role_names,
    })


@require_roles()
async def revoke_session(request: Request) -> Response:
    user = current_user(request)
    session_id = request.path_params["session_id"]
    accounts.revoke_own_session(get_session(request), user, session_id)
    if session_id == request.scope["console_session"].id:
        response = RedirectResponse("/console/login?out=1", status_code=303)
        auth.clear_session_cookie(response, _settings(request))
        return response
    return RedirectResponse("/console/account", status_code=303)


@require_roles()
async def revoke_everywhere(request: Request) -> Response:
    user = current_user(request)
    ended = accounts.revoke_others(get_session(request), user.id, None)
    audit.append(get_session(request), "session.revoke_all", actor=user, target=f"user:{user.id}",
                 details={"sessions_ended": ended})
    response = RedirectResponse("/console/login?out=1", status_code=303)
    auth.clear_session_cookie(response, _settings(request))
    return response


def _wrapped_keys(user: User) -> dict[str, str]:
    """The account's keys as only its browser can open them: the X25519 key, and the X-Wing
    seed where the account has one (PROTOCOL 9, 17.5)."""
    keys = {"wrapped_private_key": crypto.b64u_encode(user.wrapped_private_key),
            "key_id": user.key_id}
    if user.wrapped_xwing_seed is not None and user.xwing_key_id is not None:
        keys["wrapped_xwing_seed"] = crypto.b64u_encode(user.wrapped_xwing_seed)
        keys["xwing_key_id"] = user.xwing_key_id
    return keys


@require_roles()
async def my_key(request: Request) -> Response:
    user = current_user(request)
    return JSONResponse({"username": user.username, **_wrapped_keys(user)})


@require_roles()
async def add_xwing_key(request: Request) -> Response:
    """An account without an X-Wing pair gets the one its browser made after sign-in or
    unlock; the seed arrives wrapped with the password's kek, never in the clear."""
    user = current_user(request)
    try:
        key = xwing_keys.XWingKey.from_json(await _json(request))
        xwing_keys.add_xwing_key(get_session(request), user, key)
    except (InvalidInput, xwing_keys.HasXWingKey) as error:
        audit.record_refusal(request.app.state.database, "account.add_pq", actor_id=user.id,
                             target=f"user:{user.id}", details={"reason": error.code})
        raise
    return JSONResponse({"username": user.username, **_wrapped_keys(user)})


@require_roles()
async def change_password(request: Request) -> Response:
    user = current_user(request)
    new = accounts.NewPassword.from_json(await _json(request))
    keep = request.scope["console_session"].id
    now = utcnow()
    # Two scrypts (the old secret checked, the new one hashed): in the password lane.
    if not await offload.run("password", accounts.change_password, get_session(request),
                             _settings(request), user, new, keep, now):
        accounts.record_failure(request.app.state.database, _settings(request),
                                _secret_key(request), "password.change", user_id=user.id,
                                claimed=user.username, reason="wrong_password", now=now)
        raise accounts.WrongPassword()
    return JSONResponse({"next": "/console/account?changed=1"})


ROUTES: list[BaseRoute] = [
    Route("/login", login_page, name="login"),
    Route("/login", prepared_first(login, prepare_login), methods=["POST"]),
    Route("/api/prelogin", prelogin, methods=["POST"]),
    Route("/logout", logout, methods=["POST"], name="logout"),
    Route("/invite/{token}", invitation_page, name="invitation"),
    Route("/invite/{token}", create_account, methods=["POST"]),
    Route("/invite/{token}/totp", totp_page, name="totp"),
    Route("/invite/{token}/totp", totp_confirm, methods=["POST"]),
    Route("/account", account_page, name="account"),
    Route("/account/sessions/revoke-all", revoke_everywhere, methods=["POST"]),
    Route("/account/sessions/{session_id}/revoke", revoke_session, methods=["POST"]),
    Route("/api/me/key", my_key),
    Route("/api/account/xwing-key", add_xwing_key, methods=["POST"]),
    Route("/api/account/password", change_password, methods=["POST"]),
]
