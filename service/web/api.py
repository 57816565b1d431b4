"""The public JSON API behind the reporter's pages (documented in docs/API.md).

Views stay thin: parse, call a service, answer. Every refusal is a ChuishaoError rendered as
``{"error": {"code", "message"}}`` in the caller's language.
"""

from __future__ import annotations

import json
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

import crypto
from service.domain import degraded, followup, intake, pow, quota, reward_claims
from service.domain.installation import get_installation
from service.platform import offload
from service.platform.bodylimit import whole_body
from service.platform.db import get_session
from service.platform.errors import InvalidInput, Malformed, NotFound
from service.platform.i18n import N_

API_VERSION = "v1"


async def read_json(request: Request) -> Any:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise InvalidInput(N_("Send JSON (Content-Type: application/json)."),
                           code="wrong_content_type", status=415)
    body = await request.body()
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InvalidInput(N_("The request is not valid JSON."), code="malformed_json") from None


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _proof(request: Request, difficulty: int | None = None) -> pow.ProofOfWork:
    settings = request.app.state.settings
    return pow.ProofOfWork(request.app.state.secret_key,
                           settings.pow_difficulty if difficulty is None else difficulty)


def upload_difficulty(request: Request, declared_bytes: int) -> int:
    settings = request.app.state.settings
    return pow.upload_difficulty(settings.pow_difficulty, settings.pow_free_bytes,
                                 declared_bytes)


def spend_stamp(request: Request, stamp: Any, difficulty: int | None = None) -> None:
    state = request.app.state
    degraded.spend_stamp(state.database, get_session(request), _proof(request, difficulty),
                         state.held_stamps, stamp,
                         granularity_seconds=state.settings.time_granularity_seconds)


# ---------------------------------------------------------------------------- discovery


async def channels(request: Request) -> Response:
    session = get_session(request)
    settings = request.app.state.settings
    installation = get_installation(session)
    if installation is None:
        return JSONResponse({"installation": None, "channels": []})
    listed = []
    for channel in intake.list_open_channels(session):
        keys = intake.channel_keys(session, channel, v2_only=settings.require_v2)
        listed.append({
            "id": channel.slug, "kind": channel.kind,
            "name_zh": channel.name_zh, "name_en": channel.name_en,
            "recipients": [intake.recipient_info(r) for r in keys.recipients],
            "fingerprint": keys.fingerprint.hex(),
        })
    return JSONResponse({
        "protocol": API_VERSION,
        "suite": crypto.SUITE,
        "suites": list(crypto.SUITES),
        # Every case-key slot must be v2 (PROTOCOL 17.7): a client without the hybrid stops.
        "require_v2": settings.require_v2,
        "installation": {
            "salt": crypto.b64u_encode(installation.salt),
            "receipt_iterations": settings.receipt_iterations,
        },
        "limits": {"max_file_bytes": settings.max_file_bytes, "max_files": settings.max_files,
                   "chunk_size": crypto.CHUNK_SIZE, "inline_bytes": settings.max_inline_bytes,
                   "batch_chunks": intake.BATCH_CHUNKS},
        "pow_difficulty": settings.pow_difficulty,
        "pow_free_bytes": settings.pow_free_bytes,
        "quotas": {"case_bytes": settings.case_quota_bytes,
                   "case_message_bytes": settings.case_quota_message_bytes,
                   "case_items": settings.case_quota_items,
                   "followup_items": settings.followup_quota_items,
                   "followup_bytes": settings.followup_quota_bytes},
        "channels": listed,
    })


async def pow_challenge(request: Request) -> Response:
    # ?bytes=N: a challenge priced for an upload of N stored bytes (see upload_difficulty).
    raw = request.query_params.get("bytes", "0")
    if not raw.isdigit() or len(raw) > 13:
        raise Malformed("bytes")
    return JSONResponse(_proof(request, upload_difficulty(request, int(raw))).issue())


# ---------------------------------------------------------------------------- submissions


PARSED = "chuishao.envelope"


async def prepare_submission(request: Request) -> None:
    """Before the database gate: the envelope read and checked, so the gate is held for the
    database work alone (while one report commits, the next is parsed)."""
    data = await read_json(request)
    request.scope[PARSED] = (data, intake.parse_envelope(data, request.app.state.settings))


async def create_submission(request: Request) -> Response:
    settings = request.app.state.settings
    data, envelope = request.scope[PARSED]  # the route's prepare step read it
    difficulty = upload_difficulty(request, intake.declared_bytes(envelope))

    def store() -> tuple[Any, str]:
        spend_stamp(request, data.get("pow"), difficulty)
        return intake.create_submission(get_session(request), settings, envelope)

    if request.app.state.database.dialect == "sqlite":
        # One writer at a time behind the gate: a thread would overlap nothing, only add
        # two hand-offs.
        case, token = store()
    else:
        # Off the event loop: on PostgreSQL each statement waits for the server, and on the
        # loop every other report would wait with it (the gate lets several in at once).
        case, token = await anyio.to_thread.run_sync(store)
    return JSONResponse({"case_id": case.id, "upload_token": token, "ready": case.ready},
                        status_code=201)


def _submission(request: Request) -> Any:
    return intake.open_submission(get_session(request), request.path_params["case_id"],
                                  bearer(request))


async def submission_status(request: Request) -> Response:
    session = get_session(request)
    case = _submission(request)
    files = []
    for file in intake.files_of(session, case):
        files.append({"id": file.id, "chunk_count": file.chunk_count,
                      "received": intake.received_chunks(session, file)})
    return JSONResponse({"case_id": case.id, "ready": case.ready, "files": files})


async def put_submission_chunk(request: Request) -> Response:
    session = get_session(request)
    case = _submission(request)
    file = intake.find_file(session, case, request.path_params["file_id"])
    intake.store_chunk(session, file, _index(request), await request.body())
    return Response(status_code=204)


async def put_submission_batch(request: Request) -> Response:
    session = get_session(request)
    case = _submission(request)
    file = intake.find_file(session, case, request.path_params["file_id"])
    return await _store_batch(request, file)


async def _store_batch(request: Request, file: Any) -> Response:
    first, count = _index(request, "first"), _index(request, "count")
    # Off the loop: writing 4 MiB takes long enough to stall every other request's body.
    await offload.run("chunks", intake.store_batch, get_session(request), file, first, count,
                      await whole_body(request))
    # Sent after the commit (service.platform.db): these chunks are durable.
    return JSONResponse({"id": file.id, "first": first, "count": count})


async def finish_submission(request: Request) -> Response:
    case = _submission(request)
    intake.finish_submission(get_session(request), request.app.state.settings, case)
    return JSONResponse({"case_id": case.id, "ready": True})


async def discard_submission(request: Request) -> Response:
    case = _submission(request)
    intake.discard_case_data(get_session(request), case.id)
    return Response(status_code=204)


def _index(request: Request, name: str = "index") -> int:
    raw = request.path_params[name]
    if not raw.isdigit() or len(raw) > 10:
        raise Malformed("chunk index")
    return int(raw)


# ---------------------------------------------------------------------------- follow-up


async def followup_session(request: Request) -> Response:
    data = await read_json(request)
    if not isinstance(data, dict):
        raise InvalidInput(N_("The request is not valid JSON."), code="malformed_json")
    _spend_stamp_for_reading(request, data.get("pow"))
    secret = data.get("lookup_secret")
    if not isinstance(secret, str) or len(secret) > 64:
        raise followup.ReceiptUnknown()
    try:
        raw = crypto.b64u_decode(secret)
    except ValueError:
        raise followup.ReceiptUnknown() from None
    case = followup.find_case_by_secret(get_session(request), raw)
    token = followup.issue_token(request.app.state.secret_key, case.id)
    return JSONResponse({"token": token,
                         "expires_in": request.app.state.settings.followup_minutes * 60})


def _spend_stamp_for_reading(request: Request, stamp: Any) -> None:
    """Opening a session only reads: its stamp must not make it fail on a full disk."""
    if not isinstance(stamp, str):
        raise pow.PowInvalid()
    digest, expires_at = _proof(request).verify(stamp)
    state = request.app.state
    degraded.spend_for_reading(get_session(request), state.held_stamps, state.held_sessions,
                               state.storage, digest, expires_at)


def _followup_case(request: Request) -> Any:
    settings = request.app.state.settings
    return followup.case_from_token(get_session(request), request.app.state.secret_key,
                                    bearer(request), settings.followup_minutes * 60)


async def followup_feed(request: Request) -> Response:
    case = _followup_case(request)
    return JSONResponse(followup.feed_json(get_session(request), request.app.state.settings,
                                           case))


async def followup_reply(request: Request) -> Response:
    case = _followup_case(request)
    data = await read_json(request)
    settings = request.app.state.settings
    item = followup.add_reply(get_session(request), settings, case, data)
    quota.charge_session(get_session(request), settings, bearer(request) or "", items=1,
                         nbytes=len(item.blob))
    return JSONResponse({"id": item.id}, status_code=201)


def _declared_file_bytes(data: Any) -> int:
    raw = data.get("file") if isinstance(data, dict) else None
    size = raw.get("stored_size") if isinstance(raw, dict) else None
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else 0


async def followup_new_file(request: Request) -> Response:
    case = _followup_case(request)
    data = await read_json(request)
    settings = request.app.state.settings
    declared = _declared_file_bytes(data)
    if declared > settings.pow_free_bytes:
        # Within the free allowance the session's quota is enough; a bigger file pays.
        spend_stamp(request, data.get("pow"), upload_difficulty(request, declared))
    file = followup.add_file(get_session(request), settings, case, data)
    quota.charge_session(get_session(request), settings, bearer(request) or "", items=1,
                         nbytes=file.stored_size)
    return JSONResponse({"id": file.id}, status_code=201)


def _reporter_upload(request: Request) -> Any:
    """A file the reporter added to the follow-up token's case (a reviewer's is not found)."""
    session = get_session(request)
    case = _followup_case(request)
    file = intake.find_file(session, case, request.path_params["file_id"])
    if file.author != "reporter":
        raise NotFound()
    return file


async def followup_put_chunk(request: Request) -> Response:
    file = _reporter_upload(request)
    intake.store_chunk(get_session(request), file, _index(request), await request.body())
    return Response(status_code=204)


async def followup_put_batch(request: Request) -> Response:
    return await _store_batch(request, _reporter_upload(request))


async def followup_file_status(request: Request) -> Response:
    file = _reporter_upload(request)
    received = [] if file.complete else intake.received_chunks(get_session(request), file)
    return JSONResponse({"id": file.id, "chunk_count": file.chunk_count,
                         "complete": file.complete, "received": received})


async def followup_finish_file(request: Request) -> Response:
    session = get_session(request)
    case = _followup_case(request)
    file = intake.find_file(session, case, request.path_params["file_id"])
    if file.author != "reporter" or file.complete:
        raise NotFound()
    intake.complete_file(session, file)
    followup.note_reporter_activity(session, request.app.state.settings, case)
    return JSONResponse({"id": file.id, "complete": True})


async def followup_rewards(request: Request) -> Response:

    case = _followup_case(request)
    return JSONResponse({"rewards": reward_claims.reporter_rewards(get_session(request), case)})


async def followup_claim(request: Request) -> Response:

    case = _followup_case(request)
    data = await read_json(request)
    record = reward_claims.register_claim(get_session(request), request.app.state.settings, case,
                                          request.path_params["reward_id"], data)
    return JSONResponse({"id": record.id, "status": "claimed"}, status_code=201)


async def followup_get_chunk(request: Request) -> Response:
    session = get_session(request)
    case = _followup_case(request)
    file = intake.find_file(session, case, request.path_params["file_id"])
    if not file.complete or file.author != "reporter":
        raise NotFound()
    data = intake.read_chunk(session, file, _index(request))
    return Response(data, media_type="application/octet-stream")
