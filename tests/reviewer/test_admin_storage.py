"""The administrator is warned before the disk fills: free space against the threshold."""

from __future__ import annotations

from dataclasses import replace

from starlette.testclient import TestClient

from service.app import create_app
from service.domain import storage
from tests.conftest import BASE_URL
from tests.console import sign_in
from tests.factories import make_reviewer


def _admin_page(settings, database, session) -> str:  # type: ignore[no-untyped-def]
    root = make_reviewer(session, "root", roles="admin").user
    root.totp_confirmed = True
    session.commit()
    with TestClient(create_app(settings, database=database), base_url=BASE_URL) as client:
        sign_in(client, session, settings, root)
        page = client.get("/console/admin", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    return page.text


def test_free_space_below_the_warning_threshold_is_shown(settings, database, session) -> None:  # type: ignore[no-untyped-def]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    free_mb = storage.free_bytes(settings.data_dir) // storage.MB
    # A threshold above what this disk has free: the warning must show, with the figures.
    warned = _admin_page(replace(settings, warn_free_mb=free_mb + 10_000), database, session)
    assert 'id="storage-low"' in warned
    assert f"the warning threshold is {free_mb + 10_000} MB" in warned


def test_enough_free_space_shows_no_warning(settings, database, session) -> None:  # type: ignore[no-untyped-def]
    page = _admin_page(replace(settings, warn_free_mb=1, min_free_mb=0), database, session)
    assert 'id="storage-free"' in page and 'id="storage-low"' not in page
    assert "more reports without files" in page
