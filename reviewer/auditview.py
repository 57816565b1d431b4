"""The audit trail as an auditor reads it: each action as a sentence in the page's language,
details as labelled fields, filters, and the same rows as CSV or XLSX.

Read side only: how entries are written and chained is service/domain/audit.py. A code without a
sentence here is shown as the code itself (tests/reviewer/test_auditview.py lists every code
the console writes, so a new one without a sentence fails there first).
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from service.domain import rectification, rectification_facts, reward_states, sheets, workflow
from service.domain.labels import LIST_SEPARATOR, role_names
from service.domain.models import AuditEntry, Channel, User
from service.domain.reportform import CATEGORIES
from service.domain.rewards import format_yuan
from service.platform import localtime
from service.platform.errors import InvalidInput
from service.platform.i18n import N_

Translate = Callable[..., str]

SENTENCES: dict[str, str] = {
    # sign-in and accounts
    "login": N_("Signed in to the console"),
    "logout": N_("Signed out"),
    "csrf": N_("Sent a form that had expired or came from elsewhere"),
    "forbidden": N_("Opened a page their roles do not allow"),
    "password.change": N_("Changed their password"),
    "session.revoke": N_("Ended one of their sessions"),
    "session.revoke_all": N_("Ended all their other sessions"),
    "account.create": N_("Account created"),
    "account.register": N_("Set up their account from an invitation"),
    "account.totp": N_("Confirmed their authenticator app"),
    "account.add_pq": N_("Made their post-quantum (X-Wing) key in the browser"),
    # administration
    "admin.invite": N_("Made an invitation link"),
    "admin.roles": N_("Changed an account's roles"),
    "admin.deactivate": N_("Deactivated an account"),
    "admin.reactivate": N_("Reactivated an account"),
    "admin.scope.add": N_("Added a channel to an account's scope"),
    "admin.scope.remove": N_("Removed a channel from an account's scope"),
    "admin.recipient.add": N_("Made an account a recipient of a channel's reports"),
    "admin.recipient.remove": N_("Stopped an account receiving a channel's reports"),
    "admin.channel.add": N_("Added a reporting channel"),
    "admin.channel.deactivate": N_("Closed a reporting channel"),
    "admin.channel.reactivate": N_("Reopened a reporting channel"),
    "admin.public_board": N_("Changed the public rectification board"),
    # cases
    "case.open": N_("Opened a case"),
    "case.recover": N_("Recovered a case for a new key"),
    "recovery.add_pq": N_("Gave the recovery key its post-quantum (X-Wing) part"),
    "secret_key.adopt": N_("Made a replaced secret key the one every instance must use"),
    "case.grant": N_("Gave a reviewer access to a case"),
    "case.reslot": N_("Replaced a case's classical key slots by post-quantum ones"),
    "case.identity_viewed": N_("Read a reporter's identity"),
    "case.note": N_("Wrote an internal note"),
    "case.message": N_("Wrote to the reporter"),
    "case.first_valid_changed": N_("Changed the first valid report"),
    "case.accept": N_("Accepted a case"),
    "case.not_accept": N_("Refused to accept a case"),
    "case.reopen_refusal": N_("Reopened a refused case"),
    "case.start_verification": N_("Started verification"),
    "case.extend": N_("Extended a case's deadline"),
    "case.verify": N_("Recorded the verification result"),
    "case.open_rectification": N_("Started rectification"),
    "case.accept_rectification": N_("Accepted the rectification"),
    "case.reopen_rectification": N_("Reopened the rectification"),
    "case.close": N_("Closed a case"),
    "case.assign": N_("Assigned a case"),
    "case.grade": N_("Set a case's hazard grade"),
    "case.facts": N_("Changed a case's facts"),
    "case.link_duplicate": N_("Marked a case as a duplicate"),
    "case.decide_first_valid": N_("Decided the first valid report"),
    # rectification records
    "rectification.open": N_("Opened a rectification record"),
    "rectification.open_page": N_("Opened a rectification record's page"),
    "rectification.file": N_("Downloaded a rectification evidence file"),
    "rectification.edit": N_("Changed a rectification record's facts"),
    "rectification.decide": N_("Decided rectification measures"),
    "rectification.progress": N_("Recorded rectification progress"),
    "rectification.extend": N_("Extended a rectification deadline"),
    "rectification.explain_overdue": N_("Explained an overdue rectification"),
    "rectification.request_acceptance": N_("Asked for the acceptance check"),
    "rectification.accept": N_("Recorded the acceptance check"),
    "rectification.fixed_on_spot": N_("Recorded a hazard fixed on the spot"),
    "notify.defaults": N_("Changed the installation's notification defaults"),
    "notify.preferences": N_("Changed their own notification choices"),
    "notify.retry": N_("Retried a failed notification"),
    "notify.webhook.add": N_("Added a group robot for notifications"),
    "notify.webhook.remove": N_("Removed a group robot for notifications"),
    "rectification.write_off": N_("Wrote off a rectified hazard"),
    "rectification.publish": N_("Published a rectification on the public board"),
    "rectification.unpublish": N_("Took a rectification off the public board"),
    "rectification.link_case": N_("Linked a case to a rectification record"),
    "ledger.channel": N_("Opened a channel's hazard ledger"),
    "ledger.export": N_("Downloaded a hazard ledger"),
    # rewards
    "reward.open": N_("Opened a reward record"),
    "reward.preview": N_("Previewed a reward"),
    "reward.propose": N_("Proposed a reward"),
    "reward.approve": N_("Approved a reward"),
    "reward.reject": N_("Rejected a reward"),
    "reward.claimed": N_("The reporter claimed a reward"),
    "reward.claim_viewed": N_("Read a reward claim"),
    "reward.claims_recover": N_("Recovered reward claims for a new key"),
    "reward.code_verified": N_("Checked a claim code"),
    "reward.paid": N_("Recorded a reward payment"),
    "reward.ledger_viewed": N_("Opened the reward ledger"),
    "reward.policy_upload": N_("Uploaded a reward policy"),
    "reward.policy_preview": N_("Previewed a reward policy"),
    "reward.policy_activate": N_("Activated a reward policy"),
    "reward.policy_deactivate": N_("Deactivated a reward policy"),
    "export.rewards": N_("Started a reward export"),
    "export.completed": N_("A reward export was completed and signed"),
    "export.failed": N_("A reward export failed"),
    # the trail itself
    "audit.viewed": N_("Read the audit trail"),
    "audit.head_signed": N_("Downloaded a signed chain head"),
    "audit.exported": N_("Downloaded the audit trail"),
}

# The filter's groups: what an auditor asks for ("everything about rewards").
GROUPS = {
    "login": N_("Sign-in and accounts"), "admin.": N_("Administration"),
    "case.": N_("Cases"), "rectification.": N_("Rectification"),
    "reward.": N_("Rewards"), "export.": N_("Exports"), "audit.": N_("Audit trail"),
}

OUTCOMES = {"ok": N_("Done"), "refused": N_("Refused")}

FIELD_LABELS = {
    "from": N_("State before"), "to": N_("State after"), "version": N_("Version"),
    "case": N_("Case"),
    "cases": N_("Cases"), "code": N_("Reason"), "reason": N_("Reason"),
    "amount_fen": N_("Amount"), "roles": N_("Roles"), "username": N_("Account"),
    "channel_id": N_("Channel"), "key_id": N_("Key"), "format": N_("Format"),
    "xwing_key_id": N_("Post-quantum key"),
    "digest": N_("SHA-256"), "entry": N_("Entry"), "head": N_("Head"),
    "action": N_("Action"), "target": N_("Target"), "verify": N_("Chain verified"),
    "filters": N_("Filters"), "policy": N_("Policy"), "period": N_("Period"),
    "sessions_ended": N_("Sessions ended"), "recent_failures": N_("Recent failures"),
    "claimed_actor": N_("Name given"), "granted": N_("Given to"), "slug": N_("Short name"),
    "item": N_("Item"), "file": N_("File"), "slots": N_("Claim parts"),
    "sealed_on_server": N_("Sealed on the server"), "user_id": N_("Account number"),
    "public_board": N_("Public board"), "identity_required": N_("Identity required"),
    "purposes": N_("Purposes"), "stored_size": N_("Stored size"), "added": N_("Added"),
    "needs": N_("Needs"), "claims": N_("Claims"), "before": N_("Before"), "after": N_("After"),
    "grade": N_("Hazard grade"), "failed_before": N_("Failed before"),
    "scope": N_("May see the records of"), "result": N_("Told the reporter"),
    "result_code": N_("Verification result"), "reason_code": N_("Reason chosen"),
    "days": N_("Days"), "file_sha256": N_("SHA-256"), "records": N_("Records"),
    "bytes": N_("Bytes"),
    "receives": N_("Receives new reports"),
    "hours": N_("Valid for (hours)"), "note": N_("Note"), "via": N_("Made through"),
    "internal_key_created": N_("Internal key created"),
    # case facts, duplicates and the first valid report
    "enterprise": N_("Unit (enterprise)"), "location": N_("Location"),
    "category": N_("Category"), "criterion_id": N_("Major-hazard criterion (2023)"),
    "duplicate_of": N_("Same hazard as"), "refused_as": N_("Not accepted because"),
    "first": N_("First valid report"), "candidates": N_("Cases"), "why": N_("Reason"),
    "open": N_("Not decided"),
    # rectification records and rewards
    "date": N_("When"), "files": N_("Files"), "reference": N_("Reference"),
    "claim_due_at": N_("Claim by"),
}
# Keys whose meaning depends on what the entry is about.
_RECORD_LABELS = {"result": N_("Acceptance check")}

# Values that are codes: a state or status name is shown by its label. Records, rewards and
# cases share some names ("accepted"): an entry's action says whose state it is.
_STATE_WORDS: dict[str, str] = {**rectification_facts.STATE_LABELS, **workflow.STATUS_LABELS,
                                **reward_states.STATUS_LABELS}
_STATES_OF = {"rectification.": rectification_facts.STATE_LABELS,
              "reward.": reward_states.STATUS_LABELS, "case.": workflow.STATUS_LABELS}
_CATEGORIES = dict(CATEGORIES)
# Details that are moments stored as ISO text: shown as the page shows times.
_MOMENTS = frozenset({"claim_due_at"})


def _states(action: str) -> Mapping[str, str]:
    return next((labels for prefix, labels in _STATES_OF.items() if action.startswith(prefix)),
                _STATE_WORDS)

YES, NO = N_("Yes"), N_("No")
YUAN = N_("{amount} yuan")
SYSTEM = N_("The system")  # an entry no account made (housekeeping, a reporter's action)
PAGE = 100
MAX_EXPORT = 100_000


@dataclass(frozen=True)
class AuditFilters:
    actor: str = ""
    action: str = ""
    case: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None  # inclusive
    outcome: str = ""

    @classmethod
    def parse(cls, query: Mapping[str, Any]) -> AuditFilters:
        def get(name: str, limit: int) -> str:
            return str(query.get(name) or "").strip()[:limit]

        def day(name: str) -> dt.date | None:
            try:
                return dt.date.fromisoformat(get(name, 10)) if get(name, 10) else None
            except ValueError:
                raise InvalidInput(N_("Write dates as YYYY-MM-DD."), code="date") from None

        outcome = get("outcome", 10)
        return cls(actor=get("actor", 100), action=get("action", 64), case=get("case", 100),
                   date_from=day("from"), date_to=day("to"),
                   outcome=outcome if outcome in OUTCOMES else "")

    def as_dict(self) -> dict[str, str]:
        return {"actor": self.actor, "action": self.action, "case": self.case,
                "from": self.date_from.isoformat() if self.date_from else "",
                "to": self.date_to.isoformat() if self.date_to else "",
                "outcome": self.outcome}

    def query(self) -> Select[Any]:
        """Entries matching, newest first. Days are those the trail shows: in the
        installation's zone."""
        query = select(AuditEntry)
        if self.actor:
            query = query.where(AuditEntry.actor == self.actor)
        if self.action:
            query = query.where(AuditEntry.action.startswith(self.action, autoescape=True))
        if self.case:
            # A case's own entries, and those of records about it that name it as their
            # target's prefix (short references are the first characters of the id).
            query = query.where(or_(AuditEntry.target == self.case,
                                    AuditEntry.target.startswith(self.case, autoescape=True)))
        if self.outcome:
            query = query.where(AuditEntry.outcome == self.outcome)
        if self.date_from:
            query = query.where(AuditEntry.created_at >= _day_start(self.date_from))
        if self.date_to:
            query = query.where(AuditEntry.created_at
                                < _day_start(self.date_to + dt.timedelta(days=1)))
        return query.order_by(AuditEntry.id.desc())


def _day_start(day: dt.date) -> dt.datetime:
    return localtime.midnight(day)


def sentence(action: str, translate: Translate) -> str:
    known = SENTENCES.get(action)
    return translate(known) if known else action


def _value(key: str, value: Any, translate: Translate, action: str = "",
           channels: Mapping[int, str] | None = None) -> str:
    if key == "channel_id" and isinstance(value, int) and channels and value in channels:
        return channels[value]
    if isinstance(value, bool):
        return translate(YES) if value else translate(NO)
    if key == "amount_fen" and isinstance(value, int):
        return translate(YUAN, amount=format_yuan(value))
    if key == "roles":
        return role_names(value if isinstance(value, str | list) else str(value), translate)
    if key == "action" and isinstance(value, str) and value in SENTENCES:
        return translate(SENTENCES[value])
    if key == "action" and isinstance(value, str) and value in GROUPS:
        return translate(GROUPS[value])
    if key == "grade" and isinstance(value, str) and value in workflow.GRADES:
        return translate(workflow.GRADES[value])
    if key == "result_code" and isinstance(value, str) and value in workflow.RESULTS:
        return translate(workflow.RESULTS[value])
    if key in ("reason_code", "refused_as") and isinstance(value, str) \
            and value in workflow.NOT_ACCEPTED_REASONS:
        return translate(workflow.NOT_ACCEPTED_REASONS[value])
    if key == "result" and action.startswith("rectification.") \
            and isinstance(value, str) and value in rectification.RESULTS:
        return translate(rectification.RESULTS[value])
    if key in _MOMENTS and isinstance(value, str):
        try:
            return localtime.show(dt.datetime.fromisoformat(value))
        except ValueError:
            return value
    if key == "category" and isinstance(value, str) and value in _CATEGORIES:
        return translate(_CATEGORIES[value])
    if isinstance(value, str) and value in _states(action) and key in ("from", "to"):
        return translate(_states(action)[value])
    if isinstance(value, dict):
        return translate(LIST_SEPARATOR).join(
            f"{translate(FIELD_LABELS.get(k, k))}: {_value(k, v, translate, action, channels)}"
            for k, v in sorted(value.items()) if v not in (None, "", [], {}))
    if isinstance(value, list):
        return translate(LIST_SEPARATOR).join(_value(key, item, translate, action, channels)
                                              for item in value)
    if value is None:
        return "—"
    return str(value)


def _label(key: str, value: Any, action: str) -> str:
    if action.startswith("rectification.") and key in _RECORD_LABELS:
        return _RECORD_LABELS[key]
    if key in ("from", "to") and not (isinstance(value, str) and value in _states(action)):
        # Not a state (the first valid report moving from one case to another).
        return FIELD_LABELS["before" if key == "from" else "after"]
    return FIELD_LABELS.get(key, key)


def fields(details: Mapping[str, Any] | None, translate: Translate, action: str = "",
           channels: Mapping[int, str] | None = None) -> list[tuple[str, str]]:
    """The details as (label, value) pairs in the page's language, empty ones left out;
    ``action`` is the entry's, for the keys whose meaning depends on it; a channel by its
    name, not its row id."""
    return [(translate(_label(key, value, action)),
             _value(key, value, translate, action, channels))
            for key, value in sorted((details or {}).items())
            if value not in (None, "", [], {})]


@dataclass(frozen=True)
class Row:
    id: int
    created_at: dt.datetime
    actor: str
    actor_name: str
    action: str
    sentence: str
    target: str
    outcome: str
    outcome_label: str
    fields: list[tuple[str, str]]

    def details_text(self) -> str:
        return "; ".join(f"{label}: {value}" for label, value in self.fields)


def display_names(session: Session, usernames: set[str]) -> dict[str, str]:
    if not usernames:
        return {}
    found = session.execute(select(User.username, User.display_name)
                            .where(User.username.in_(usernames)))
    return {name: shown or name for name, shown in found}


def channel_names(session: Session, entries: list[AuditEntry]) -> dict[int, str]:
    wanted = {entry.details["channel_id"] for entry in entries
              if isinstance(entry.details, dict)
              and isinstance(entry.details.get("channel_id"), int)}
    if not wanted:
        return {}
    return {id_: f"{name} ({slug})" for id_, name, slug in session.execute(
        select(Channel.id, Channel.name_zh, Channel.slug).where(Channel.id.in_(wanted)))}


def rows(session: Session, entries: list[AuditEntry], translate: Translate) -> list[Row]:
    names = display_names(session, {entry.actor for entry in entries if entry.actor})
    channels = channel_names(session, entries)
    system = translate(SYSTEM)
    return [Row(id=entry.id, created_at=entry.created_at, actor=entry.actor,
                actor_name=names.get(entry.actor, entry.actor) or system,
                action=entry.action, sentence=sentence(entry.action, translate),
                target=entry.target, outcome=entry.outcome,
                outcome_label=translate(OUTCOMES.get(entry.outcome, entry.outcome)),
                fields=fields(entry.details, translate, entry.action, channels))
                for entry in entries]


def page(session: Session, filters: AuditFilters, before: int | None,
         translate: Translate) -> tuple[list[Row], int | None, int]:
    """One page of rows (newest first), the id to continue before, and how many match."""
    query = filters.query()
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    if before is not None:
        query = query.where(AuditEntry.id < before)
    entries = list(session.scalars(query.limit(PAGE + 1)))
    more = len(entries) > PAGE
    entries = entries[:PAGE]
    return rows(session, entries, translate), entries[-1].id if more and entries else None, total


def actors(session: Session) -> list[tuple[str, str]]:
    """(username, display name) of every account, for the filter."""
    return [(name, shown or name) for name, shown in session.execute(
        select(User.username, User.display_name).order_by(User.username))]


# ---------------------------------------------------------------------------- exports

FORMATS = {"csv": "text/csv; charset=utf-8",
           "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
HEADERS = (N_("Entry"), N_("Time ({zone})"), N_("Who"), N_("Account"), N_("Action"),
           N_("Target"), N_("Outcome"), N_("Details"), N_("Action code"))
_WIDTHS = (8, 20, 18, 16, 40, 34, 10, 60, 26)


def _headers(translate: Translate) -> list[str]:
    return [translate(header, zone=localtime.zone_label()) for header in HEADERS]


def _export_values(row: Row) -> list[Any]:
    return [row.id, localtime.local(row.created_at).replace(microsecond=0),
            row.actor_name, row.actor, row.sentence, row.target, row.outcome_label,
            row.details_text(), row.action]


def export_rows(session: Session, filters: AuditFilters,
                translate: Translate) -> Iterator[list[Any]]:
    last: int | None = None
    sent = 0
    while sent < MAX_EXPORT:
        query = filters.query()
        if last is not None:
            query = query.where(AuditEntry.id < last)
        entries = list(session.scalars(query.limit(1000)))
        if not entries:
            return
        for row in rows(session, entries, translate):
            yield _export_values(row)
        sent += len(entries)
        last = entries[-1].id


def _columns(translate: Translate) -> list[sheets.Column]:
    kinds = ("int", "datetime") + ("text",) * 7
    return [sheets.Column(translate(header, zone=localtime.zone_label()), width, kind,
                          wrap=index == 7)
            for index, (header, width, kind) in enumerate(zip(HEADERS, _WIDTHS, kinds,
                                                              strict=True))]


def as_csv(session: Session, filters: AuditFilters, translate: Translate) -> bytes:
    columns = _columns(translate)
    return b"".join(sheets.csv_chunks([c.header for c in columns],
                                      export_rows(session, filters, translate)))


def as_xlsx(session: Session, filters: AuditFilters, translate: Translate) -> bytes:
    columns = _columns(translate)
    with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
        sheets.write_xlsx(spool, translate(N_("Audit trail")), columns,
                          [c.header for c in columns], export_rows(session, filters, translate))
        spool.seek(0)
        return spool.read()
