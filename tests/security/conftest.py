"""Fixtures of the security suite: an app whose unexpected errors come back as answers (so a
500 is a status to assert on, not an exception in the test), and a world with one of
everything."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.platform.settings import Settings
from tests.conftest import BASE_URL
from tests.security.support import Rich, build_rich


@pytest.fixture
def web(app: Starlette) -> Iterator[TestClient]:
    """A client that sees a 500 as the browser would, instead of the exception."""
    with TestClient(app, base_url=BASE_URL, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def rich(web: TestClient, session: Session, settings: Settings) -> Rich:
    return build_rich(web, session, settings)
