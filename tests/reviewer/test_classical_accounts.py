"""The console shows an administrator which accounts still lack an X-Wing pair (protocol v2),
so they can be asked to sign in again: a marker per account and a count on the users page, a
marker per recipient on the channels page, and, where the installation requires v2, which
reviewers are left out of new reports and whether a line then has no reader but recovery."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from service.domain import channels
from service.platform.settings import Settings
from tests.conftest import fast_settings
from tests.console import sign_in
from tests.factories import add_xwing, make_reviewer

MARK_ZH, MARK_EN = "仅经典密钥", "classical key only"


@pytest.fixture(params=[False, True], ids=["v1-allowed", "v2-required"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return fast_settings(tmp_path / "var", require_v2=request.param)


def _row(page: str, user_id: int) -> str:
    start = page.index(f'id="user-{user_id}"')
    return page[start:page.index("</tr>", start)]


def _channel(page: str, slug: str) -> str:
    start = page.index(f'id="channel-{slug}"')
    return page[start:page.index("</tr>", start)]


def _count(page: str) -> int | None:
    match = re.search(r'id="classical-accounts">[^<]*?(\d+)', page)
    return int(match.group(1)) if match else None


def test_the_admin_sees_who_has_a_classical_key_only(client: TestClient, session,
                                                     settings) -> None:  # type: ignore[no-untyped-def]
    root = make_reviewer(session, "root", roles="admin", xwing=True).user
    li = make_reviewer(session, "li.na").user  # made before v2: X25519 only
    wang = make_reviewer(session, "wang.fang", xwing=True).user
    gone = make_reviewer(session, "old.zhou").user
    for user in (root, li, wang, gone):
        user.totp_confirmed = True
    plant = channels.add_channel(session, slug="plant", kind="enterprise", name_zh="一号厂")
    session.commit()
    csrf = sign_in(client, session, settings, root)
    for user in (li, wang):
        assert client.post(f"/console/admin/channels/{plant.id}/recipients",
                           data={"csrf_token": csrf, "user_id": str(user.id)},
                           follow_redirects=False).status_code == 303
    assert client.post(f"/console/admin/users/{gone.id}/deactivate", data={"csrf_token": csrf},
                       follow_redirects=False).status_code == 303

    users = client.get("/console/admin").text
    # Counted once per active account without a pair; marked on its row, in Chinese.
    assert _count(users) == 1
    assert "仅有经典密钥（尚无抗量子密钥）的账户：1 个" in users
    assert MARK_ZH in _row(users, li.id)
    assert MARK_ZH not in _row(users, wang.id) and MARK_ZH not in _row(users, root.id)
    assert MARK_ZH not in _row(users, gone.id)  # deactivated: nobody to ask
    english = client.get("/console/admin", headers={"Accept-Language": "en"}).text
    assert "Accounts with a classical key only (no post-quantum key yet): 1." in english
    assert MARK_EN in _row(english, li.id) and MARK_EN not in _row(english, wang.id)

    lines = client.get("/console/admin/channels").text
    plant_row = _channel(lines, "plant")
    if settings.require_v2:
        # Left out of new reports until signed in again: said, and not shown as receiving.
        assert "暂不接收（本系统要求抗量子封存，他们尚无抗量子密钥）：li.na。" in plant_row
        assert "暂不接收：plant" in _row(users, li.id)
        assert "本系统要求抗量子封存：在此之前，其中负责接收举报的账户收不到新举报。" in users
        receiving = plant_row[:plant_row.index('class="notice held-back"')]
        assert "li.na" not in receiving and "wang.fang" in receiving
        assert "只有恢复密钥可以" not in plant_row  # wang.fang still reads the line
    else:
        assert "li.na" in plant_row and MARK_ZH in plant_row
        assert "此渠道的新举报就是仅经典加密" in plant_row
        assert "暂不接收" not in plant_row

    # li.na signs in in a browser with the hybrid (POST /console/api/account/xwing-key).
    add_xwing(session, li)
    session.commit()
    users = client.get("/console/admin").text
    assert _count(users) is None and MARK_ZH not in users
    plant_row = _channel(client.get("/console/admin/channels").text, "plant")
    assert "li.na" in plant_row and MARK_ZH not in plant_row and "暂不接收" not in plant_row


def test_a_line_left_with_no_reader_is_flagged(client: TestClient, session,
                                               settings) -> None:  # type: ignore[no-untyped-def]
    root = make_reviewer(session, "root", roles="admin", xwing=True).user
    li = make_reviewer(session, "li.na").user
    root.totp_confirmed = li.totp_confirmed = True
    plant = channels.add_channel(session, slug="plant", kind="enterprise", name_zh="一号厂")
    session.commit()
    csrf = sign_in(client, session, settings, root)
    assert client.post(f"/console/admin/channels/{plant.id}/recipients",
                       data={"csrf_token": csrf, "user_id": str(li.id)},
                       follow_redirects=False).status_code == 303
    plant_row = _channel(client.get("/console/admin/channels").text, "plant")
    assert ("没有审核人能打开此渠道的新举报：只有恢复密钥可以。" in plant_row) \
        is settings.require_v2
