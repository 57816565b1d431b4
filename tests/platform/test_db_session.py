"""One session per request: committed before a success starts, rolled back otherwise."""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import anyio.to_thread
from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from service.app import create_app
from service.domain import channels
from service.domain.models import Channel
from service.platform import migrate
from service.platform.db import Database, get_session
from service.platform.errors import InvalidInput
from tests.conftest import BASE_URL


def _app_with_probe_routes(settings, database):  # type: ignore[no-untyped-def]
    app = create_app(settings, database=database)

    async def add_ok(request: Request) -> Response:
        channels.add_channel(get_session(request), slug="ok-line", kind="bureau", name_zh="区局")
        return JSONResponse({"ok": True})

    async def add_then_refuse(request: Request) -> Response:
        channels.add_channel(get_session(request), slug="refused", kind="bureau", name_zh="区局")
        raise InvalidInput()

    async def add_then_crash(request: Request) -> Response:
        channels.add_channel(get_session(request), slug="crashed", kind="bureau", name_zh="区局")
        raise RuntimeError("secret internal detail")

    app.router.routes[:0] = [
        Route("/probe/ok", add_ok, methods=["POST"]),
        Route("/probe/refuse", add_then_refuse, methods=["POST"]),
        Route("/probe/crash", add_then_crash, methods=["POST"]),
    ]
    return app


def _count(session, slug: str) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(select(func.count()).select_from(Channel).where(Channel.slug == slug))


def test_success_commits_error_rolls_back(settings, database, session) -> None:  # type: ignore[no-untyped-def]
    app = _app_with_probe_routes(settings, database)
    with TestClient(app, base_url=BASE_URL, raise_server_exceptions=False) as client:
        assert client.post("/probe/ok").status_code == 200
        refused = client.post("/probe/refuse")
        assert refused.status_code == 400
        crashed = client.post("/probe/crash")
    assert _count(session, "ok-line") == 1
    assert _count(session, "refused") == 0
    assert _count(session, "crashed") == 0
    assert crashed.status_code == 500
    assert "secret internal detail" not in crashed.text
    assert "RuntimeError" not in crashed.text
    assert "服务器出现问题" in crashed.text
    # The 500 page still carries the strict policy.
    assert "default-src 'none'" in crashed.headers["content-security-policy"]
    assert crashed.headers["cache-control"] == "no-store"


def test_a_background_round_waiting_for_its_turn_does_not_stop_the_shutdown(
        tmp_path: Path) -> None:
    """Housekeeping takes the writers' gate from its worker thread (Database.turn). When the
    app stops while such a thread is about to take its turn, the thread still gets it and the
    task group ends; before, the acquire never returned and `chuishao serve` never exited."""
    url = f"sqlite:///{tmp_path / 'turn.sqlite3'}"
    migrate.upgrade(url)
    database = Database.from_url(url)
    steps: list[str] = []
    started, go = threading.Event(), threading.Event()

    def round_() -> None:
        started.set()
        go.wait()
        with database.turn():
            steps.append("turn taken")

    async def app_lifetime() -> None:
        database.gate()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(anyio.to_thread.run_sync, round_)
            await anyio.to_thread.run_sync(started.wait)
            tasks.cancel_scope.cancel()  # the lifespan's shutdown
            go.set()
        steps.append("stopped")

    # Run apart, so a hang fails the test instead of stopping the run.
    runner = threading.Thread(target=anyio.run, args=(app_lifetime,), daemon=True)
    runner.start()
    runner.join(timeout=30)
    try:
        assert not runner.is_alive(), "the app never stopped: the round waits for its turn"
        assert steps == ["turn taken", "stopped"]
    finally:
        database.dispose()
