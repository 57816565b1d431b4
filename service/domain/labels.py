"""Words for the codes the console stores: roles, channel kinds. One table of each, so every
page and export says the same thing in the page's language."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from service.domain import workflow
from service.domain.rewards import format_yuan
from service.platform.i18n import N_

# Between the items of a list in running text: a comma in English, 、 in Chinese.
LIST_SEPARATOR = N_(", ")

ROLE_LABELS = {
    "reviewer": N_("Reviewer"),
    "approver": N_("Approver"),
    "auditor": N_("Auditor"),
    "finance": N_("Finance"),
    "admin": N_("Administrator"),
}

CHANNEL_KIND_LABELS = {
    "enterprise": N_("Enterprise internal line"),
    "bureau": N_("District bureau"),
}


def role_names(roles: str | list[str] | tuple[str, ...], translate: Callable[..., str]) -> str:
    """A user's or invitation's roles ("reviewer approver") in the page's language."""
    names = roles.split() if isinstance(roles, str) else list(roles)
    return translate(LIST_SEPARATOR).join(translate(ROLE_LABELS.get(name, name))
                                          for name in names)


# The case timeline as staff read it: about the reporter, never to them (their own wording,
# addressed to "you", is in service/domain/feed.py). Internal kinds not listed here keep their
# labels in reviewer/views/cases.py and service/domain/rectification.py.
STAFF_EVENTS = {
    "received": N_("The report was received and sealed."),
    "accepted": N_("The report was accepted."),
    "not_accepted": N_("The report was not accepted. Reason given to the reporter: {reason}"),
    "verifying": N_("Verification of the report started."),
    "verification_extended": N_("Verification was extended. Reason: {reason}"),
    "verified": N_("Verification finished: {result}"),
    "rectification_opened": N_("A rectification was opened for the hazard."),
    "rectification_reopened": N_("Further rectification work was opened for the hazard."),
    "rectification_accepted": N_("The rectification passed its acceptance check."),
    "closed": N_("The case was closed."),
    "message": N_("A message was sent to the reporter."),
    "reward_proposed": N_("A reward was proposed"),
    "reward_rejected": N_("The proposed reward was rejected"),
    "reward_offered": N_("A reward of {amount} yuan was approved for the reporter."),
    "reward_claimed": N_("The reporter claimed the reward."),
    "reward_paid": N_("The reward was paid."),
}


def staff_event_text(kind: str, data: Mapping[str, Any],
                     translate: Callable[..., str]) -> str | None:
    """A timeline entry in staff wording, or None for a kind this table does not know."""
    template = STAFF_EVENTS.get(kind)
    if template is None:
        return None
    params = {key: str(value) for key, value in data.items()
              if key in ("reason", "result", "deadline", "amount")}
    # Stored as codes where chosen from a list: the staff label in the reader's language.
    if data.get("reason_code") in workflow.NOT_ACCEPTED_REASONS:
        params["reason"] = translate(workflow.NOT_ACCEPTED_REASONS[data["reason_code"]])
    if data.get("result_code") in workflow.RESULTS:
        params["result"] = translate(workflow.RESULTS[data["result_code"]])
    if "amount_fen" in data and "amount" not in params:
        params["amount"] = format_yuan(int(data["amount_fen"]))
    try:
        return translate(template, **params)
    except (KeyError, IndexError):
        return translate(template.split(":")[0])
