"""What the reporter reads: case events in plain language, never a person's name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from service.domain.workflow import REASONS_FOR_REPORTER, RESULTS_FOR_REPORTER
from service.platform.i18n import N_

STATUS = {
    "new": N_("Received, waiting to be accepted"),
    "accepted": N_("Accepted"),
    "not_accepted": N_("Not accepted"),
    "verifying": N_("Being verified"),
    "verified": N_("Verified"),
    "rectifying": N_("Being rectified"),
    "rectified": N_("Rectification accepted"),
    "closed": N_("Closed"),
}

EVENTS = {
    "received": N_("Your report was received and sealed."),
    "accepted": N_("Your report was accepted."),
    "not_accepted": N_("Your report was not accepted. Reason: {reason}"),
    "refusal_reopened": N_("Your report was taken up again after it had been refused; it is "
                           "waiting to be accepted. Why: {reason}"),
    "verifying": N_("The reviewers are verifying what you reported."),
    "verification_extended": N_("Verification takes longer. Reason: {reason}"),
    "verified": N_("Verification is finished: {result}"),
    "rectification_opened": N_("A rectification was opened for the hazard."),
    "measures_decided": N_("Measures to remove the hazard were decided; deadline {deadline}."),
    "rectification_progress": N_("Rectification progress was recorded."),
    "rectification_deadline": N_("The deadline for removing the hazard is now {deadline}."),
    "rectification_on_spot": N_("The hazard was removed on the spot; a second person checks "
                                "the work."),
    "rectification_failed": N_("The acceptance check found the rectification not finished; "
                               "work continues."),
    "rectification_accepted": N_("The rectification passed its acceptance check."),
    "rectification_reopened": N_("Further rectification work was opened for the hazard."),
    "closed": N_("The case is closed."),
    "reward_offered": N_("A reward of {amount} yuan was approved for you."),
    "reward_claimed": N_("You claimed the reward. Show your claim code to the finance office."),
    "reward_paid": N_("The reward was paid."),
    "message": N_("The reviewers sent you a message."),
}

# A refusal carries the reviewers' own words besides the listed reason (data "note").
NOTE = N_("{text}. The reviewers wrote: {note}")


def status_text(status: str, translate: Callable[..., str]) -> str:
    return translate(STATUS.get(status, STATUS["new"]))


def event_text(kind: str, data: dict[str, Any], translate: Callable[..., str]) -> str | None:
    template = EVENTS.get(kind)
    if template is None:
        return None

    params = {key: str(value) for key, value in data.items()
              if key in ("reason", "result", "deadline", "amount")}
    # Chosen from a list: translate into the reader's language from the stored code.
    if data.get("reason_code") in REASONS_FOR_REPORTER:
        params["reason"] = translate(REASONS_FOR_REPORTER[data["reason_code"]])
    if data.get("result_code") in RESULTS_FOR_REPORTER:
        params["result"] = translate(RESULTS_FOR_REPORTER[data["result_code"]])
    try:
        text = translate(template, **params)
    except (KeyError, IndexError):
        return translate(template.split(":")[0])
    # A refusal carries the reviewers' own words besides the listed reason.
    note = str(data.get("note") or "") if kind == "not_accepted" else ""
    return translate(NOTE, text=text, note=note) if note else text
