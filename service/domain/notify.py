"""Staff notifications that say nothing about the report: "there is something for you in the
console", a link, and counts.

An event writes one outbox row per person, in its own transaction (``enqueue``), holding only
the kind of event. A worker (``deliver_once``; started by the app's lifespan, or
``chuishao notify run-once``) schedules new rows (a person's daily digest, the optional random
delay), takes due rows with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite has one writer),
leases them, sends one message per person, and marks them sent; a failure is retried with
exponential backoff, and shown to administrators when it gives up.

Delivery is at least once: a worker killed after the mail server accepted a message and before
the row was marked sent leaves the row leased; when the lease ends another worker sends it
again (same Message-ID, so a mail system that deduplicates drops the second). Nothing is lost.

Longer than 500 lines because the outbox, its schedule and both deliveries (mail and
webhook) keep one promise, that a notification says nothing; they are read together.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import json
import logging
import random
import re
import smtplib
import ssl
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr
from typing import Any

import anyio
import anyio.to_thread
from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from service.domain.models import Case, KeySlot, User, table_of, utcnow
from service.domain.models.notify import (
    NotifyDefaults,
    NotifyOutbox,
    NotifyPreference,
    NotifyWebhook,
)
from service.platform.db import IMMEDIATE, Database
from service.platform.errors import InvalidInput, NotFound
from service.platform.i18n import N_, Catalogs
from service.platform.settings import Settings

log = logging.getLogger("chuishao.notify")

KINDS = ("new_case", "reporter_activity", "reward_approval", "claim_to_pay",
         "deadline_soon", "deadline_passed")
# Told to every administrator who can be reached, whatever kinds they chose: a disk about to
# fill is the installation's alarm, not a piece of someone's work.
ALARMS = ("storage_low",)
# One line per kind in a message; the count is the only variable part.
LINES = {
    "new_case": N_("New reports: {count}"),
    "reporter_activity": N_("Reporters' replies or new evidence: {count}"),
    "reward_approval": N_("Rewards waiting for approval: {count}"),
    "claim_to_pay": N_("Reward claims to pay: {count}"),
    "deadline_soon": N_("Deadlines approaching: {count}"),
    "deadline_passed": N_("Deadlines passed: {count}"),
    "storage_low": N_("Free space on the server is below the warning threshold: see "
                      "Administration, Storage"),
}
LABELS = {
    "new_case": N_("A new report on a channel I receive"),
    "reporter_activity": N_("A reporter's reply or new evidence on my cases"),
    "reward_approval": N_("A reward waiting for my approval"),
    "claim_to_pay": N_("A reward claim to pay"),
    "deadline_soon": N_("A deadline approaching"),
    "deadline_passed": N_("A deadline passed"),
}
WEBHOOK_KINDS = ("wecom", "dingtalk", "feishu")
VIAS = ("none", "email", "webhook")
BATCH = 200
ERROR_CHARS = 300


@functools.lru_cache(maxsize=1)
def _catalogs() -> Catalogs:
    return Catalogs.load()


# ---------------------------------------------------------------------------- preferences


def defaults(session: Session) -> NotifyDefaults:
    """The installation's defaults; every kind, no digest, until an administrator saves them
    (not stored by reading: pages that only show them write nothing)."""
    return session.get(NotifyDefaults, 1) or NotifyDefaults(id=1, kinds=" ".join(KINDS),
                                                            digest=False)


def preference(session: Session, user: User) -> NotifyPreference:
    """The person's row (not stored until they save it)."""
    return session.get(NotifyPreference, user.id) or NotifyPreference(
        user_id=user.id, via="none", email="", webhook_id=None, kinds=None, digest=None,
        language="")


def wanted_kinds(session: Session, pref: NotifyPreference | Any,
                 base: NotifyDefaults | None = None) -> set[str]:
    """``pref``: a NotifyPreference or a row of its columns (``enqueue`` reads those)."""
    chosen = pref.kinds if pref.kinds is not None else (base or defaults(session)).kinds
    return set(chosen.split()) & set(KINDS)


def wants_digest(session: Session, pref: NotifyPreference,
                 base: NotifyDefaults | None = None) -> bool:
    if pref.digest is not None:
        return bool(pref.digest)
    return bool((base or defaults(session)).digest)


def reachable(pref: NotifyPreference | Any) -> bool:
    return (pref.via == "email" and bool(pref.email)) or (
        pref.via == "webhook" and pref.webhook_id is not None)


# ---------------------------------------------------------------------------- the outbox


def enqueue(session: Session, kind: str, user_ids: Iterable[int | None], *,
            not_before: dt.datetime, created_at: dt.datetime | None = None) -> int:
    """One row per person who wants this kind and can be reached, in the caller's
    transaction. ``not_before``: a reporter-caused event passes the end of its time bucket,
    so no message dates it more finely than the database does. Returns rows written."""
    assert kind in KINDS or kind in ALARMS
    ids = sorted({i for i in user_ids if i})
    if not ids:
        return 0
    # One query for the people and their choices, as plain columns, and one insert: this
    # runs inside intake's transaction, the hot path.
    prefs = session.connection().execute(_PREFERENCES, {"ids": ids}).all()
    base: NotifyDefaults | None = None  # read once, and only if someone follows the defaults
    rows = []
    for pref in prefs:
        if not reachable(pref):
            continue
        if kind in KINDS:
            if pref.kinds is None and base is None:
                base = defaults(session)  # held: the identity map keeps it only weakly
            if kind not in wanted_kinds(session, pref, base):
                continue
        rows.append({"user_id": pref.user_id, "kind": kind, "state": "new",
                     "created_at": created_at or not_before, "due_at": not_before,
                     "attempts": 0, "via": "", "last_error": ""})
    if rows:
        session.connection().execute(_INSERT_OUTBOX, rows)
    return len(rows)


# Built once (enqueue runs inside intake's transaction, the hot path).
_prefs, _users = table_of(NotifyPreference), table_of(User)
_PREFERENCES = (
    select(_prefs.c.user_id, _prefs.c.via, _prefs.c.email, _prefs.c.webhook_id, _prefs.c.kinds,
           _prefs.c.digest)
    .join(_users, _users.c.id == _prefs.c.user_id)
    .where(_prefs.c.user_id.in_(bindparam("ids", expanding=True)), _users.c.active.is_(True))
    .order_by(_prefs.c.user_id))
_INSERT_OUTBOX = insert(table_of(NotifyOutbox))


def _case_readers(session: Session, case_id: str) -> list[int | None]:
    """Who received the case: the reviewers holding one of its key slots."""
    return list(session.scalars(select(KeySlot.user_id).where(
        KeySlot.case_id == case_id, KeySlot.holder == "reviewer", KeySlot.purpose == "case")))


def _after_bucket(settings: Settings, bucket_start: dt.datetime) -> dt.datetime:
    return bucket_start + dt.timedelta(seconds=settings.time_granularity_seconds)


def new_case(session: Session, settings: Settings, case: Case, bucket_start: dt.datetime,
             readers: Iterable[int | None] | None = None) -> int:
    """A case became ready: to the reviewers it was sealed to, after its time bucket.
    ``readers``: those reviewers when the caller has just sealed to them (intake's hot path
    saves the query)."""
    return enqueue(session, "new_case",
                   _case_readers(session, case.id) if readers is None else readers,
                   not_before=_after_bucket(settings, bucket_start), created_at=bucket_start)


def reporter_activity(session: Session, settings: Settings, case: Case,
                      bucket_start: dt.datetime) -> int:
    """A reply or new evidence: to the assignee and the reviewers who received the case."""
    return enqueue(session, "reporter_activity",
                   [case.assigned_to, *_case_readers(session, case.id)],
                   not_before=_after_bucket(settings, bucket_start), created_at=bucket_start)


def storage_low(session: Session, now: dt.datetime) -> int:
    """Free space fell below the warning threshold: to the administrators, at most once a
    day, however many instances or restarts notice it."""
    told = session.scalar(select(NotifyOutbox.id).where(
        NotifyOutbox.kind == "storage_low",
        NotifyOutbox.created_at > now - dt.timedelta(days=1)).limit(1))
    if told is not None:
        return 0
    admins = [user.id for user in session.scalars(select(User).where(User.active.is_(True)))
              if user.has_role("admin")]
    return enqueue(session, "storage_low", admins, not_before=now, created_at=now)


def next_digest(settings: Settings, after: dt.datetime) -> dt.datetime:
    moment = after.replace(hour=settings.notify_digest_hour, minute=0, second=0, microsecond=0)
    return moment if moment >= after else moment + dt.timedelta(days=1)


def _for_update(session: Session, statement):  # type: ignore[no-untyped-def]
    # SQLite has no row locks; its writers already take turns (BEGIN IMMEDIATE).
    if session.get_bind().dialect.name == "postgresql":
        return statement.with_for_update(skip_locked=True)
    return statement


def schedule(session: Session, settings: Settings, now: dt.datetime) -> int:
    """Give new rows their time: the person's next digest, or now plus the random delay."""
    rows = session.execute(_for_update(session, select(
        NotifyOutbox.id, NotifyOutbox.user_id, NotifyOutbox.due_at).where(
        NotifyOutbox.state == "new").order_by(NotifyOutbox.id).limit(BATCH * 5))).all()
    digest: dict[int, bool] = {}
    standard = defaults(session) if rows else None
    changes = []
    for row_id, user_id, due_at in rows:
        if user_id not in digest:
            pref = session.get(NotifyPreference, user_id)
            digest[user_id] = pref is not None and wants_digest(session, pref, standard)
        base = max(due_at, now)
        if digest[user_id]:
            due = next_digest(settings, base)
        else:
            delay = random.SystemRandom().uniform(0, settings.notify_max_delay_seconds)
            due = base + dt.timedelta(seconds=delay)
        changes.append({"id": row_id, "state": "pending", "due_at": due})
    if changes:
        # One executemany, not one statement per row.
        session.execute(update(NotifyOutbox), changes)
    return len(rows)


@dataclass(frozen=True)
class Batch:
    user_id: int
    row_ids: tuple[int, ...]
    counts: dict[str, int]
    attempt: int


def claim(session: Session, settings: Settings, now: dt.datetime,
          limit: int = BATCH) -> list[Batch]:
    """Take due rows (and rows whose lease ran out: their worker died), lease them."""
    rows = session.execute(_for_update(session, select(
        NotifyOutbox.id, NotifyOutbox.user_id, NotifyOutbox.kind, NotifyOutbox.attempts,
        NotifyOutbox.state, NotifyOutbox.lease_until).where(
        or_((NotifyOutbox.state == "pending") & (NotifyOutbox.due_at <= now),
            (NotifyOutbox.state == "sending") & (NotifyOutbox.lease_until < now)))
        .order_by(NotifyOutbox.user_id, NotifyOutbox.id).limit(limit))).all()
    if not rows:
        return []
    lease = now + dt.timedelta(seconds=settings.notify_lease_seconds)
    session.execute(update(NotifyOutbox).where(NotifyOutbox.id.in_([r.id for r in rows]))
                    .values(state="sending", lease_until=lease,
                            attempts=NotifyOutbox.attempts + 1)
                    .execution_options(synchronize_session=False))
    # A message whose worker died is sent again as it was (same rows, so same Message-ID),
    # not merged with rows that came due since: its rows shared one lease.
    grouped: dict[tuple[int, dt.datetime | None], list[Any]] = {}
    for row in rows:
        taken = row.lease_until if row.state == "sending" else None
        grouped.setdefault((row.user_id, taken), []).append(row)
    return [Batch(user_id, tuple(r.id for r in group), dict(Counter(r.kind for r in group)),
                  max(r.attempts for r in group) + 1)
            for (user_id, _), group in grouped.items()]


# ---------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class Message:
    subject: str
    text: str


def compose(settings: Settings, language: str, counts: dict[str, int]) -> Message:
    """Only that there is something, how much of each kind, and where to look."""
    _ = _catalogs().gettext(language if language in ("zh_CN", "en")
                            else settings.default_language)
    lines = [_("There is something for you in the Chuishao console.")]
    lines += [_(LINES[kind], count=counts[kind]) for kind in (*KINDS, *ALARMS)
              if counts.get(kind)]
    lines += ["", _("Sign in to see it: {link}", link=settings.base_url.rstrip("/") + "/console"),
              "", _("This message says nothing about any report, on purpose.")]
    return Message(_("Chuishao: something needs you in the console"), "\n".join(lines))


class DeliveryError(Exception):
    """A send failed; the text (no message content) is kept for administrators."""


def send_email(settings: Settings, to: str, message: Message, message_id: str) -> None:
    if not settings.smtp_host:
        raise DeliveryError("e-mail is not configured (CHUISHAO_SMTP_HOST)")
    if settings.smtp_username and settings.smtp_security == "none":
        raise DeliveryError("refusing to send the SMTP password without TLS "
                            "(CHUISHAO_SMTP_SECURITY=none)")
    mail = EmailMessage()
    mail["From"] = settings.smtp_from or formataddr(("Chuishao", "chuishao@localhost"))
    mail["To"] = to
    mail["Subject"] = message.subject
    mail["Message-ID"] = message_id
    mail.set_content(message.text)
    context = ssl.create_default_context(cafile=settings.smtp_ca_file or None)
    timeout = settings.smtp_timeout_seconds
    try:
        client: smtplib.SMTP
        if settings.smtp_security == "tls":
            client = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port, timeout=timeout,
                                      context=context)
        else:
            client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
        with client:
            if settings.smtp_security == "starttls":
                client.starttls(context=context)
            if settings.smtp_username:
                client.login(settings.smtp_username, str(settings.smtp_password))
            client.send_message(mail)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"SMTP: {type(exc).__name__}: {exc}") from exc


def webhook_request(hook: NotifyWebhook, message: Message,
                    now: float | None = None) -> tuple[str, bytes]:
    """URL and JSON body for a group robot, signed where the platform signs."""
    text = message.subject + "\n" + message.text
    url = hook.url
    stamp = int(now if now is not None else time.time())
    body: dict[str, object]
    if hook.kind == "dingtalk":
        body = {"msgtype": "text", "text": {"content": text}}
        if hook.secret:
            # DingTalk: HMAC-SHA256 keyed with the secret over "timestamp_ms\nsecret".
            millis = str(stamp * 1000)
            digest = hmac.new(hook.secret.encode(), f"{millis}\n{hook.secret}".encode(),
                              hashlib.sha256).digest()
            sign = urllib.parse.quote_plus(base64.b64encode(digest).decode())
            url += ("&" if "?" in url else "?") + f"timestamp={millis}&sign={sign}"
    elif hook.kind == "feishu":
        body = {"msg_type": "text", "content": {"text": text}}
        if hook.secret:
            # Feishu: HMAC-SHA256 keyed with "timestamp\nsecret" over nothing.
            digest = hmac.new(f"{stamp}\n{hook.secret}".encode(), b"", hashlib.sha256).digest()
            body = {"timestamp": str(stamp), "sign": base64.b64encode(digest).decode(), **body}
    else:  # wecom: the key is part of the URL, no signature
        body = {"msgtype": "text", "text": {"content": text}}
    return url, json.dumps(body, ensure_ascii=False).encode()


def send_webhook(settings: Settings, hook: NotifyWebhook, message: Message) -> None:
    url, body = webhook_request(hook, message)
    if not url.startswith(("https://", "http://")):
        raise DeliveryError("webhook address must start with https://")
    request = urllib.request.Request(url, data=body, method="POST",  # noqa: S310 - checked
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=settings.smtp_timeout_seconds) as answer:  # noqa: S310
            reply = answer.read(4096)
    except OSError as exc:
        raise DeliveryError(f"webhook: {type(exc).__name__}: {exc}") from exc
    # The robots answer 200 with an error code in JSON when they refuse (bad signature).
    try:
        parsed = json.loads(reply or b"{}")
    except ValueError:
        return
    code = parsed.get("errcode", parsed.get("code", 0)) if isinstance(parsed, dict) else 0
    if code not in (0, None):
        raise DeliveryError(f"webhook refused: {str(parsed)[:200]}")


def message_id(settings: Settings, batch: Batch) -> str:
    # Stable for the same rows, so a resend after a crash carries the same Message-ID (not
    # make_msgid: it adds the time and a random number). The address keeps two
    # installations' row numbers apart.
    rows = ",".join(map(str, batch.row_ids))
    digest = hashlib.sha256(f"{settings.base_url}\n{rows}".encode()).hexdigest()[:32]
    return f"<{digest}@chuishao.invalid>"


def deliver(settings: Settings, pref: NotifyPreference | None, hook: NotifyWebhook | None,
            batch: Batch) -> str:
    """Send one person's message; returns how (email, webhook)."""
    if pref is None or not reachable(pref):
        raise DeliveryError("no address chosen")
    message = compose(settings, pref.language, batch.counts)
    if pref.via == "email":
        send_email(settings, pref.email, message, message_id(settings, batch))
        return "email"
    if hook is None:
        raise DeliveryError("the chosen webhook was removed")
    send_webhook(settings, hook, message)
    return "webhook"


def _finish(database: Database, settings: Settings, batch: Batch, via: str,
            error: str | None, now: dt.datetime) -> None:
    with database.session() as session:
        session.connection(execution_options={IMMEDIATE: True})
        if error is None:
            session.execute(update(NotifyOutbox).where(
                NotifyOutbox.id.in_(batch.row_ids), NotifyOutbox.state == "sending")
                .values(state="sent", sent_at=now, lease_until=None, via=via, last_error="")
                .execution_options(synchronize_session=False))
            return
        for row in session.scalars(select(NotifyOutbox).where(
                NotifyOutbox.id.in_(batch.row_ids), NotifyOutbox.state == "sending")):
            row.lease_until, row.via = None, via
            if error == "dropped":
                row.state, row.last_error = "dropped", "account inactive"
            elif row.attempts >= settings.notify_max_attempts:
                row.state, row.last_error = "failed", error[:ERROR_CHARS]
            else:
                wait = settings.notify_backoff_seconds * 2 ** (row.attempts - 1)
                row.state, row.last_error = "pending", error[:ERROR_CHARS]
                row.due_at = now + dt.timedelta(seconds=min(wait, 86400))


def deliver_once(database: Database, settings: Settings, now: dt.datetime | None = None,
                 limit: int = BATCH) -> tuple[int, int]:
    """One round: (messages sent, messages failed). Blocking: run it in a thread."""
    now = now or utcnow()
    with database.session() as session:
        session.connection(execution_options={IMMEDIATE: True})
        schedule(session, settings, now)
        batches = claim(session, settings, now, limit)
        targets = {}
        for batch in batches:
            user = session.get(User, batch.user_id)
            pref = session.get(NotifyPreference, batch.user_id)
            hook = session.get(NotifyWebhook, pref.webhook_id) \
                if pref is not None and pref.webhook_id is not None else None
            if pref is not None:
                session.expunge(pref)
            if hook is not None:
                session.expunge(hook)
            targets[batch.user_id] = (bool(user and user.active), pref, hook)
    sent = failed = 0
    for batch in batches:
        active, pref, hook = targets[batch.user_id]
        if not active:
            _finish(database, settings, batch, "", "dropped", now)
            continue
        try:
            via = deliver(settings, pref, hook, batch)
        except DeliveryError as exc:
            failed += 1
            log.warning("notification to account %d failed: %s", batch.user_id, exc)
            _finish(database, settings, batch, pref.via if pref else "", str(exc), now)
        else:
            sent += 1
            _finish(database, settings, batch, via, None, now)
    return sent, failed


async def run_forever(database: Database, settings: Settings) -> None:
    while True:
        try:
            await anyio.to_thread.run_sync(deliver_once, database, settings)
        except Exception:
            # The rows stay in the outbox; the next round takes them again.
            log.exception("notification delivery failed")
        await anyio.sleep(settings.notify_seconds)


# ---------------------------------------------------------------------------- for the console

EMAIL = re.compile(r"[^@\s<>\"',;]{1,64}@[A-Za-z0-9.-]{1,189}\.[A-Za-z]{2,63}")
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def account_view(session: Session, user: User) -> dict[str, Any]:
    """What the account page's notification form needs."""
    pref = preference(session, user)
    return {"notify_pref": pref, "notify_kinds": wanted_kinds(session, pref),
            "notify_labels": LABELS, "notify_webhooks": webhooks(session),
            "notify_digest": wants_digest(session, pref)}


def save_preference(session: Session, user: User, form: Mapping[str, Any],
                    chosen_kinds: list[str]) -> NotifyPreference:
    """The person's own choice from the account page; bad input changes nothing."""
    via = str(form.get("via") or "none")
    email = str(form.get("email") or "").strip()
    if via not in VIAS:
        raise InvalidInput(N_("Choose how you want to be told."), code="notify_via")
    if (via == "email" or email) and not EMAIL.fullmatch(email):
        raise InvalidInput(N_("This is not an e-mail address."), code="notify_email")
    hook_id: int | None = None
    if via == "webhook":
        raw = str(form.get("webhook_id") or "")
        hook = session.get(NotifyWebhook, int(raw)) if raw.isdigit() else None
        if hook is None:
            raise InvalidInput(N_("Choose one of the group robots."), code="notify_webhook")
        hook_id = hook.id
    kinds = None if form.get("kinds_default") else " ".join(
        kind for kind in KINDS if kind in chosen_kinds)
    digest_choice = str(form.get("digest") or "default")
    if digest_choice not in ("default", "yes", "no"):
        raise InvalidInput(N_("Choose how you want to be told."), code="notify_digest")
    language = str(form.get("language") or "")
    if language not in ("", "zh_CN", "en"):
        raise InvalidInput(N_("Choose how you want to be told."), code="notify_language")
    pref = session.get(NotifyPreference, user.id)
    if pref is None:
        pref = NotifyPreference(user_id=user.id)
        session.add(pref)
    pref.via, pref.email, pref.webhook_id, pref.kinds = via, email, hook_id, kinds
    pref.digest = None if digest_choice == "default" else digest_choice == "yes"
    pref.language = language
    session.flush()
    return pref


def save_defaults(session: Session, chosen_kinds: list[str], digest: bool) -> NotifyDefaults:
    row = defaults(session)
    if row not in session:
        session.add(row)
    row.kinds = " ".join(kind for kind in KINDS if kind in chosen_kinds)
    row.digest = digest
    session.flush()
    return row


def webhooks(session: Session) -> list[NotifyWebhook]:
    return list(session.scalars(select(NotifyWebhook).order_by(NotifyWebhook.id)))


def add_webhook(session: Session, name: str, kind: str, url: str, secret: str) -> NotifyWebhook:
    name, url, secret = name.strip(), url.strip(), secret.strip()
    if not 1 <= len(name) <= 100:
        raise InvalidInput(N_("Give the group robot a name (at most 100 characters)."),
                           code="webhook_name")
    if kind not in WEBHOOK_KINDS:
        raise InvalidInput(N_("Choose WeCom, DingTalk or Feishu."), code="webhook_kind")
    parsed = urllib.parse.urlsplit(url)
    plain_loopback = parsed.scheme == "http" and parsed.netloc.split(":")[0] in LOOPBACK
    if len(url) > 500 or not parsed.netloc or (parsed.scheme != "https"
                                                and not plain_loopback):
        raise InvalidInput(N_("A group robot's address starts with https://."),
                           code="webhook_url")
    if len(secret) > 200:
        raise InvalidInput(N_("A field is too long (at most {limit} characters)."), limit=200)
    hook = NotifyWebhook(name=name, kind=kind, url=url, secret=secret, created_at=utcnow())
    session.add(hook)
    session.flush()
    return hook


def remove_webhook(session: Session, hook_id: int) -> None:
    hook = session.get(NotifyWebhook, hook_id)
    if hook is None:
        raise NotFound()
    for pref in session.scalars(select(NotifyPreference).where(
            NotifyPreference.webhook_id == hook_id)):
        pref.webhook_id, pref.via = None, "none"
    session.flush()
    session.delete(hook)
    session.flush()


def unreachable_users(session: Session) -> list[User]:
    """Active staff nobody can tell anything (no address chosen)."""
    reachable_ids = {p.user_id for p in session.scalars(select(NotifyPreference)) if reachable(p)}
    return [u for u in session.scalars(select(User).where(User.active.is_(True))
                                       .order_by(User.username)) if u.id not in reachable_ids]


def problems(session: Session, limit: int = 100) -> list[NotifyOutbox]:
    """Rows that failed for good or are being retried, newest first (administrators)."""
    return list(session.scalars(select(NotifyOutbox).where(
        or_(NotifyOutbox.state == "failed",
            (NotifyOutbox.state == "pending") & (NotifyOutbox.last_error != "")))
        .order_by(NotifyOutbox.created_at.desc(), NotifyOutbox.id).limit(limit)))


def retry(session: Session, row_id: int) -> bool:
    row = session.get(NotifyOutbox, row_id)
    if row is None or row.state != "failed":
        return False
    row.state, row.attempts, row.due_at = "pending", 0, utcnow()
    return True
