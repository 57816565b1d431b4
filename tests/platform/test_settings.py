from __future__ import annotations

from pathlib import Path

import pytest

from service.platform.settings import Settings, SettingsError


def test_defaults_are_production_costs() -> None:
    settings = Settings.from_environ({})
    assert settings.receipt_iterations == 600_000
    assert settings.password_iterations == 600_000
    assert settings.database.startswith("sqlite:///")
    assert settings.default_language == "zh_CN"


def test_environment_is_read_once_into_frozen_settings(tmp_path: Path) -> None:
    settings = Settings.from_environ({
        "CHUISHAO_DATA_DIR": str(tmp_path),
        "CHUISHAO_DATABASE_URL": "postgresql://db/chuishao",
        "CHUISHAO_SECURE_COOKIES": "yes",
        "CHUISHAO_RECEIPT_ITERATIONS": "1000",
        "CHUISHAO_SECRET_KEY": "s3cret",
        "UNRELATED": "x",
    })
    assert settings.data_dir == tmp_path
    assert settings.database == "postgresql://db/chuishao"
    assert settings.secure_cookies is True
    assert settings.receipt_iterations == 1000
    assert "s3cret" not in repr(settings)  # a Secret never prints
    with pytest.raises(AttributeError):
        settings.secure_cookies = False  # type: ignore[misc]


@pytest.mark.parametrize("env", [
    {"CHUISHAO_PORT": "eighty"},
    {"CHUISHAO_SECURE_COOKIES": "maybe"},
    {"CHUISHAO_DEFAULT_LANGUAGE": "fr"},
    {"CHUISHAO_RECEIPT_ITERATIONS": "0"},
])
def test_malformed_settings_refused(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        Settings.from_environ(env)
