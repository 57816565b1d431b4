"""Audit details as the auditor reads them: every key the case, record and reward entries of a
report's life write has a label, and a code shows as its words, in the entry's own sense."""

from __future__ import annotations

import datetime as dt

from reviewer.auditview import FIELD_LABELS, fields
from service.platform import localtime
from service.platform.i18n import Catalogs


def shown(details: dict[str, object], action: str, language: str = "en") -> dict[str, str]:
    return dict(fields(details, Catalogs.load().gettext(language), action))


def test_the_keys_of_a_reports_life_have_labels() -> None:
    for key in ("enterprise", "location", "category", "criterion_id", "duplicate_of",
                "refused_as", "first", "candidates", "why", "open", "date", "files",
                "reference", "claim_due_at"):
        assert key in FIELD_LABELS, key
        label = Catalogs.load().gettext("zh_CN")(FIELD_LABELS[key])
        assert label != FIELD_LABELS[key], (key, label)  # translated, not the source text


def test_a_records_accepted_is_the_records_state_not_the_cases() -> None:
    record = shown({"from": "awaiting_acceptance", "to": "accepted", "result": "pass",
                    "date": "2026-12-01"}, "rectification.accept")
    assert record == {"When": "2026-12-01", "State before": "Waiting for the acceptance check",
                      "Acceptance check": "Passed", "State after": "Passed the acceptance check"}
    case = shown({"from": "new", "to": "accepted"}, "case.accept")
    assert case == {"State before": "New (waiting for acceptance)", "State after": "Accepted"}
    zh = Catalogs.load().gettext("zh_CN")
    assert shown({"to": "accepted"}, "rectification.accept", "zh_CN") == {
        zh("State after"): zh("Passed the acceptance check")}


def test_the_first_valid_report_moving_is_not_a_state_change() -> None:
    moved = shown({"from": "aaaa", "to": "bbbb", "open": False}, "case.first_valid_changed")
    assert moved == {"Before": "aaaa", "Not decided": "No", "After": "bbbb"}


def test_codes_show_as_words() -> None:
    reopened = shown({"refused_as": "out_of_scope", "reason": "within our remit"},
                     "case.reopen_refusal")
    assert reopened == {"Reason": "within our remit",
                        "Not accepted because": "Outside this line's remit"}
    facts = shown({"category": "hazard", "enterprise": "某机械厂"}, "case.facts")
    assert facts == {"Category": "Accident hazard (事故隐患)", "Unit (enterprise)": "某机械厂"}


def test_a_moment_reads_as_the_page_shows_times() -> None:
    due = shown({"claim_due_at": "2027-01-30T12:31:48.615417+00:00"}, "reward.approve")
    moment = dt.datetime(2027, 1, 30, 12, 31, 48, tzinfo=dt.UTC)
    assert due == {"Claim by": localtime.show(moment)}  # in the installation's zone
    assert "T12:31:48" not in due["Claim by"]
