"""All configuration, read once from the environment into one frozen object.

Nothing else in the project reads ``os.environ``: tests build ``Settings`` directly.
Every setting is documented in docs/OPERATIONS.md.
"""

from __future__ import annotations

import os
import re
import secrets
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.datastructures import Secret

from service.platform import resources

PREFIX = "CHUISHAO_"


class SettingsError(ValueError):
    """A setting is present but malformed."""


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"not a boolean: {value!r}")


@dataclass(frozen=True)
class Settings:
    """Installation settings. Defaults suit ``make serve`` on one machine."""

    # var/ of the checkout when run from one, else var/ of the working directory.
    data_dir: Path = field(default_factory=lambda: (
        resources.CHECKOUT if resources.in_checkout() else Path.cwd()) / "var")
    database_url: str = ""
    # Signs cookies and one-time links; generated into data_dir on first start if unset.
    secret_key: Secret = field(default_factory=lambda: Secret(""))
    # Public origin used when printing links (invitations); never derived from a request.
    base_url: str = "http://127.0.0.1:8000"
    # The installation's Tor onion service, printed on posters when set (e.g. http://....onion).
    onion_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    # Cookies need HTTPS for __Host- and Secure; plain-HTTP development on loopback turns it off.
    secure_cookies: bool = False
    default_language: str = "zh_CN"
    log_level: str = "INFO"
    # Slow derivations. Production values are the protocol's; tests lower them.
    receipt_iterations: int = 600_000
    password_iterations: int = 600_000
    scrypt_n: int = 2**15
    # Request body ceilings (bytes): forms and JSON, and one uploaded file chunk.
    max_form_bytes: int = 2 * 1024 * 1024
    max_chunk_bytes: int = 65_536 + 16 + 1024
    # Files this small in total travel inside the submission itself: one request, one commit.
    max_inline_bytes: int = 1024 * 1024
    max_file_bytes: int = 200 * 1024 * 1024
    # The whole no-JavaScript form, attachments included. Its files stream to a sealed spool
    # on disk, each up to max_file_bytes as in the JavaScript path, except photos (JPEG, PNG),
    # which are cleaned whole in memory: at most max_nojs_held_bytes of them per form.
    max_nojs_bytes: int = 1024 * 1024 * 1024
    max_nojs_held_bytes: int = 50 * 1024 * 1024
    # Request bodies are read whole before a request takes a database gate. Bytes held for
    # all requests together (beyond: 503), seconds without a byte and the minimum average
    # rate (after ten seconds) before a body is cut off (408).
    max_held_body_bytes: int = 160 * 1024 * 1024
    body_idle_seconds: int = 15
    body_min_bytes_per_second: int = 8192
    # Stored times are coarsened to this many seconds so they cannot link a report to a visit.
    time_granularity_seconds: int = 3600
    invitation_hours: int = 72
    # Post-quantum sealing required (protocol suite v2, docs/PROTOCOL.md 17.7): intake refuses
    # an envelope with any v1 slot, and new reports are sealed only to reviewers who have an
    # X-Wing key (the console lists the others). Off: v1 slots are accepted and marked.
    require_v2: bool = False
    # Anonymous abuse control: leading zero bits a JavaScript client's stamp must have.
    pow_difficulty: int = 18
    # An upload's stamp costs one more bit (twice the work) each time its declared size
    # doubles beyond this many bytes, so the work grows with what it asks the server to keep.
    pow_free_bytes: int = 16 * 1024 * 1024
    # Quotas per case (the reporter's part: files, sealed messages, and how many items) and
    # per follow-up session (items and bytes it adds). Refusals name the limit.
    case_quota_bytes: int = 1024 * 1024 * 1024
    case_quota_message_bytes: int = 8 * 1024 * 1024
    case_quota_items: int = 300
    followup_quota_items: int = 20
    followup_quota_bytes: int = 256 * 1024 * 1024
    # Sign-in asks for a stamp of this difficulty, one bit more for each recent failure of
    # the claimed username beyond the free ones, at most login_pow_max_extra bits more.
    # Failures are forgotten after sign_in_failure_hours without a new one.
    login_pow_difficulty: int = 12
    login_pow_free_failures: int = 3
    login_pow_max_extra: int = 8
    sign_in_failure_hours: int = 24
    # An unfinished upload is discarded whole after this long.
    draft_hours: int = 6
    # Global (not per-visitor: we know no visitors) ceilings for the no-JavaScript path.
    nojs_submissions_per_hour: int = 120
    followup_minutes: int = 30
    max_files: int = 20
    # How often unfinished uploads and expired anti-abuse stamps are discarded (0: never;
    # then run `chuishao purge` from cron).
    purge_minutes: int = 15
    # Time limits (docs/RULES.md): days to decide acceptance, to verify after acceptance (one
    # extension allowed), and to feed the result back after verification.
    accept_days: int = 7
    verify_days: int = 60
    extension_days: int = 30
    feedback_days: int = 10
    # An approver may reopen a refused report (not accepted) within this many days.
    reopen_days: int = 30
    # The installation's time zone (tz database name): every time shown to people and every
    # calendar date (deadlines, acceptance, periods) is in it; stored times stay UTC.
    time_zone: str = "Asia/Shanghai"
    # Console sessions: idle and absolute lifetimes.
    session_idle_minutes: int = 30
    session_max_hours: int = 12
    # Free space on the data directory's filesystem: below warn_free_mb administrators are
    # warned (log, console); below min_free_mb /readyz answers "not ready".
    warn_free_mb: int = 2048
    min_free_mb: int = 200
    # Staff notifications (service/domain/notify.py, docs/OPERATIONS.md "Notifications"). The
    # worker looks at the outbox every notify_seconds (0: never; run `chuishao notify
    # run-once` from cron instead). No smtp_host: e-mail is off.
    notify_seconds: int = 30
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"  # starttls | tls | none (none only for a relay on loopback)
    smtp_username: str = ""
    smtp_password: Secret = field(default_factory=lambda: Secret(""))
    smtp_from: str = ""
    smtp_ca_file: str = ""
    smtp_timeout_seconds: int = 30
    notify_max_delay_seconds: int = 0
    notify_deadline_days: int = 3
    notify_digest_hour: int = 8
    notify_max_attempts: int = 10
    notify_backoff_seconds: int = 60
    notify_lease_seconds: int = 300

    @property
    def database(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'chuishao.sqlite3'}"

    @property
    def signing_key_path(self) -> Path:
        return self.data_dir / "signing.key"

    @property
    def secret_key_path(self) -> Path:
        return self.data_dir / "secret.key"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        casts: dict[str, Any] = {
            "data_dir": Path,
            "database_url": str,
            "secret_key": Secret,
            "base_url": str,
            "onion_url": str,
            "host": str,
            "port": int,
            "secure_cookies": _bool,
            "default_language": str,
            "log_level": str,
            "receipt_iterations": int,
            "password_iterations": int,
            "scrypt_n": int,
            "max_form_bytes": int,
            "max_chunk_bytes": int,
            "max_inline_bytes": int,
            "max_file_bytes": int,
            "max_nojs_bytes": int,
            "max_nojs_held_bytes": int,
            "max_held_body_bytes": int,
            "body_idle_seconds": int,
            "body_min_bytes_per_second": int,
            "time_granularity_seconds": int,
            "invitation_hours": int,
            "require_v2": _bool,
            "pow_difficulty": int,
            "pow_free_bytes": int,
            "case_quota_bytes": int,
            "case_quota_message_bytes": int,
            "case_quota_items": int,
            "followup_quota_items": int,
            "followup_quota_bytes": int,
            "login_pow_difficulty": int,
            "login_pow_free_failures": int,
            "login_pow_max_extra": int,
            "sign_in_failure_hours": int,
            "draft_hours": int,
            "nojs_submissions_per_hour": int,
            "followup_minutes": int,
            "max_files": int,
            "purge_minutes": int,
            "accept_days": int,
            "verify_days": int,
            "extension_days": int,
            "feedback_days": int,
            "reopen_days": int,
            "time_zone": str,
            "session_idle_minutes": int,
            "session_max_hours": int,
            "warn_free_mb": int,
            "min_free_mb": int,
            "notify_seconds": int,
            "smtp_host": str,
            "smtp_port": int,
            "smtp_security": str,
            "smtp_username": str,
            "smtp_password": Secret,
            "smtp_from": str,
            "smtp_ca_file": str,
            "smtp_timeout_seconds": int,
            "notify_max_delay_seconds": int,
            "notify_deadline_days": int,
            "notify_digest_hour": int,
            "notify_max_attempts": int,
            "notify_backoff_seconds": int,
            "notify_lease_seconds": int,
        }
        for name, cast in casts.items():
            raw = env.get(PREFIX + name.upper())
            if raw is None:
                continue
            try:
                values[name] = cast(raw)
            except (TypeError, ValueError) as exc:
                raise SettingsError(f"{PREFIX}{name.upper()}: {exc}") from exc
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.default_language not in {"zh_CN", "en"}:
            raise SettingsError("default_language must be zh_CN or en")
        if self.receipt_iterations < 1 or self.password_iterations < 1:
            raise SettingsError("iteration counts must be positive")
        if not 0 <= self.pow_difficulty <= 32:
            raise SettingsError("pow_difficulty must be between 0 and 32 bits")
        if not 0 <= self.login_pow_difficulty <= 32 or not 0 <= self.login_pow_max_extra <= 16:
            raise SettingsError("login_pow_difficulty must be 0 to 32 bits, "
                                "login_pow_max_extra 0 to 16")
        if min(self.pow_free_bytes, self.case_quota_bytes, self.case_quota_message_bytes,
               self.case_quota_items, self.followup_quota_items,
               self.followup_quota_bytes, self.sign_in_failure_hours) < 1:
            raise SettingsError("quotas, pow_free_bytes and sign_in_failure_hours must be "
                                "positive")
        if self.body_idle_seconds < 1 or self.body_min_bytes_per_second < 1:
            raise SettingsError("body_idle_seconds and body_min_bytes_per_second must be "
                                "positive")
        if self.max_held_body_bytes < max(self.max_nojs_held_bytes, self.max_form_bytes):
            raise SettingsError("max_held_body_bytes must hold at least one whole form")
        if self.reopen_days < 0:
            raise SettingsError("reopen_days must be 0 or more")
        try:
            zoneinfo.ZoneInfo(self.time_zone)
        except (ValueError, zoneinfo.ZoneInfoNotFoundError) as exc:
            raise SettingsError(f"time_zone: not a tz database name: {self.time_zone!r}") \
                from exc
        if self.time_granularity_seconds < 1:
            raise SettingsError("time_granularity_seconds must be positive")
        if not 0 <= self.min_free_mb <= self.warn_free_mb:
            raise SettingsError("min_free_mb must be between 0 and warn_free_mb")
        if self.onion_url and not re.fullmatch(r"https?://[a-z2-7]{56}\.onion/?", self.onion_url):
            raise SettingsError("onion_url must be http://<56 letters and digits>.onion")
        if self.smtp_security not in {"starttls", "tls", "none"}:
            raise SettingsError("smtp_security must be starttls, tls or none")
        if not 0 <= self.notify_digest_hour <= 23:
            raise SettingsError("notify_digest_hour must be between 0 and 23 (UTC)")
        if min(self.notify_max_attempts, self.notify_backoff_seconds,
               self.notify_lease_seconds, self.smtp_timeout_seconds) < 1 \
                or min(self.notify_seconds, self.notify_max_delay_seconds,
                       self.notify_deadline_days) < 0:
            raise SettingsError("notification attempts, backoff, lease and timeout must be "
                                "positive; interval, delay and deadline days not negative")


def resolve_secret_key(settings: Settings) -> str:
    """The signing secret: from settings, else from data_dir, created once with mode 0600."""
    if str(settings.secret_key):
        return str(settings.secret_key)
    path = settings.secret_key_path
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    with open(path, "x") as handle:
        path.chmod(0o600)
        handle.write(value)
    return value
