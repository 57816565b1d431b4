"""The hazard ledger export (CSV with BOM, XLSX), quarterly and annual statistics, and the
week-aligned periods of the public board."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from service.domain import board, rectification_facts, reward_policies
from service.domain import hazard_ledger as ledger
from service.domain.models import Case, HazardCriterion, utcnow
from service.domain.models.rectification import (
    Rectification,
    RectificationCase,
    RectificationEntry,
    RectificationFile,
)
from service.platform import localtime
from service.platform.errors import InvalidInput
from tests.console import sign_in
from tests.factories import make_reviewer, make_world

YEAR = 2025


@pytest.fixture
def world(session, settings):  # type: ignore[no-untyped-def]
    world = make_world(session, settings)
    world.auditor = make_reviewer(session, "auditor", world.channel, roles="auditor").user
    world.chief = make_reviewer(session, "chief", world.channel, roles="approver").user
    session.commit()
    return world


def record(session, world, found: dt.date, *, grade: str | None = "general",  # type: ignore[no-untyped-def]
           deadline: dt.date | None = None, accepted: dt.date | None = None,
           state: str = "in_progress", **fields: Any) -> Rectification:
    moment = dt.datetime.combine(found, dt.time(4), tzinfo=dt.UTC)
    case = Case(id=os.urandom(16).hex(), channel_id=world.channel.id, created_at=moment,
                updated_at=moment, status="rectifying", lookup_hash=os.urandom(32).hex(),
                version=1, ready=True, verification_result="true", grade=grade)
    session.add(case)
    session.flush()
    row = Rectification(channel_id=world.channel.id, case_id=case.id, state=state, version=1,
                        description=fields.pop("description", "二号罐区液氨阀门泄漏"),
                        location="罐区", found_on=found, opened_by=world.reviewers[0].user.id,
                        deadline=deadline, accepted_on=accepted,
                        accepted_by=world.reviewers[1].user.id if accepted else None,
                        created_at=moment, updated_at=moment, **fields)
    session.add(row)
    session.flush()
    session.add(RectificationCase(rectification_id=row.id, case_id=case.id,
                                  linked_by=world.reviewers[0].user.id, linked_at=moment))
    session.flush()
    return row


def populate(session, world) -> list[Rectification]:  # type: ignore[no-untyped-def]
    on_time = record(session, world, dt.date(YEAR, 2, 10), deadline=dt.date(YEAR, 3, 1),
                     accepted=dt.date(YEAR, 2, 25), state="closed",
                     closed_at=dt.datetime(YEAR, 2, 27, 2, tzinfo=dt.UTC),
                     measures="更换阀门=加装报警", funds_fen=1_200_050, responsible_person="王建国",
                     risk_assessment="中毒风险", contingency_plan="液氨泄漏专项预案",
                     listed_supervision=True, supervision_by="区应急管理局")
    late = record(session, world, dt.date(YEAR, 3, 20), grade="major",
                  deadline=dt.date(YEAR, 4, 1), accepted=dt.date(YEAR, 4, 10),
                  state="accepted")
    # The major hazard names its item of the 2023 criteria, as triage requires.
    session.get(Case, late.case_id).criterion_id = session.scalars(
        select(HazardCriterion).order_by(HazardCriterion.article, HazardCriterion.item_no)
    ).first().id
    still_open = record(session, world, dt.date(YEAR, 5, 5), deadline=dt.date(YEAR, 5, 30))
    record(session, world, dt.date(YEAR, 11, 3), grade=None, deadline=dt.date(YEAR, 12, 31),
           state="opened")
    record(session, world, dt.date(YEAR - 1, 12, 30))  # last year: outside every period
    moment = utcnow()
    entry = RectificationEntry(rectification_id=on_time.id, kind="progress", text="阀门已更换",
                               user_id=world.reviewers[0].user.id, created_at=moment)
    session.add(entry)
    session.flush()
    from service.domain.models import SealedItem, StoredFile

    for index, phase in enumerate(("before", "before", "after")):
        item = SealedItem(id=os.urandom(16).hex(), case_id=on_time.case_id, kind="file-meta",
                          author="reviewer", blob=b"\x01" * 300, created_at=moment)
        session.add(item)
        session.flush()
        stored = StoredFile(id=f"{index:x}" * 32, case_id=on_time.case_id,
                            meta_item_id=item.id, stored_size=33, chunk_count=1, complete=True,
                            author="reviewer", created_at=moment)
        session.add(stored)
        session.flush()
        session.add(RectificationFile(file_id=stored.id, rectification_id=on_time.id,
                                      entry_id=entry.id, phase=phase, created_at=moment))
    session.commit()
    return [on_time, late, still_open]


def test_csv_starts_with_the_bom_and_keeps_chinese(client, session, world, settings) -> None:  # type: ignore[no-untyped-def]
    on_time, late, _ = populate(session, world)
    sign_in(client, session, settings, world.auditor)
    response = client.get(f"/console/ledger/export?channel={world.channel.id}&period={YEAR}"
                          "&format=csv")
    assert response.status_code == 200
    assert response.content.startswith(b"\xef\xbb\xbf")
    assert response.headers["content-type"].startswith("text/csv")
    assert "filename*=UTF-8''" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:7] == ["编号", "发现时间", "发现地点", "发现来源（举报渠道、案件）",
                           "隐患等级", "重大事故隐患判定标准（2023）条款", "隐患描述"]
    assert len(rows) == 1 + 4  # four hazards found in the year, none of last year
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["发现时间"] == f"{YEAR}-02-10" and first["隐患描述"] == "二号罐区液氨阀门泄漏"
    assert first["整改资金（元）"] == "12000.50" and first["责任人"] == "王建国"
    assert first["整改资金（分）"] == "1200050"
    assert first["整改措施"] == "更换阀门=加装报警"
    assert first["挂牌督办"] == "是 (区应急管理局)"
    # Photo cells say how many sealed files, when they came and where to open them.
    assert first["整改前照片"].startswith("2 个文件，上传于 ") and "整改记录页面" in first["整改前照片"]
    assert first["整改后照片"].startswith("1 个文件")
    assert first["验收人"] == "reviewer1" and first["验收日期"] == f"{YEAR}-02-25"
    assert first["销号日期"] == f"{YEAR}-02-27" and first["逾期"] == "否"
    assert "阀门已更换" in first["整改进展"]
    assert first["隐患等级"] == "一般隐患"
    assert on_time.case_id[:8] in first["发现来源（举报渠道、案件）"]
    second = dict(zip(rows[0], rows[2], strict=True))
    assert second["逾期"] == "是" and second["隐患等级"] == "重大事故隐患"
    assert second["重大事故隐患判定标准（2023）条款"].startswith("第")
    # Never the report text, never a reporter: the cells hold only what reviewers entered.
    assert "液氨管道泄漏无人处理" not in response.content.decode("utf-8-sig")
    # A formula-looking cell is quoted so a spreadsheet does not run it.
    quarter = client.get(f"/console/ledger/export?channel={world.channel.id}&period={YEAR}-Q2"
                         "&format=csv")
    assert len(list(csv.reader(io.StringIO(quarter.content.decode("utf-8-sig"))))) == 1 + 1
    assert late.id


def test_xlsx_opens_in_openpyxl_with_rows_and_chinese(client, session, world, settings) -> None:  # type: ignore[no-untyped-def]
    populate(session, world)
    sign_in(client, session, settings, world.chief)
    response = client.get(f"/console/ledger/export?channel={world.channel.id}"
                          f"&from={YEAR}-01-01&to={YEAR}-03-31&format=xlsx")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    book = load_workbook(io.BytesIO(response.content), read_only=True)
    sheet = book[book.sheetnames[0]]
    rows = [[cell if cell is not None else "" for cell in row]
            for row in sheet.iter_rows(values_only=True)]
    assert book.sheetnames == ["隐患台账"]
    assert rows[0][0] == "编号" and rows[0][-1] == "逾期"
    assert len(rows) == 3
    # Numbers as numbers (yuan with two decimals, fen exact), dates as dates.
    assert rows[1][6] == "二号罐区液氨阀门泄漏" and rows[1][9] == 12000.5
    assert rows[1][10] == 1_200_050
    assert rows[2][1] == dt.datetime(YEAR, 3, 20)
    styled = load_workbook(io.BytesIO(response.content)).worksheets[0]
    assert styled.freeze_panes == "A2" and styled.auto_filter.ref == "A1:Z3"
    assert styled.cell(2, 10).number_format == "0.00" and styled.cell(2, 2).is_date
    assert styled.column_dimensions["G"].width >= 30
    # The CSV carries the same values.
    same = client.get(f"/console/ledger/export?channel={world.channel.id}"
                      f"&from={YEAR}-01-01&to={YEAR}-03-31&format=csv")
    written = list(csv.reader(io.StringIO(same.content.decode("utf-8-sig"))))
    assert written[0] == rows[0] and written[1][9] == "12000.50" and written[1][10] == "1200050"
    assert written[2][1] == f"{YEAR}-03-20" and written[1][6] == rows[1][6]
    # English headers for an English console.
    english = client.get(f"/console/ledger/export?channel={world.channel.id}&period={YEAR}"
                         "&format=csv", headers={"Accept-Language": "en"})
    assert english.content.decode("utf-8-sig").startswith("No.,Found on,Where found,")


def test_ledger_refusals_and_page(client, session, world, settings) -> None:  # type: ignore[no-untyped-def]
    from service.domain import channels

    reviewer = world.reviewers[0].user
    sign_in(client, session, settings, reviewer)
    page = client.get("/console/ledger")
    assert page.status_code == 200 and 'id="ledger-form"' in page.text
    base = f"/console/ledger/export?channel={world.channel.id}"
    assert client.get(base + "&period=someday").status_code == 400
    assert client.get(base + f"&period={YEAR}&format=pdf").status_code == 400
    assert client.get(base + f"&from={YEAR}-03-01&to={YEAR}-01-01").status_code == 400
    other = channels.add_channel(session, slug="bureau", kind="bureau", name_zh="区应急管理局")
    admin = make_reviewer(session, "admin", world.channel, roles="admin").user
    session.commit()
    assert client.get(f"/console/ledger/export?channel={other.id}&period={YEAR}"
                      ).status_code == 404
    client.cookies.clear()
    sign_in(client, session, settings, admin)
    assert client.get(base + f"&period={YEAR}").status_code == 403
    assert client.get("/console/stats").status_code == 403


def test_statistics_per_quarter_and_year(client, session, world, settings) -> None:  # type: ignore[no-untyped-def]
    populate(session, world)
    on = dt.date(YEAR, 12, 31)
    rows = dict(ledger.yearly(session, world.channel.id, YEAR, on))
    assert rows["Q1"] == ledger.Counts(found=2, general=1, major=1, ungraded=0, on_time=1,
                                       overdue=1, open=0)
    assert rows["Q2"] == ledger.Counts(found=1, general=1, major=0, ungraded=0, on_time=0,
                                       overdue=1, open=1)
    assert rows["Q3"] == ledger.Counts()
    assert rows["Q4"] == ledger.Counts(found=1, general=0, major=0, ungraded=1, on_time=0,
                                       overdue=0, open=1)
    assert rows[str(YEAR)] == ledger.Counts(found=4, general=2, major=1, ungraded=1, on_time=1,
                                            overdue=2, open=2)
    sign_in(client, session, settings, world.auditor)
    page = client.get(f"/console/stats?channel={world.channel.id}&year={YEAR}")
    assert page.status_code == 200
    total = re.search(rf'<tr data-period="{YEAR}" class="total">(.*?)</tr>', page.text, re.S)
    # The page counts as of today, when every 2025 deadline has passed.
    now = dict(ledger.yearly(session, world.channel.id, YEAR))[str(YEAR)]
    assert total and '<td class="found">4</td>' in total.group(1)
    assert f'<td class="overdue">{now.overdue}</td>' in total.group(1) and now.overdue == 3
    # The chart is server-drawn SVG: one bar per series and quarter, no script.
    assert page.text.count('class="bar bar-') == 16 and "<svg" in page.text
    assert 'class="bar bar-found"' in page.text


def test_periods() -> None:
    assert ledger.parse_period("2025-Q2") == ledger.Period("2025-Q2", dt.date(2025, 4, 1),
                                                           dt.date(2025, 6, 30))
    assert ledger.parse_period("2025-12").end == dt.date(2025, 12, 31)
    assert ledger.parse_period("2024-02").end == dt.date(2024, 2, 29)
    for bad in ("2025-13", "25", "2025-Q5", "x"):
        with pytest.raises(InvalidInput):
            ledger.parse_period(bad)
    # The board cuts periods to whole ISO weeks: June 2025 is W23 (Thursday 5 June) to W26.
    june = board.parse_period("2025-06")
    assert (june.first, june.last) == (dt.date(2025, 6, 2), dt.date(2025, 6, 29))
    assert june.first.weekday() == 0 and june.last.weekday() == 6
    year = board.parse_period("2026")
    assert year.first == dt.date(2025, 12, 29) and year.last == dt.date(2027, 1, 3)
    week = board.parse_period("2025-W23")
    assert (week.first, week.last) == (dt.date(2025, 6, 2), dt.date(2025, 6, 8))
    assert week.week_label(dt.date(2025, 6, 4)) == "2025-W23"
    for bad in ("2025-W54", "2025-W00", "2025-14", "soon"):
        with pytest.raises(InvalidInput):
            board.parse_period(bad)
    assert rectification_facts.today()  # the board's default period is this ISO year


def test_board_counts_rewards_paid_in_the_period(session, settings) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    from service.domain import board
    from service.domain.models import Case, utcnow
    from service.domain.models.rewards import RewardPolicyVersion, RewardRecord
    from tests.factories import make_world

    world = make_world(session, settings)
    now = utcnow()
    case = Case(id="ab" * 16, channel_id=world.channel.id, created_at=now, updated_at=now,
                status="closed", lookup_hash="cd" * 32, ready=True)
    session.add(case)
    session.flush()
    reward_policies.ensure_shipped(session)
    policy = session.scalars(select(RewardPolicyVersion)).first()
    assert policy is not None
    reviewer = world.reviewers[0].user
    for n, (status, paid_at) in enumerate([("paid", now), ("approved", None),
                                           ("paid", now - dt.timedelta(days=30))]):
        session.add(RewardRecord(
            id=f"{n:032x}", case_id=case.id, channel_id=world.channel.id, policy_row_id=policy.id,
            policy_id=policy.policy_id, policy_version=policy.version, policy_digest="0" * 64,
            amount_fen=300_000 + n, calculation="{}", status=status, version=1,
            proposed_by=reviewer.id, proposed_at=now, paid_at=paid_at))
    session.flush()
    today = localtime.local(now).date()
    monday = today - dt.timedelta(days=today.weekday())
    this_week = board.Weeks("w", monday, monday + dt.timedelta(days=6))
    assert board.rewards_paid(session, world.channel, this_week) == 300_000
    earlier = board.Weeks("w", monday - dt.timedelta(days=7), monday - dt.timedelta(days=1))
    assert board.rewards_paid(session, world.channel, earlier) == 0
