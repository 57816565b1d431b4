"""Strings the browser scripts show, translated on the server and handed over as JSON.

The pages embed them in a ``<script type="application/json" id="messages">`` data island
(not executed, so the strict CSP allows it); the scripts read them by key.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from service.domain import feed, filetypes, followup, metadata, reportform
from service.domain.workflow import REASONS_FOR_REPORTER, RESULTS_FOR_REPORTER
from service.platform.i18n import N_

MESSAGES = {
    "preparing": N_("Preparing encryption…"),
    "pow": N_("Doing the anti-abuse check… (a few seconds)"),
    "deriving": N_("Creating your receipt…"),
    "stripping": N_("Removing hidden data from pictures…"),
    "sealing": N_("Encrypting on your device…"),
    "uploading": N_("Uploading encrypted files: {percent}%"),
    "finishing": N_("Confirming…"),
    "interrupted": N_("The upload was interrupted. You can resume it, or discard the report."),
    "discarded": N_("The report was discarded. Nothing was kept."),
    "failed": N_("Sending failed: {message}"),
    "held": N_("Your report is sealed and kept in this page (only here, on your device). "
               "Leave the page open and press “Send again” in a while; closing the page "
               "discards it."),
    "network": N_("The server could not be reached. Check your connection and try again."),
    "removed": N_("{name}: removed {what}"),
    # The server's own refusals (service/domain/reportform.py parse_report), word for word.
    "refuse.channel": N_("Choose a reporting line."),
    "refuse.unit": N_("Name the unit (enterprise) you are reporting."),
    "refuse.description": N_("Describe what you saw."),
    "refuse.category": N_("Choose what kind of problem it is."),
    "refuse.insider": N_("Some of what you entered is not valid."),
    "receipt_removed": N_("{name}: hidden data removed: {what}"),
    "list_sep": N_(", "),
    "nothing_removed": N_("{name}: no hidden data found"),
    "unclean": N_("{name}: this kind of file cannot be cleaned of hidden data "
                  "(only JPEG and PNG pictures can)"),
    "damaged": N_("{name}: the picture is damaged; its hidden data could not be removed, "
                  "so it will not be sent"),
    "too_big": N_("{name} is larger than the limit of {mb} MB."),
    "too_many": N_("At most {count} files can be attached."),
    "opening": N_("Opening your report…"),
    "your_report": N_("Your report"),
    "decrypt_failed": N_("This item could not be decrypted."),
    "sent": N_("Your reply was sealed and sent."),
    "you": N_("You"),
    "reviewers": N_("Reviewers"),
    "question": N_("Question for you"),
    "receipt_format": followup.RECEIPT_FORMAT,
    "receipt_mistyped": followup.RECEIPT_MISTYPED,
    "choose_channel": N_("Choose a reporting line."),
    "name_unit": N_("Name the unit (enterprise) you are reporting."),
    "describe": N_("Describe what you saw."),
    "choose_category": N_("Choose what kind of problem it is."),
    "too_long": N_("A field is too long (at most {limit} characters)."),
    "status_label": N_("Status:"),
    "reported_week": N_("Reported in the week of {date}."),
    "events_title": N_("What happened so far"),
    "messages_title": N_("Messages"),
    "no_messages": N_("No messages yet."),
    "report_title": N_("What you reported"),
    "files_title": N_("Files"),
    "reply_title": N_("Reply or add evidence"),
    "reply_label": N_("Your message"),
    "reply_files": N_("More evidence (optional)"),
    "send": N_("Encrypt and send"),
    "download": N_("Download"),
    "label_unit": N_("Unit reported (enterprise name)"),
    "label_location": N_("Where exactly (workshop, line, place)"),
    "label_category": N_("What kind of problem"),
    "label_seen": N_("When you saw it"),
    "label_description": N_("What you saw"),
    "reward_title": N_("Reward"),
    "reward_amount": N_("A reward of {amount} yuan was approved for you."),
    "claim_due": N_("Claim it by {date}; after that it lapses."),
    "claim_lapsed": N_("The time to claim this reward has ended."),
    "claim_intro": N_("Choose how you want to be paid. Your answer is encrypted on this device "
                      "so that only the finance office can read it."),
    "claim_identity": N_("This reward is paid to named reporters only: give your name and a "
                         "contact."),
    "claim_method": N_("How to pay you"),
    "claim_account": N_("Account (bank card, Alipay or WeChat account)"),
    "claim_name": N_("Name"),
    "claim_contact": N_("Contact"),
    "claim_note": N_("Note for the finance office (optional)"),
    "claim_send": N_("Encrypt and claim"),
    "claim_account_missing": N_("Give the account the reward should be paid to."),
    "claim_identity_missing": N_("Give your name and a contact."),
    "claim_done": N_("Your claim is registered. Show this claim code to the finance office "
                     "when you collect the reward:"),
    "claim_code_hint": N_("The code is made from your receipt: you can see it here again "
                          "whenever you open your report. It works once."),
    "claim_paid": N_("The reward was paid."),
    "method.bank": N_("Bank transfer"),
    "method.alipay": N_("Alipay"),
    "method.wechat": N_("WeChat Pay"),
    "method.cash": N_("Cash at the finance office"),
    "no_crypto": N_("This browser cannot encrypt on your device: it lacks the X25519 "
                    "encryption this page needs (some apps' built-in browsers do). Best: open "
                    "this page in your phone's own browser. If you send from here instead, the "
                    "server encrypts your report as soon as it arrives, so the server sees what "
                    "you wrote for a moment: weaker than encryption on your device."),
    "no_hybrid": N_("Your report is sealed with post-quantum encryption, which this browser "
                    "cannot open. Open this page in another, up-to-date browser, or use the "
                    "follow-up page without JavaScript: tick the box below and send your "
                    "receipt again, and the server opens your report for this visit."),
    "pq_required": N_("This service accepts only reports sealed with post-quantum encryption, "
                      "which this browser cannot do. Best: open this page in your phone's own "
                      "browser or another up-to-date browser. Or tick the box below and send: "
                      "the server then encrypts your report as soon as it arrives, as the form "
                      "without JavaScript does, so the server sees what you wrote for a "
                      "moment."),
    "pq_required_followup": N_("This service seals reports with post-quantum encryption, "
                               "which this browser cannot open. Open this page in your "
                               "phone's own browser or another up-to-date browser, or tick "
                               "the box below and send your receipt: the server then opens "
                               "your report for this visit, as without JavaScript."),
    "device_claim": N_("What you send is encrypted on your device before it leaves it; the "
                       "server cannot read it."),
    "will_clean": N_("{name}: hidden data will be removed before sending"),
    "unclean_send": N_("Send it uncleaned"),
    "unclean_drop": N_("Leave it out"),
    "unclean_choose": N_("Choose for each file that cannot be cleaned whether to send it "
                         "uncleaned or to leave it out."),
    "left_out": N_("{name}: left out, as you chose"),
    "keep_names": N_("Keep the original file names"),
}


# What the report page's scripts (js/intake.js and the modules it imports) show: a third of
# the whole, so the page a worker downloads first stays small. The follow-up page takes every
# text. tests/web/test_jsmessages.py reads the scripts and fails on a key missing here.
PAGES = {
    "intake": (
        frozenset({
            "preparing", "pow", "deriving", "stripping", "sealing", "uploading", "finishing",
            "interrupted", "discarded", "failed", "held", "network", "removed",
            "receipt_removed", "list_sep", "nothing_removed", "unclean", "damaged", "too_big",
            "too_many", "too_long", "no_crypto", "pq_required", "device_claim", "will_clean",
            "unclean_send", "unclean_drop", "unclean_choose", "left_out", "keep_names",
        }),
        ("refuse.", "meta.", "plain.", "name.", "unclean_reason."),
    ),
}


def as_json(translate: Callable[..., str], page: str | None = None) -> str:
    # Placeholders stay as {name}; the scripts fill them in. "</" is escaped so the island
    # cannot end early. `page` names a subset of PAGES; None gives every text.
    data = _all(translate)
    if page is not None:
        keys, prefixes = PAGES[page]
        data = {key: text for key, text in data.items()
                if key in keys or key.startswith(prefixes)}
    return json.dumps(data, ensure_ascii=False).replace("</", "<\\/")


def _all(translate: Callable[..., str]) -> dict[str, str]:
    data = {key: translate(text) for key, text in MESSAGES.items()}
    data.update({f"status.{key}": translate(text) for key, text in feed.STATUS.items()})
    data.update({f"event.{key}": translate(text) for key, text in feed.EVENTS.items()})
    data["event_note"] = translate(feed.NOTE)
    data.update({f"category.{key}": translate(text) for key, text in reportform.CATEGORIES})
    data.update({f"meta.{label}": translate(label) for label in metadata.LABELS})
    data.update({f"plain.{label}": translate(text) for label, text in metadata.PLAIN_WORDS.items()})
    data.update({f"name.{family}": translate(text)
                 for family, text in filetypes.FAMILY_NAMES.items()})
    data.update({f"unclean_reason.{key}": translate(text)
                 for key, text in filetypes.UNCLEAN_REASONS.items()})

    data.update({f"reason.{key}": translate(text) for key, text in REASONS_FOR_REPORTER.items()})
    data.update({f"result.{key}": translate(text) for key, text in RESULTS_FOR_REPORTER.items()})
    return data
