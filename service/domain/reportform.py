"""The report form's fields: one definition for the page, the server seal and the browser.

Field values are cleaned (Unicode NFC, control characters removed, lengths bounded) before
anything is sealed; the same rules are applied by service/static/js/intake.js.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData, UploadFile

from service.platform.errors import InvalidInput
from service.platform.i18n import N_

CATEGORIES = (
    ("hazard", N_("Accident hazard (事故隐患)")),
    ("violation", N_("Illegal production or operation")),
    ("concealed_accident", N_("Concealed or falsely reported accident")),
    ("other", N_("Other safety problem")),
)
INSIDER = (("yes", N_("Yes, I work there")), ("no", N_("No")), ("", N_("I prefer not to say")))
LIMITS = {"unit": 200, "location": 300, "description": 20_000, "seen_at": 100,
          "name": 100, "contact": 200}


def clean_text(value: Any, limit: int) -> str:
    if not isinstance(value, str):
        return ""
    text = unicodedata.normalize("NFC", value)
    # Control characters (except newline and tab) and lone surrogates carry nothing a reader
    # needs and break downstream tools.
    text = "".join(ch for ch in text if ch in "\n\t" or (
        unicodedata.category(ch) not in ("Cc", "Cs", "Cf") or ch in "\u200d"))
    text = text.replace("\r\n", "\n").strip()
    if len(text) > limit:
        raise InvalidInput(N_("A field is too long (at most {limit} characters)."), limit=limit)
    return text


@dataclass(frozen=True)
class ReportInput:
    channel: str
    report: dict[str, Any]
    identity: dict[str, Any] | None


def parse_report(form: FormData, language: str) -> ReportInput:
    channel = clean_text(form.get("channel"), 64)
    if not channel:
        raise InvalidInput(N_("Choose a reporting line."))
    values = {name: clean_text(form.get(name), limit) for name, limit in LIMITS.items()}
    if not values["unit"]:
        raise InvalidInput(N_("Name the unit (enterprise) you are reporting."))
    if not values["description"]:
        raise InvalidInput(N_("Describe what you saw."))
    category = form.get("category")
    if category not in {key for key, _ in CATEGORIES}:
        raise InvalidInput(N_("Choose what kind of problem it is."))
    insider = form.get("insider", "")
    if insider not in {key for key, _ in INSIDER}:
        raise InvalidInput(N_("Some of what you entered is not valid."))
    report = {"v": 1, "unit": values["unit"], "location": values["location"],
              "category": category, "description": values["description"],
              "seen_at": values["seen_at"], "insider": insider, "language": language}
    identity = None
    if values["name"] or values["contact"]:
        identity = {"v": 1, "name": values["name"], "contact": values["contact"]}
    return ReportInput(channel, report, identity)


def uploaded_files(form: FormData) -> list[UploadFile]:
    return [value for value in form.getlist("files")
            if isinstance(value, UploadFile) and value.filename]


# ------------------------------------------------------------------ the server-sealing marker

# A server-sealed post is accepted only from a browser that really ran no script on the form
# (an input inside <noscript>, which a scripting browser parses as text and never submits) or
# whose script ran, found it cannot encrypt, and asked the reporter (a box the script adds).
# A page whose encryption script failed to load sends neither, and is refused.
SEALING_NOSCRIPT = "noscript"
SEALING_CHOSEN = "chosen"


class ScriptDidNotRun(InvalidInput):
    code = "script_failed"
    message = N_("Nothing was sent and nothing was kept. Your browser runs JavaScript, but this "
                 "page's encryption script did not load (it may have been blocked, or the "
                 "connection broke), so your report would have reached the server unencrypted. "
                 "Reload the page and send again. If this keeps happening, use an up-to-date "
                 "browser, or switch JavaScript off for this site: the server then encrypts "
                 "your report as soon as it arrives.")


def server_sealing(form: FormData) -> str:
    """How this browser came to send plaintext (``noscript`` or ``chosen``); else refused."""
    value = form.get("sealing")
    if value in (SEALING_NOSCRIPT, SEALING_CHOSEN):
        return str(value)
    raise ScriptDidNotRun()


def refill(form: FormData) -> dict[str, str]:
    """The text fields of a refused report, to put back into the form (never stored)."""
    values = {}
    for name, limit in LIMITS.items():
        value = form.get(name)
        # Beyond the limit too: text refused as too long must come back whole to be shortened.
        values[name] = value[:limit * 5] if isinstance(value, str) else ""
    for name in ("channel", "category", "insider", "keep_names", "unclean"):
        value = form.get(name)
        values[name] = value[:64] if isinstance(value, str) else ""
    return values


# ---------------------------------------------------------------------------------- file names

UNCLEAN_SEND = "send"
UNCLEAN_DROP = "drop"


class UncleanNotChosen(InvalidInput):
    code = "unclean_choice"
    # Why some of the files cannot be cleaned (HEIC, video), shown after the message.
    reasons: tuple[str, ...] = ()
    message = N_("These files cannot be cleaned of hidden data: {names}. Nothing was sent. "
                 "Choose below whether to send them uncleaned or to leave them out, and attach "
                 "them again.")


def keep_names(form: FormData) -> bool:
    return form.get("keep_names") == "1"


def unclean_choice(form: FormData) -> str:
    """``send``, ``drop`` or "" (not chosen: files that cannot be cleaned are refused)."""
    value = form.get("unclean")
    return str(value) if value in (UNCLEAN_SEND, UNCLEAN_DROP) else ""
