"""Liveness and readiness say different things, and readiness checks what matters."""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.requests import Request
from starlette.testclient import TestClient

from service.app import create_app
from service.domain import storage
from service.platform import migrate
from service.platform.errors import STORAGE_PAGE, StorageUnavailable, render_error
from tests.conftest import BASE_URL, fast_settings


def test_ready_when_everything_works(client: TestClient) -> None:
    answer = client.get("/readyz")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    checks = answer.json()["checks"]
    assert set(checks) == {"database_readable", "migrations_current", "database_writable",
                           "free_space"}
    assert all(check["ok"] for check in checks.values())
    assert client.get("/healthz").json() == {"status": "ok", "ready": True}


def test_not_ready_below_the_free_space_minimum(tmp_path: Path, database) -> None:  # type: ignore[no-untyped-def]
    huge = 1 << 40  # MiB: more than any disk here has free
    settings = fast_settings(tmp_path / "var", min_free_mb=huge, warn_free_mb=huge)
    with TestClient(create_app(settings, database=database), base_url=BASE_URL) as client:
        answer = client.get("/readyz")
        live = client.get("/healthz")
    assert answer.status_code == 503 and answer.json()["status"] == "not_ready"
    free = answer.json()["checks"]["free_space"]
    assert free["ok"] is False and free["min_free_mb"] == huge and free["free_mb"] < huge
    # Liveness is not readiness: the process is up, and says what it last saw.
    assert live.status_code == 200 and live.json() == {"status": "ok", "ready": False}


def test_not_ready_when_migrations_are_behind(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "var", purge_minutes=0)
    settings.data_dir.mkdir(parents=True)
    migrate.upgrade(settings.database, "0008")
    with TestClient(create_app(settings), base_url=BASE_URL) as client:
        behind = client.get("/readyz")
        assert behind.status_code == 503
        assert behind.json()["checks"]["migrations_current"]["ok"] is False
        assert behind.json()["checks"]["database_readable"]["ok"] is True
    migrate.upgrade(settings.database)
    with TestClient(create_app(settings), base_url=BASE_URL) as client:
        assert client.get("/readyz").status_code == 200


def test_low_space_is_logged_once_not_per_check(tmp_path: Path, database,  # type: ignore[no-untyped-def]
                                                caplog) -> None:
    huge = 1 << 40
    settings = fast_settings(tmp_path / "var", warn_free_mb=huge)
    watch = storage.Watch(settings)
    with caplog.at_level(logging.INFO, logger="chuishao.storage"):
        for _ in range(3):
            assert watch.check(database, max_age=0).ready  # low, but above the minimum
    warnings = [r for r in caplog.records if "below the warning threshold" in r.getMessage()]
    assert len(warnings) == 1
    assert "CHUISHAO_WARN_FREE_MB" in warnings[0].getMessage()


def test_reporters_are_told_before_they_type_when_storage_fails(tmp_path: Path,
                                                                database) -> None:  # type: ignore[no-untyped-def]
    huge = 1 << 40
    settings = fast_settings(tmp_path / "var", min_free_mb=huge, warn_free_mb=huge)
    with TestClient(create_app(settings, database=database), base_url=BASE_URL) as client:
        zh = {"Accept-Language": "zh-CN"}
        assert 'id="storage-down"' not in client.get("/", headers=zh).text
        assert client.get("/readyz").status_code == 503  # the check sees the full disk
        intake = client.get("/", headers=zh).text
        assert 'id="storage-down"' in intake and "您现在提交的内容不会被保存" in intake
        followup = client.get("/followup", headers={"Accept-Language": "en"}).text
        assert 'id="storage-down"' in followup and "You can still open your report" in followup


def test_the_storage_page_sends_no_one_to_an_empty_form(client: TestClient) -> None:
    def page(path: str) -> str:
        request = Request({"type": "http", "method": "POST", "path": path, "headers": [],
                           "query_string": b"", "app": client.app})
        return bytes(render_error(request, 503, StorageUnavailable.code, STORAGE_PAGE).body).decode()

    assert 'href="/"' not in page("/report").split('<section class="error"')[1]
    assert 'href="/"' in page("/console/cases").split('<section class="error"')[1]
