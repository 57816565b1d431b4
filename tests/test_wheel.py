"""The package installs anywhere: a wheel built from the checkout, installed into a fresh
virtual environment, runs from a folder outside the checkout (migrate, init, serve, and one
report sent with `chuishao submit`), finding its templates, migrations, seed data, static
files and catalogues inside itself."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import urllib.request
import venv
import zipfile
from pathlib import Path

import pytest

from tests.serverproc import ROOT, cli_env, free_port, run_cli, serving

pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy: setuptools builds in the source tree, and a build/ left in the
    # checkout would carry removed modules into later wheels.
    source = tmp_path_factory.mktemp("source") / "chuishao"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "var", "*.egg-info", "__pycache__", ".*_cache", "fixtures"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out),
                    str(source)], check=True, capture_output=True, timeout=300)
    (built,) = out.glob("chuishao-*.whl")
    return built


def _install(tmp_path: Path, wheel: Path) -> Path:
    env_dir = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True,
                   timeout=300)
    # The dependencies come from this environment's site-packages, added as a plain path:
    # its .pth files (the checkout's editable install among them) are not read from there.
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print("
                                "sysconfig.get_paths()['purelib'])"], check=True,
                               capture_output=True, text=True).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env_dir


def test_the_wheel_carries_its_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("service/_bundled/templates/public/index.html",
                   "service/_bundled/migrations/env.py",
                   "service/_bundled/alembic.ini",
                   "service/_bundled/data/major-hazard-criteria-2023.json",
                   "service/locale/zh_CN/LC_MESSAGES/messages.po",
                   "service/static/js/intake.js",
                   "service/domain/rewards/policies/national-2018.toml",
                   "crypto/__init__.py", "reviewer/app.py"):
        assert needed in names, needed
    assert not [name for name in names if "__pycache__" in name or name.startswith("tests/")]


def test_an_installed_wheel_serves_and_takes_a_report(tmp_path: Path, wheel: Path) -> None:
    env_dir = _install(tmp_path, wheel)
    elsewhere = tmp_path / "run"
    elsewhere.mkdir()
    command = (str(env_dir / "bin" / "chuishao"),)
    where = subprocess.run([str(env_dir / "bin" / "python"), "-c",
                            "import service; print(service.__file__)"], cwd=elsewhere,
                           check=True, capture_output=True, text=True).stdout
    assert where.startswith(str(env_dir)), where
    env = cli_env(elsewhere / "var", free_port(), CHUISHAO_POW_DIFFICULTY="8",
                  CHUISHAO_RECEIPT_ITERATIONS="1000")

    def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(env, *args, stdin=stdin, command=command, cwd=elsewhere)

    for step in (("migrate",), ("init",),
                 ("channel", "add", "acme", "--kind", "enterprise", "--name-zh", "某厂")):
        done = cli(*step)
        assert done.returncode == 0, (step, done.stderr)
    with serving(env, tmp_path / "server.log", command=command, cwd=elsewhere) as base:
        page = urllib.request.urlopen(base + "/", timeout=10).read().decode()  # noqa: S310
        assert "吹哨" in page and "/static/" in page
        script = page.split('src="', 1)[1].split('"', 1)[0]
        assert urllib.request.urlopen(base + script, timeout=10).status == 200  # noqa: S310
        sent = cli("submit", "--server", base, "--channel", "acme", "--unit", "某厂",
                   stdin="配电箱门被拆掉，电线裸露\n")
    assert sent.returncode == 0, sent.stderr
    assert len(sent.stdout.strip().replace(" ", "")) == 21
    assert (elsewhere / "var" / "chuishao.sqlite3").is_file()
